"""Moved to kakin/adapters/stripe_gateway.py; this alias goes when every import has moved."""

import sys

from kakin.adapters import stripe_gateway as _moved
from kakin.adapters.stripe_gateway import *  # noqa: F403  (the names type checkers see)

sys.modules[__name__] = _moved
