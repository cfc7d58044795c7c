"""Moved to kakin/adapters/links.py; this alias goes when every import has moved."""

import sys

from kakin.adapters import links as _moved
from kakin.adapters.links import *  # noqa: F403  (the names type checkers see)

sys.modules[__name__] = _moved
