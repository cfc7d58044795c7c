"""``python -m kakin.cli``."""

import sys

from kakin.cli.main import main

sys.exit(main())
