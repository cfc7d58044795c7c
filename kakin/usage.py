"""Moved to kakin/services/usage.py; this alias goes when every import has moved."""

import sys

from kakin.services import usage as _moved
from kakin.services.usage import *  # noqa: F403  (the names type checkers see)

sys.modules[__name__] = _moved
