"""``python -m durable_ext.fleet worker ...``."""

import sys

from durable_ext.fleet.cli import main

sys.exit(main())
