"""Moved to kakin/dev/embedded.py; this alias goes when every import has moved."""

import sys

from kakin.dev import embedded as _moved
from kakin.dev.embedded import *  # noqa: F403  (the names type checkers see)

sys.modules[__name__] = _moved
