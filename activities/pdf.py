"""Moved to kakin/adapters/pdf.py; this alias goes when every import has moved."""

import sys

from kakin.adapters import pdf as _moved
from kakin.adapters.pdf import *  # noqa: F403  (the names type checkers see)

sys.modules[__name__] = _moved
