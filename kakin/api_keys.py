"""Moved to kakin/services/api_keys.py; this alias goes when every import has moved."""

import sys

from kakin.services import api_keys as _moved
from kakin.services.api_keys import *  # noqa: F403  (the names type checkers see)

sys.modules[__name__] = _moved
