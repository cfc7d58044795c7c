"""Moved to kakin/services/catalog.py; this alias goes when every import has moved."""

import sys

from kakin.services import catalog as _moved
from kakin.services.catalog import *  # noqa: F403  (the names type checkers see)

sys.modules[__name__] = _moved
