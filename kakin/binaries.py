"""Moved to kakin/platform/binaries.py; this alias goes when every import has moved."""

import sys

from kakin.platform import binaries as _moved
from kakin.platform.binaries import *  # noqa: F403  (the names type checkers see)

sys.modules[__name__] = _moved
