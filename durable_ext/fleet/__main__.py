"""``python -m durable_ext.fleet worker ...``."""

import sys

from durable_ext.fleet._signals import defer_stop_signals

# before the heavy imports: a SIGTERM while the worker starts must stop it cleanly
defer_stop_signals()

from durable_ext.fleet.cli import main  # noqa: E402

sys.exit(main())
