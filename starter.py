"""Start, cancel and inspect subscriptions from a terminal or a script.

    python starter.py start --customer cus_... --price price_... [--trial-days 14]
    python starter.py cancel sub_... --reason "asked by phone" --requested-by support:ken
                                     [--at-period-end]
    python starter.py pause sub_... --reason "travelling" --requested-by support:ken
    python starter.py resume sub_... --requested-by support:ken
    python starter.py status sub_... [--json]
    python starter.py update-card sub_... --card 4242424242424242

Works against any Temporal address (``--temporal-address`` or KAKIN_TEMPORAL_ADDRESS);
the connection options go before the command or after it.
``start`` and ``update-card`` also need the database (KAKIN_DATABASE_URL) and, for the
card, Stripe; ``cancel`` and ``status`` need only Temporal.
"""

from __future__ import annotations

from kakin.cli.subscriptions import (  # noqa: F401  (the names tests import from here)
    add_subscription_commands,
    run_command,
)
from kakin.cli.subscriptions import build_starter_parser as build_parser  # noqa: F401
from kakin.cli.subscriptions import starter_main as main
from kakin.platform.settings import get_settings  # noqa: F401
from kakin.runtime import add_connection_options, exit_process, settings_from  # noqa: F401

if __name__ == "__main__":
    exit_process(main())
