"""``python starter.py start|cancel|pause|resume|status|update-card ...``: the support
command line for subscriptions.

The entry point only; the commands, their options and their help are
kakin/cli/subscriptions.py's (``starter_main``, the commands ``kakin`` shares).
"""

from __future__ import annotations

from kakin.cli.subscriptions import starter_main
from kakin.runtime import exit_process

if __name__ == "__main__":
    exit_process(starter_main())
