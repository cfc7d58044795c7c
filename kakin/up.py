"""Moved to kakin/dev/up.py; this alias goes when every import has moved."""

import sys

from kakin.dev import up as _moved
from kakin.dev.up import *  # noqa: F403  (the names type checkers see)

sys.modules[__name__] = _moved
