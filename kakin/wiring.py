"""Moved to kakin/runtime.py; this alias goes when every import has moved."""

import sys

from kakin import runtime as _moved
from kakin.runtime import *  # noqa: F403  (the names type checkers see)

sys.modules[__name__] = _moved
