"""Moved to kakin/services/credit_notes.py; this alias goes when every import has moved."""

import sys

from kakin.services import credit_notes as _moved
from kakin.services.credit_notes import *  # noqa: F403  (the names type checkers see)

sys.modules[__name__] = _moved
