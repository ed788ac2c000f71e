"""An execution-wide default serdes, applied without patching the SDK.

The SDK has no global serializer setting: each operation falls back to its own
hard-coded default. :func:`default_serdes` wraps a handler so that the
``DurableContext`` it receives (and every child, map item and parallel branch context
below it) fills in ``serdes=`` wherever the caller's config leaves it unset.

What still goes through the SDK's JSON, and why:

* the execution input and result: the service hands the handler its input and takes
  its result as JSON text, outside any operation;
* ``invoke`` payloads and results: the callee is another durable function that reads
  its input and writes its result as plain JSON;
* the ``WaitForCallback`` context's own result: the SDK builds that context's config
  internally.

Callback results are handed to the handler as the SDK hands them, the text the outside
system sent, unless ``callback_serdes=`` says otherwise: adopting a serializer must not
change what ``callback.result()`` returns, and an outside sender must not be able to fail
the execution in the serializer (see :mod:`durable_ext.serializers.callbacks`).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from aws_durable_execution_sdk_python.config import (
    CallbackConfig,
    ChildConfig,
    MapConfig,
    ParallelBranch,
    ParallelConfig,
    StepConfig,
    WaitForCallbackConfig,
)
from aws_durable_execution_sdk_python.context import DurableContext
from aws_durable_execution_sdk_python.serdes import SerDes
from aws_durable_execution_sdk_python.waits import WaitForConditionConfig

from durable_ext._context import ContextProxy
from durable_ext.spec import PipelineSpec

__all__ = ["DefaultSerdesContext", "default_serdes", "handler_serdes"]

_SERDES_ATTR = "__durable_ext_serdes__"

R = TypeVar("R")
C = TypeVar("C")


def _with_serdes(
    config: C | None, factory: Callable[[], C], serdes: SerDes[Any], *fields: str
) -> C:
    if config is None:
        config = factory()
    changes = {f: serdes for f in fields if getattr(config, f) is None}
    return dataclasses.replace(config, **changes) if changes else config  # type: ignore[type-var]


class DefaultSerdesContext(ContextProxy):
    """A ``DurableContext`` whose operations default to one serdes.

    Everything not overridden here is delegated to the wrapped context unchanged.
    """

    _inner: DurableContext

    def __init__(
        self,
        inner: DurableContext,
        serdes: SerDes[Any],
        callback_serdes: SerDes[Any] | None = None,
    ) -> None:
        super().__init__(inner)
        self._serdes = serdes
        self._callback_serdes = callback_serdes

    def _wrap_ctx_fn(self, func: Callable[..., R]) -> Callable[..., R]:
        serdes, callback_serdes = self._serdes, self._callback_serdes

        @functools.wraps(func)
        def call(ctx: DurableContext, *args: Any) -> R:
            return func(DefaultSerdesContext(ctx, serdes, callback_serdes), *args)

        return call

    def step(
        self, func: Callable[..., R], name: str | None = None, config: StepConfig | None = None
    ) -> R:
        """``DurableContext.step`` with the default serdes."""
        return self._inner.step(
            func, name, _with_serdes(config, StepConfig, self._serdes, "serdes")
        )

    def run_in_child_context(
        self,
        func: Callable[..., R],
        name: str | None = None,
        config: ChildConfig[Any] | None = None,
    ) -> R:
        """``DurableContext.run_in_child_context`` with the default serdes, recursively."""
        return self._inner.run_in_child_context(
            self._wrap_ctx_fn(func), name, _with_serdes(config, ChildConfig, self._serdes, "serdes")
        )

    def map(
        self,
        inputs: Sequence[Any],
        func: Callable[..., Any],
        name: str | None = None,
        config: MapConfig[Any] | None = None,
    ) -> Any:
        """``DurableContext.map``: items and the BatchResult use the default serdes."""
        cfg = _with_serdes(config, MapConfig, self._serdes, "serdes", "item_serdes")
        return self._inner.map(inputs, self._wrap_ctx_fn(func), name, cfg)

    def parallel(
        self,
        functions: Sequence[Any],
        name: str | None = None,
        config: ParallelConfig | None = None,
    ) -> Any:
        """``DurableContext.parallel``: branches and the BatchResult use the default serdes."""
        wrapped = [
            dataclasses.replace(f, func=self._wrap_ctx_fn(f.func))
            if isinstance(f, ParallelBranch)
            else self._wrap_ctx_fn(f)
            for f in functions
        ]
        cfg = _with_serdes(config, ParallelConfig, self._serdes, "serdes", "item_serdes")
        return self._inner.parallel(wrapped, name, cfg)

    def wait_for_condition(
        self, check: Callable[..., R], config: WaitForConditionConfig[R], name: str | None = None
    ) -> R:
        """``DurableContext.wait_for_condition`` with the default serdes for its state."""
        if config is not None and config.serdes is None:
            config = dataclasses.replace(config, serdes=self._serdes)
        return self._inner.wait_for_condition(check, config, name)

    def create_callback(self, name: str | None = None, config: CallbackConfig | None = None) -> Any:
        """``DurableContext.create_callback``; the result as sent, or by ``callback_serdes``."""
        if self._callback_serdes is not None:
            config = _with_serdes(config, CallbackConfig, self._callback_serdes, "serdes")
        return self._inner.create_callback(name, config)

    def wait_for_callback(
        self,
        submitter: Callable[..., Any],
        name: str | None = None,
        config: WaitForCallbackConfig | None = None,
    ) -> Any:
        """``DurableContext.wait_for_callback``; the result as sent, or by ``callback_serdes``."""
        if self._callback_serdes is not None:
            config = _with_serdes(config, WaitForCallbackConfig, self._callback_serdes, "serdes")
        return self._inner.wait_for_callback(submitter, name, config)


def default_serdes(
    spec: str | PipelineSpec | SerDes[Any],
    *,
    callback_serdes: SerDes[Any] | bool | None = None,
    **pipeline_options: Any,
) -> Callable[[Callable[[Any, Any], R]], Callable[[Any, DurableContext], R]]:
    """Decorate a durable handler so every operation defaults to ``spec``.

    Place it under ``@durable_execution``::

        @durable_execution
        @default_serdes("msgpack+zstd")
        def handler(event, context): ...

    ``pipeline_options`` (``types=``, ``options=``, ``limits=``) go to
    :func:`durable_ext.serdes`. Callback results stay as the SDK hands them (the text the
    sender sent) unless ``callback_serdes`` is given: ``True`` decodes results framed by
    this serdes and hands any other text over unchanged
    (:class:`~durable_ext.serializers.callbacks.CallbackSerDes`); a ``SerDes`` is used as is.
    """
    if isinstance(spec, SerDes):
        serdes = spec
    else:
        from durable_ext.serializers.pipeline import build_pipeline

        serdes = build_pipeline(spec, **pipeline_options)

    if callback_serdes is True:
        from durable_ext.serializers.callbacks import CallbackSerDes

        callbacks: SerDes[Any] | None = CallbackSerDes(serdes)
    else:
        callbacks = callback_serdes or None

    def decorate(handler: Callable[[Any, Any], R]) -> Callable[[Any, DurableContext], R]:
        @functools.wraps(handler)
        def run(event: Any, context: DurableContext) -> R:
            return handler(event, DefaultSerdesContext(context, serdes, callbacks))

        # functools.wraps copies __dict__, so this survives @durable_execution above: tools
        # that hold only the handler (the pytest plugin) decode with the handler's serdes.
        setattr(run, _SERDES_ATTR, serdes)
        return run

    return decorate


def handler_serdes(handler: Any) -> SerDes[Any] | None:
    """Return the serdes a handler decorated with :func:`default_serdes` uses, else None."""
    for _ in range(32):  # bounded: a chain of functools.wraps layers
        found = getattr(handler, _SERDES_ATTR, None)
        if isinstance(found, SerDes):
            return found
        handler = getattr(handler, "__wrapped__", None)
        if handler is None:
            break
    return None
