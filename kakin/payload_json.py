"""Moved to kakin/platform/payload_json.py; this alias goes when every import has moved."""

import sys

from kakin.platform import payload_json as _moved
from kakin.platform.payload_json import *  # noqa: F403  (the names type checkers see)

sys.modules[__name__] = _moved
