"""Case-id -> handler table and the decorator the category modules fill it with."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from aws_durable_execution_sdk_python.execution import durable_execution

Isolation = Literal["thread", "process"]


@dataclass(frozen=True, kw_only=True)
class Target:
    """A function a case calls with ``ctx.invoke``."""

    function_name: str
    handler: str  # "module:attr"
    durable: bool = True


@dataclass(frozen=True, kw_only=True)
class CaseHandler:
    """How to run one conformance case."""

    case_id: str
    function_name: str
    handler: str  # "module:attr", importable from a fresh interpreter too
    targets: tuple[Target, ...] = ()
    # "process": every invocation in its own process, because the handler crashes it.
    isolation: Isolation = "thread"


REGISTRY: dict[str, CaseHandler] = {}


def case(
    case_id: str,
    *,
    targets: tuple[Target, ...] = (),
    isolation: Isolation = "thread",
    plugins: list[Any] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``fn`` (a plain ``(event, ctx)`` function) as the handler of ``case_id``."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        if case_id in REGISTRY:
            msg = f"case {case_id} registered twice ({REGISTRY[case_id].handler})"
            raise ValueError(msg)
        wrapped = durable_execution(fn, plugins=plugins) if plugins else durable_execution(fn)
        REGISTRY[case_id] = CaseHandler(
            case_id=case_id,
            function_name=f"conformance-{case_id}",
            handler=f"{fn.__module__}:{fn.__name__}",
            targets=targets,
            isolation=isolation,
        )
        return wrapped

    return deco


def target(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a chained-invoke target as durable (wrapped with ``durable_execution``)."""
    return durable_execution(fn)
