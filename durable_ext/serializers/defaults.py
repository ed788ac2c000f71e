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
  internally (the callback result itself does use the default).
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

__all__ = ["DefaultSerdesContext", "default_serdes"]

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

    def __init__(self, inner: DurableContext, serdes: SerDes[Any]) -> None:
        super().__init__(inner)
        self._serdes = serdes

    def _wrap_ctx_fn(self, func: Callable[..., R]) -> Callable[..., R]:
        serdes = self._serdes

        @functools.wraps(func)
        def call(ctx: DurableContext, *args: Any) -> R:
            return func(DefaultSerdesContext(ctx, serdes), *args)

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
        """``DurableContext.create_callback``; the result is decoded with the default serdes."""
        return self._inner.create_callback(
            name, _with_serdes(config, CallbackConfig, self._serdes, "serdes")
        )

    def wait_for_callback(
        self,
        submitter: Callable[..., Any],
        name: str | None = None,
        config: WaitForCallbackConfig | None = None,
    ) -> Any:
        """``DurableContext.wait_for_callback``; the callback result uses the default serdes."""
        return self._inner.wait_for_callback(
            submitter, name, _with_serdes(config, WaitForCallbackConfig, self._serdes, "serdes")
        )


def default_serdes(
    spec: str | PipelineSpec | SerDes[Any], **pipeline_options: Any
) -> Callable[[Callable[[Any, Any], R]], Callable[[Any, DurableContext], R]]:
    """Decorate a durable handler so every operation defaults to ``spec``.

    Place it under ``@durable_execution``::

        @durable_execution
        @default_serdes("msgpack+zstd")
        def handler(event, context): ...

    ``pipeline_options`` (``types=``, ``options=``, ``limits=``) go to
    :func:`durable_ext.serdes`.
    """
    if isinstance(spec, SerDes):
        serdes = spec
    else:
        from durable_ext.serializers.pipeline import build_pipeline

        serdes = build_pipeline(spec, **pipeline_options)

    def decorate(handler: Callable[[Any, Any], R]) -> Callable[[Any, DurableContext], R]:
        @functools.wraps(handler)
        def run(event: Any, context: DurableContext) -> R:
            return handler(event, DefaultSerdesContext(context, serdes))

        return run

    return decorate
