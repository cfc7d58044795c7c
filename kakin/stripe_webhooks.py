"""Moved to kakin/services/stripe_events.py; this alias goes when every import has moved."""

import sys

from kakin.services import stripe_events as _moved
from kakin.services.stripe_events import *  # noqa: F403  (the names type checkers see)

sys.modules[__name__] = _moved
