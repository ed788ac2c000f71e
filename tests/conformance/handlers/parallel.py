"""Handlers for the ``parallel`` cases (8-x)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aws_durable_execution_sdk_python.config import (
    CompletionConfig,
    Duration,
    NestingType,
    ParallelBranch,
    ParallelConfig,
)
from aws_durable_execution_sdk_python.context import DurableContext
from aws_durable_execution_sdk_python.serdes import SerDes, SerDesContext

from conformance.handlers._batch import FULL, NO_STATUS, projection
from conformance.handlers._common import constant
from conformance.handlers._registry import case

Branch = Callable[[DurableContext], Any]


def returns(value: Any) -> Branch:
    """A branch returning ``value`` directly, with no durable operation inside."""
    return lambda c: value


def step_returning(value: Any) -> Branch:
    """A branch running one step that returns ``value``."""
    return lambda c: c.step(constant(value), name=f"step-{value}")


def raises(message: str = "branch failed") -> Branch:
    def branch(c: DurableContext) -> Any:
        raise RuntimeError(message)

    return branch


def sequential(**completion: Any) -> ParallelConfig:
    """max-concurrency 1 (deterministic order), with an optional completion config."""
    config = (
        CompletionConfig(**completion)
        if completion
        else CompletionConfig(tolerated_failure_count=0, tolerated_failure_percentage=0)
    )
    return ParallelConfig(max_concurrency=1, completion_config=config)


class WrapSerDes(SerDes[Any]):
    """Stores a value as ``{"wrapped": value}`` and unwraps it on read."""

    def serialize(self, value: Any, serdes_context: SerDesContext) -> str:
        return json.dumps({"wrapped": value})

    def deserialize(self, data: str, serdes_context: SerDesContext) -> Any:
        return json.loads(data)["wrapped"]


@case("8-1")
def parallel_basic(event: Any, ctx: DurableContext) -> Any:
    branches: list[Any] = [step_returning("task-1"), step_returning("task-2")]
    return ctx.parallel(branches, name="parallel", config=sequential()).get_results()


@case("8-2")
def parallel_unnamed(event: Any, ctx: DurableContext) -> Any:
    return ctx.parallel([returns("alpha"), returns("beta")], config=sequential()).get_results()


@case("8-3")
def parallel_named_branches(event: Any, ctx: DurableContext) -> Any:
    branches: list[Any] = [
        ParallelBranch(func=returns("one"), name="first"),
        ParallelBranch(func=returns("two"), name="second"),
    ]
    return ctx.parallel(branches, name="named", config=sequential()).get_results()


@case("8-4")
def parallel_heterogeneous(event: Any, ctx: DurableContext) -> Any:
    branches: list[Any] = [returns("hello"), returns(42), returns({"k": "v"})]
    return ctx.parallel(branches, name="hetero", config=sequential()).get_results()


@case("8-5")
def parallel_empty(event: Any, ctx: DurableContext) -> Any:
    return ctx.parallel([], name="empty").get_results()


@case("8-6")
def parallel_fail_fast(event: Any, ctx: DurableContext) -> Any:
    branches: list[Any] = [returns("ok"), raises(), returns("never")]
    result = ctx.parallel(branches, name="failfast", config=sequential(tolerated_failure_count=0))
    return projection(result, *FULL)


@case("8-7")
def parallel_rethrow(event: Any, ctx: DurableContext) -> Any:
    branches: list[Any] = [raises(), returns("never")]
    result = ctx.parallel(branches, name="throwing", config=sequential(tolerated_failure_count=0))
    result.throw_if_error()
    return result.get_results()


@case("8-8")
def parallel_min_successful(event: Any, ctx: DurableContext) -> Any:
    branches: list[Any] = [returns(f"b{i}") for i in range(4)]
    result = ctx.parallel(branches, name="min-successful", config=sequential(min_successful=2))
    return projection(result, "completionReason", "successCount", "totalCount")


@case("8-9")
def parallel_tolerated(event: Any, ctx: DurableContext) -> Any:
    branches: list[Any] = [returns("a"), raises(), returns("c")]
    result = ctx.parallel(branches, name="tolerated", config=sequential(tolerated_failure_count=1))
    return projection(result, *FULL)


@case("8-10")
def parallel_tolerance_exceeded(event: Any, ctx: DurableContext) -> Any:
    branches: list[Any] = [raises(), raises(), returns("never")]
    result = ctx.parallel(
        branches, name="tolerated-exceeded", config=sequential(tolerated_failure_count=1)
    )
    return projection(result, *NO_STATUS)


@case("8-11")
def parallel_concurrent(event: Any, ctx: DurableContext) -> Any:
    branches: list[Any] = [returns("r0"), returns("r1"), returns("r2")]
    return ctx.parallel(
        branches, name="concurrent", config=ParallelConfig(max_concurrency=2)
    ).get_results()


@case("8-12")
def parallel_flat(event: Any, ctx: DurableContext) -> Any:
    config = ParallelConfig(max_concurrency=1, nesting_type=NestingType.FLAT)
    return ctx.parallel(
        [step_returning("fa"), step_returning("fb")], name="flat", config=config
    ).get_results()


@case("8-13")
def parallel_tolerated_percentage(event: Any, ctx: DurableContext) -> Any:
    branches: list[Any] = [raises(), raises(), returns("c"), returns("d")]
    result = ctx.parallel(
        branches, name="tolerated-pct", config=sequential(tolerated_failure_percentage=25)
    )
    return projection(result, *NO_STATUS)


@case("8-14")
def parallel_wait_in_branch(event: Any, ctx: DurableContext) -> Any:
    def waiting_branch(c: DurableContext) -> str:
        c.wait(Duration.from_seconds(2))
        return "b1"

    branches: list[Any] = [step_returning("b0"), waiting_branch]
    return ctx.parallel(branches, name="replay", config=sequential()).get_results()


@case("8-15")
def parallel_item_serdes(event: Any, ctx: DurableContext) -> Any:
    config = ParallelConfig(max_concurrency=1, item_serdes=WrapSerDes())
    return ctx.parallel([returns("x"), returns("y")], name="serde", config=config).get_results()


@case("8-16")
def parallel_all_fail_tolerated(event: Any, ctx: DurableContext) -> Any:
    branches: list[Any] = [raises(), raises(), raises()]
    result = ctx.parallel(branches, name="all-fail", config=sequential(tolerated_failure_count=3))
    return projection(result, *FULL)


@case("8-17")
def parallel_min_not_reached(event: Any, ctx: DurableContext) -> Any:
    branches: list[Any] = [returns("a"), raises(), returns("c")]
    result = ctx.parallel(branches, name="min-not-reached", config=sequential(min_successful=3))
    return projection(result, *FULL)


@case("8-18")
def parallel_combined(event: Any, ctx: DurableContext) -> Any:
    branches: list[Any] = [raises(), raises(), returns("c"), returns("d")]
    result = ctx.parallel(
        branches,
        name="combined",
        config=sequential(min_successful=3, tolerated_failure_count=1),
    )
    return projection(result, *NO_STATUS)


@case("8-19")
def parallel_bad_concurrency(event: Any, ctx: DurableContext) -> Any:
    # ParallelConfig rejects max_concurrency=0 with a ValidationError before anything runs.
    config = ParallelConfig(max_concurrency=0)
    return ctx.parallel([returns("a"), returns("b")], name="bad-concurrency", config=config)


@case("8-20")
def parallel_accessors(event: Any, ctx: DurableContext) -> Any:
    branches: list[Any] = [returns("a"), raises(), returns("c")]
    result = ctx.parallel(branches, name="accessors", config=sequential(tolerated_failure_count=1))
    return {
        "hasFailure": result.has_failure,
        "successCount": len(result.succeeded()),
        "failureCount": len(result.failed()),
        "errorCount": len(result.get_errors()),
    }


@case("8-21")
def parallel_nested(event: Any, ctx: DurableContext) -> Any:
    def branch_a(c: DurableContext) -> Any:
        inner = [step_returning("i1"), step_returning("i2")]
        return c.parallel(inner, name="inner", config=sequential()).get_results()

    return ctx.parallel([branch_a], name="outer", config=sequential()).get_results()


@case("8-22")
def parallel_percentage_boundary(event: Any, ctx: DurableContext) -> Any:
    branches: list[Any] = [raises(), returns("b"), returns("c"), returns("d")]
    result = ctx.parallel(
        branches, name="pct-boundary", config=sequential(tolerated_failure_percentage=25)
    )
    return projection(result, *FULL)
