"""Moved to kakin/adapters/mailer.py; this alias goes when every import has moved."""

import sys

from kakin.adapters import mailer as _moved
from kakin.adapters.mailer import *  # noqa: F403  (the names type checkers see)

sys.modules[__name__] = _moved
