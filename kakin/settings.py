"""Moved to kakin/platform/settings.py; this alias goes when every import has moved."""

import sys

from kakin.platform import settings as _moved
from kakin.platform.settings import *  # noqa: F403  (the names type checkers see)

sys.modules[__name__] = _moved
