"""Moved to kakin/dev/demo.py; this alias goes when every import has moved."""

import sys

from kakin.dev import demo as _moved
from kakin.dev.demo import *  # noqa: F403  (the names type checkers see)

sys.modules[__name__] = _moved
