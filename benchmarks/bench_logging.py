"""Cost of one log call with replay-aware logging, side by side in one run.

Run: ``.venv/bin/pytest benchmarks/bench_logging.py --benchmark-group-by=group``

Every case logs one INFO line to a handler that formats the record and writes it
nowhere, so the numbers are the logging machinery (record, filter, adapter,
formatter), not I/O. Cases:

* ``plain``: stdlib logger, nothing of durable_ext installed (the baseline);
* ``installed-outside``: filter and record factory installed, no durable execution
  running (what every other log line in the process pays);
* ``new-work``: inside a durable scope, the line is emitted and enriched;
* ``replayed``: inside a durable scope while replaying: the line is dropped;
* ``ctx-logger-*``: the same through ``context.logger`` (our adapter) and, for
  comparison, the SDK's own ``Logger``;
* ``powertools-*``: a Powertools ``Logger`` (JSON formatter) plain, new work, replayed;
* ``install-scan``: the per-invocation ``install()`` call over this process's loggers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aws_durable_execution_sdk_python.logger import Logger as SdkLogger

import durable_ext.logging as dlog


class NullSink(logging.Handler):
    """Formats the record (so formatter cost counts) and writes it nowhere."""

    def emit(self, record: logging.LogRecord) -> None:
        self.format(record)


class Ctx:
    def __init__(self, replaying: bool) -> None:
        self.replaying = replaying
        self.execution_context = type("EC", (), {"durable_execution_arn": "arn:bench"})()
        self.logger = SdkLogger(logging.getLogger("bench.app"), {}, self.is_replaying)

    def is_replaying(self) -> bool:
        return self.replaying


@pytest.fixture
def app() -> Iterator[logging.Logger]:
    logger = logging.getLogger("bench.app")
    sink = NullSink()
    logger.addHandler(sink)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield logger
    finally:
        logger.removeHandler(sink)
        dlog.uninstall()


def in_scope(replaying: bool, body: Callable[[Any], None], show: bool = False) -> None:
    """Run ``body(context)`` inside a durable scope, the way ``replay_aware`` does."""
    ctx = Ctx(replaying)
    dlog.replay_aware(show_replayed=show, install_filter=False)(lambda e, c: body(c))({}, ctx)


@pytest.mark.benchmark(group="stdlib logger")
def test_plain(benchmark: Any, app: logging.Logger) -> None:
    benchmark(app.info, "order %s charged", 42)


@pytest.mark.benchmark(group="stdlib logger")
def test_installed_outside(benchmark: Any, app: logging.Logger) -> None:
    dlog.install()
    benchmark(app.info, "order %s charged", 42)


@pytest.mark.benchmark(group="stdlib logger")
def test_new_work(benchmark: Any, app: logging.Logger) -> None:
    dlog.install()
    in_scope(False, lambda c: benchmark(app.info, "order %s charged", 42))


@pytest.mark.benchmark(group="stdlib logger")
def test_replayed(benchmark: Any, app: logging.Logger) -> None:
    dlog.install()
    in_scope(True, lambda c: benchmark(app.info, "order %s charged", 42))


@pytest.mark.benchmark(group="stdlib logger")
def test_replayed_shown(benchmark: Any, app: logging.Logger) -> None:
    dlog.install()
    in_scope(True, lambda c: benchmark(app.info, "order %s charged", 42), show=True)


@pytest.mark.benchmark(group="context.logger")
def test_ctx_logger_sdk_new_work(benchmark: Any, app: logging.Logger) -> None:
    sdk = Ctx(False).logger
    benchmark(sdk.info, "order %s charged", 42)


@pytest.mark.benchmark(group="context.logger")
def test_ctx_logger_sdk_replayed(benchmark: Any, app: logging.Logger) -> None:
    sdk = Ctx(True).logger
    benchmark(sdk.info, "order %s charged", 42)


@pytest.mark.benchmark(group="context.logger")
def test_ctx_logger_adapter_new_work(benchmark: Any, app: logging.Logger) -> None:
    dlog.install()
    in_scope(False, lambda c: benchmark(c.logger.info, "order %s charged", 42))


@pytest.mark.benchmark(group="context.logger")
def test_ctx_logger_adapter_replayed(benchmark: Any, app: logging.Logger) -> None:
    dlog.install()
    in_scope(True, lambda c: benchmark(c.logger.info, "order %s charged", 42))


@pytest.fixture
def powertools() -> Iterator[Any]:
    from aws_lambda_powertools import Logger

    pt = Logger(service="bench-pt", logger_handler=NullSink())
    try:
        yield pt
    finally:
        dlog.uninstall()


@pytest.mark.benchmark(group="powertools")
def test_powertools_plain(benchmark: Any, powertools: Any) -> None:
    benchmark(powertools.info, "order charged", order=42)


@pytest.mark.benchmark(group="powertools")
def test_powertools_new_work(benchmark: Any, powertools: Any) -> None:
    dlog.install()
    in_scope(False, lambda c: benchmark(powertools.info, "order charged", order=42))


@pytest.mark.benchmark(group="powertools")
def test_powertools_replayed(benchmark: Any, powertools: Any) -> None:
    dlog.install()
    in_scope(True, lambda c: benchmark(powertools.info, "order charged", order=42))


@pytest.mark.benchmark(group="per invocation")
def test_install_scan(benchmark: Any, app: logging.Logger) -> None:
    # a process with the loggers a Lambda function typically has (boto3, SDK, app)
    import boto3  # noqa: F401 - registers its loggers, as in a real function

    dlog.install()
    benchmark(dlog.install)
