"""``python worker.py [--role all|workflows|activities]``: the kakin worker.

The entry point only; what it runs and its options are kakin/runtime.py's
(``worker_main``, the same worker ``kakin worker`` runs).
"""

from __future__ import annotations

import sys

from kakin.runtime import worker_main
from kakin.views.webhook_events import event_data

if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1:], shape_event=event_data))
