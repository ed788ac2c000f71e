"""Replay-aware logging for every standard-library logger.

The SDK replays a durable handler from the top after every suspension, so a plain
``logging`` call runs again on each invocation. The SDK drops those duplicates only
for ``context.logger``, and that logger rejects ``exc_info``, ``stack_info`` and
``stacklevel``, has no ``critical()`` and reports its own file as the caller.

One line of setup makes every logger replay-aware, Powertools' ``Logger`` and
structlog's stdlib integration included::

    from aws_durable_execution_sdk_python import durable_execution
    from durable_ext.logging import replay_aware

    @durable_execution
    @replay_aware
    def handler(event, context): ...

How it decides. The decorator wraps the ``DurableContext`` the handler receives (and
every child context, map item, parallel branch, step, wait-for-condition check and
callback submitter below it) so that, while user code runs, a context variable names
the SDK object whose replay status applies: the context for code in a handler or
child body, the step's own SDK logger for code inside a step. That is the status the
SDK itself consults for ``context.logger``, so a line is dropped exactly when the SDK
would drop it. Contexts set the variable on the thread that runs them, so map and
parallel branches on worker threads are judged by their own branch context.

Where it acts. A :class:`ReplayFilter` on every handler drops replayed records and
adds the durable fields (``executionArn``, ``operationId``, ``operationName``,
``parentId``, ``attempt``, ``replayed``) as record attributes; a log record factory
captures the verdict when the record is made, so handlers that emit later (queues,
buffers) judge the line by where it was logged. Outside a durable execution neither
changes anything.

Set ``DURABLE_EXT_LOG_REPLAYED=1`` (or ``replay_aware(show_replayed=True)``) to keep
replayed lines, tagged ``replayed=True`` and prefixed ``[replay]``.
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import logging
import os
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from typing import Any, TypeVar, overload

from durable_ext._context import ContextProxy
from durable_ext.errors import ConfigError

__all__ = [
    "FIELDS",
    "SHOW_REPLAYED_ENV",
    "DurableLoggerAdapter",
    "ReplayAwareContext",
    "ReplayFilter",
    "add_durable_fields",
    "current_fields",
    "install",
    "is_replaying",
    "replay_aware",
    "uninstall",
]

R = TypeVar("R")

#: environment variable that keeps replayed lines (``1``/``true``/``yes``/``on``)
SHOW_REPLAYED_ENV = "DURABLE_EXT_LOG_REPLAYED"
#: record attributes added inside a durable execution (only those that have a value)
FIELDS = ("executionArn", "operationId", "operationName", "parentId", "attempt", "replayed")
_DEFAULT_PREFIX = "[replay] "
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})
# Record attribute carrying the verdict from record creation to the handlers. States:
# absent (not judged), _Pending (made inside a scope), None (kept; formatters such as
# Powertools' drop None-valued keys, so nothing leaks into output), _DROPPED.
_MARK = "_durable_ext"
_DROPPED = object()
_ABSENT = object()


@dataclasses.dataclass(frozen=True, slots=True)
class _Scope:
    """Where user code is running: whose replay status applies and what to add."""

    is_replaying: Callable[[], bool]
    fields: Mapping[str, object]
    show_replayed: bool
    replay_prefix: str

    def child(self, is_replaying: Callable[[], bool], **fields: object) -> _Scope:
        merged = {"executionArn": self.fields.get("executionArn")}
        merged.update(fields)
        return _Scope(
            is_replaying,
            {k: v for k, v in merged.items() if v is not None},
            self.show_replayed,
            self.replay_prefix,
        )


@dataclasses.dataclass(frozen=True, slots=True)
class _Pending:
    scope: _Scope
    replayed: bool


_SCOPE: contextvars.ContextVar[_Scope | None] = contextvars.ContextVar(
    "durable_ext_log_scope", default=None
)


def _never() -> bool:
    return False


# -- reading the SDK --------------------------------------------------------------------


def _sdk_logger_parts(op_logger: Any) -> tuple[Mapping[str, object], Callable[[], bool]]:
    """Return the default extra and replay source of an SDK ``Logger`` (both private in 3.x).

    A step, check or submitter body only runs as new work (the SDK flips its context to
    NEW before a non-terminal step), so a logger without a replay source is "never".
    """
    extra = getattr(op_logger, "_default_extra", None)
    source = getattr(op_logger, "_is_replaying", None)
    return (
        extra if isinstance(extra, Mapping) else {},
        source if callable(source) else _never,
    )


def _context_operation_id(ctx: Any) -> str | None:
    """Return the operation id of a child context (its step-id prefix in SDK 3.x)."""
    value = getattr(ctx, "_step_id_prefix", None)
    return value if isinstance(value, str) else None


def _underlying_logger(sdk_logger: Any) -> Any:
    get = getattr(sdk_logger, "get_logger", None)
    return get() if callable(get) else sdk_logger


# -- the verdict ------------------------------------------------------------------------


def _judge(record: logging.LogRecord) -> bool:
    """Decide once per record; enrich kept records. Returns whether to emit."""
    d = record.__dict__
    mark = d.get(_MARK, _ABSENT)
    if mark is None:
        return True
    if mark is _DROPPED:
        return False
    if isinstance(mark, _Pending):
        scope, replayed = mark.scope, mark.replayed
    else:  # made before install() or by a foreign factory: judge where it is handled
        current = _SCOPE.get()
        if current is None:
            return True
        scope, replayed = current, current.is_replaying()
    if replayed and not scope.show_replayed:
        d[_MARK] = _DROPPED
        return False
    d[_MARK] = None
    for key, value in scope.fields.items():
        d.setdefault(key, value)
    d.setdefault("replayed", replayed)
    if replayed and scope.replay_prefix and isinstance(record.msg, str):
        record.msg = scope.replay_prefix + record.msg
    return True


class ReplayFilter(logging.Filter):
    """Drops records logged while the SDK replays; adds the durable fields to the rest.

    Stateless: every decision comes from the record or the current durable scope, so
    one instance can sit on any number of handlers. :func:`install` attaches it to
    every handler; attach it yourself for handlers created later, e.g. in
    ``logging.config.dictConfig``::

        "filters": {"durable": {"()": "durable_ext.logging.ReplayFilter"}}
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Return whether ``record`` is new work (or replayed lines are shown)."""
        return _judge(record)


_FILTER = ReplayFilter()


class _RecordFactory:
    """Chained log record factory that captures the verdict where the line is logged."""

    def __init__(self, previous: Callable[..., logging.LogRecord]) -> None:
        self.previous = previous

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.previous(*args, **kwargs)
        scope = _SCOPE.get()
        if scope is not None:
            # Only the private mark: fields are added after `extra`, which must not clash.
            record.__dict__[_MARK] = _Pending(scope, scope.is_replaying())
        return record


def _handlers() -> Iterator[logging.Handler]:
    yield from logging.root.handlers
    for logger in list(logging.root.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger):
            yield from logger.handlers


def install() -> None:
    """Make every current handler replay-aware; idempotent and cheap to repeat.

    Adds :class:`ReplayFilter` to each handler of the root logger and of every named
    logger (Powertools' included), and chains the record factory. ``replay_aware``
    calls it on every invocation, so handlers created at import time are covered.
    """
    for handler in _handlers():
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
    if not isinstance(logging.getLogRecordFactory(), _RecordFactory):
        logging.setLogRecordFactory(_RecordFactory(logging.getLogRecordFactory()))


def uninstall() -> None:
    """Undo :func:`install`: remove the filter from every handler and the factory."""
    for handler in _handlers():
        handler.removeFilter(_FILTER)
    factory = logging.getLogRecordFactory()
    if isinstance(factory, _RecordFactory):
        logging.setLogRecordFactory(factory.previous)


# -- scopes -----------------------------------------------------------------------------


def is_replaying() -> bool | None:
    """Return the replay status of the durable code running here; ``None`` outside one."""
    scope = _SCOPE.get()
    return None if scope is None else scope.is_replaying()


def current_fields() -> dict[str, object]:
    """Return the durable fields of the code running here (empty outside a durable execution)."""
    scope = _SCOPE.get()
    if scope is None:
        return {}
    return {**scope.fields, "replayed": scope.is_replaying()}


def _run_in(scope: _Scope, func: Callable[..., R], *args: Any) -> R:
    token = _SCOPE.set(scope)
    try:
        return func(*args)
    finally:
        _SCOPE.reset(token)


def add_durable_fields(
    logger: object, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Drop replayed events and add the durable fields to the rest (a structlog processor).

    Put it early in ``structlog.configure(processors=[...])``; it works with any
    structlog logger, stdlib-backed or not.
    """
    scope = _SCOPE.get()
    if scope is None:
        return event_dict
    replayed = scope.is_replaying()
    if replayed and not scope.show_replayed:
        import structlog  # only structlog users call this processor

        raise structlog.DropEvent
    for key, value in scope.fields.items():
        event_dict.setdefault(key, value)
    event_dict.setdefault("replayed", replayed)
    return event_dict


# -- the logger users get from the context ---------------------------------------------


class DurableLoggerAdapter(logging.LoggerAdapter[Any]):
    """``context.logger`` with the whole ``logging`` API and the caller's location.

    Accepts ``exc_info``, ``stack_info``, ``stacklevel`` and ``extra``, and offers
    ``critical()``, ``log()`` and ``isEnabledFor()``. Replayed calls return before a
    record is made. Only ``process`` and ``isEnabledFor`` are overridden, and neither
    is on the stack when the record is made, so ``funcName``/``lineno`` are the
    caller's.
    """

    def __init__(self, logger: Any, scope: _Scope) -> None:
        super().__init__(logger, {})
        self._scope = scope

    def _active(self) -> _Scope:
        return _SCOPE.get() or self._scope

    def isEnabledFor(self, level: int) -> bool:
        """Return False while replaying (unless replayed lines are shown), else ask the logger."""
        scope = self._active()
        if not scope.show_replayed and scope.is_replaying():
            return False
        return bool(self.logger.isEnabledFor(level))

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        """Add the durable fields under the caller's ``extra`` (the caller's win)."""
        kwargs["extra"] = {**self._active().fields, **(kwargs.get("extra") or {})}
        return msg, kwargs


def _adapter_for(sdk_logger: Any, scope: _Scope) -> Any:
    target = _underlying_logger(sdk_logger)
    if callable(getattr(target, "log", None)) and callable(getattr(target, "isEnabledFor", None)):
        return DurableLoggerAdapter(target, scope)
    return sdk_logger  # not stdlib-shaped: keep the SDK's own replay-aware logger


def _with_logger(op_ctx: Any, scope: _Scope) -> Any:
    if dataclasses.is_dataclass(op_ctx) and hasattr(op_ctx, "logger"):
        return dataclasses.replace(op_ctx, logger=_adapter_for(op_ctx.logger, scope))  # type: ignore[type-var]
    return op_ctx


# -- the context wrapper ----------------------------------------------------------------


class ReplayAwareContext(ContextProxy):
    """A ``DurableContext`` that tells logging which replay status applies.

    Everything not overridden is delegated to the wrapped context unchanged; the
    operations that run user code wrap that code so it runs in its own scope.
    """

    def __init__(self, inner: Any, scope: _Scope) -> None:
        super().__init__(inner)
        self._scope = scope

    @property
    def logger(self) -> Any:
        """The context's logger as a :class:`DurableLoggerAdapter`."""
        return _adapter_for(self._inner.logger, self._scope)

    # Code that receives a context: run it in the child's scope, pass it wrapped.
    def _ctx_fn(self, func: Callable[..., R], name: str | None = None) -> Callable[..., R]:
        parent = self._scope

        @functools.wraps(func)
        def call(ctx: Any, *args: Any) -> R:
            scope = parent.child(
                ctx.is_replaying,
                operationId=_context_operation_id(ctx),
                operationName=name,
                parentId=parent.fields.get("operationId"),
            )
            return _run_in(scope, func, ReplayAwareContext(ctx, scope), *args)

        return call

    # Code that receives an operation context (step, check, submitter): its SDK logger
    # carries the operation's identity and replay source.
    def _op_fn(self, func: Callable[..., R], op_index: int) -> Callable[..., R]:
        parent = self._scope

        @functools.wraps(func)
        def call(*args: Any) -> R:
            op_ctx = args[op_index]
            extra, source = _sdk_logger_parts(getattr(op_ctx, "logger", None))
            scope = parent.child(
                source,
                operationId=extra.get("operationId"),
                operationName=extra.get("operationName"),
                parentId=extra.get("parentId"),
                attempt=getattr(op_ctx, "attempt", None),
            )
            new_args = list(args)
            new_args[op_index] = _with_logger(op_ctx, scope)
            return _run_in(scope, func, *new_args)

        return call

    def step(self, func: Callable[..., R], name: str | None = None, config: Any = None) -> R:
        """``DurableContext.step``; the step body logs in the step's scope."""
        result: R = self._inner.step(self._op_fn(func, 0), name, config)
        return result

    def run_in_child_context(
        self, func: Callable[..., R], name: str | None = None, config: Any = None
    ) -> R:
        """``DurableContext.run_in_child_context``; the body logs in the child's scope."""
        label = name or getattr(func, "_original_name", None)
        result: R = self._inner.run_in_child_context(self._ctx_fn(func, label), name, config)
        return result

    def map(
        self, inputs: Sequence[Any], func: Callable[..., Any], name: str | None = None,
        config: Any = None,
    ) -> Any:
        """``DurableContext.map``; each item logs in its own branch scope and thread."""
        return self._inner.map(inputs, self._ctx_fn(func), name, config)

    def parallel(
        self, functions: Sequence[Any], name: str | None = None, config: Any = None
    ) -> Any:
        """``DurableContext.parallel``; each branch logs in its own scope and thread."""
        from aws_durable_execution_sdk_python.config import ParallelBranch

        wrapped = [
            dataclasses.replace(f, func=self._ctx_fn(f.func, f.name))
            if isinstance(f, ParallelBranch)
            else self._ctx_fn(f)
            for f in functions
        ]
        return self._inner.parallel(wrapped, name, config)

    def wait_for_condition(
        self, check: Callable[..., R], config: Any, name: str | None = None
    ) -> R:
        """``DurableContext.wait_for_condition``; each check logs in the check's scope."""
        result: R = self._inner.wait_for_condition(self._op_fn(check, 1), config, name)
        return result

    def wait_for_callback(
        self, submitter: Callable[..., Any], name: str | None = None, config: Any = None
    ) -> Any:
        """``DurableContext.wait_for_callback``; the submitter logs in its step's scope."""
        return self._inner.wait_for_callback(self._op_fn(submitter, 1), name, config)

    def create_child_context(self, operation_id: str, **kwargs: Any) -> ReplayAwareContext:
        """``DurableContext.create_child_context``, wrapped in the child's scope."""
        ctx = self._inner.create_child_context(operation_id, **kwargs)
        scope = self._scope.child(
            ctx.is_replaying,
            operationId=operation_id,
            parentId=self._scope.fields.get("operationId"),
        )
        return ReplayAwareContext(ctx, scope)


# -- the decorator ----------------------------------------------------------------------


def _env_show_replayed() -> bool:
    raw = os.environ.get(SHOW_REPLAYED_ENV, "")
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(
        f"environment variable {SHOW_REPLAYED_ENV}={raw!r} is not a boolean; "
        f"use one of {sorted(_TRUE)} or {sorted(_FALSE - {''})}"
    )


def _looks_like_invocation(event: Any) -> bool:
    """Whether ``event`` is what the service sends to ``@durable_execution`` itself."""
    if isinstance(event, Mapping):
        return "DurableExecutionArn" in event and "CheckpointToken" in event
    return hasattr(event, "durable_execution_arn") and hasattr(event, "checkpoint_token")


@overload
def replay_aware(func: Callable[[Any, Any], R], /) -> Callable[[Any, Any], R]: ...


@overload
def replay_aware(
    *, show_replayed: bool | None = None, replay_prefix: str = ..., install_filter: bool = True
) -> Callable[[Callable[[Any, Any], R]], Callable[[Any, Any], R]]: ...


def replay_aware(
    func: Callable[[Any, Any], R] | None = None,
    /,
    *,
    show_replayed: bool | None = None,
    replay_prefix: str = _DEFAULT_PREFIX,
    install_filter: bool = True,
) -> Any:
    """Decorate a durable handler so every logger drops lines the SDK is replaying.

    Place it under ``@durable_execution`` (it needs the ``DurableContext``)::

        @durable_execution
        @replay_aware
        def handler(event, context): ...

        @durable_execution
        @replay_aware(show_replayed=True)      # keep replayed lines, tagged
        def debug_handler(event, context): ...

    Args:
        func: The handler, when used without arguments.
        show_replayed: Keep replayed lines (tagged ``replayed=True``). ``None`` reads
            ``DURABLE_EXT_LOG_REPLAYED`` when the handler is decorated.
        replay_prefix: Prepended to the message of a shown replayed line; ``""``
            for none.
        install_filter: Call :func:`install` on every invocation (default). Turn off
            to place :class:`ReplayFilter` on chosen handlers yourself.

    Raises:
        ConfigError: ``DURABLE_EXT_LOG_REPLAYED`` is not a boolean.

    """
    show = _env_show_replayed() if show_replayed is None else bool(show_replayed)

    def decorate(handler: Callable[[Any, Any], R]) -> Callable[[Any, Any], R]:
        if install_filter:
            install()

        @functools.wraps(handler)
        def run(event: Any, context: Any) -> R:
            if not callable(getattr(context, "is_replaying", None)):
                if _looks_like_invocation(event):
                    raise TypeError(
                        f"{getattr(handler, '__qualname__', handler)!r}: @replay_aware got a "
                        "raw durable invocation; place it below @durable_execution"
                    )
                return handler(event, context)  # not a durable execution: stay out of it
            if install_filter:
                install()
            execution = getattr(context, "execution_context", None)
            arn = getattr(execution, "durable_execution_arn", None)
            scope = _Scope(
                context.is_replaying,
                {"executionArn": arn} if arn else {},
                show,
                replay_prefix,
            )
            return _run_in(scope, handler, event, ReplayAwareContext(context, scope))

        return run

    return decorate if func is None else decorate(func)
