"""Moved to kakin/adapters/rendering.py; this alias goes when every import has moved."""

import sys

from kakin.adapters import rendering as _moved
from kakin.adapters.rendering import *  # noqa: F403  (the names type checkers see)

sys.modules[__name__] = _moved
