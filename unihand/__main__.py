"""``python -m unihand``: the same command line as ``unihand``."""

import sys

from unihand.cli import main

sys.exit(main())
