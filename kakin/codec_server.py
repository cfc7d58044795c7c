"""Moved to api/codec_server.py; this alias goes when every import has moved."""

import sys

from api import codec_server as _moved
from api.codec_server import *  # noqa: F403  (the names type checkers see)

sys.modules[__name__] = _moved
