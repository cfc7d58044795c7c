"""Moved to kakin/services/audit.py; this alias goes when every import has moved."""

import sys

from kakin.services import audit as _moved
from kakin.services.audit import *  # noqa: F403  (the names type checkers see)

sys.modules[__name__] = _moved
