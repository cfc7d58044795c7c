"""Moved to kakin/services/invoices.py; this alias goes when every import has moved."""

import sys

from kakin.services import invoices as _moved
from kakin.services.invoices import *  # noqa: F403  (the names type checkers see)

sys.modules[__name__] = _moved
