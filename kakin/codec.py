"""Moved to kakin/platform/codec.py; this alias goes when every import has moved."""

import sys

from kakin.platform import codec as _moved
from kakin.platform.codec import *  # noqa: F403  (the names type checkers see)

sys.modules[__name__] = _moved
