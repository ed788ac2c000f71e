"""Handlers for the ``map`` cases (9-x)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aws_durable_execution_sdk_python.concurrency.models import (
    BatchItem,
    BatchResult,
    CompletionReason,
)
from aws_durable_execution_sdk_python.config import (
    BatchItemStatus,
    CompletionConfig,
    Duration,
    MapConfig,
    NestingType,
)
from aws_durable_execution_sdk_python.context import DurableContext
from aws_durable_execution_sdk_python.serdes import JsonSerDes, SerDes, SerDesContext

from conformance.handlers._batch import FULL, NO_STATUS, projection
from conformance.handlers._common import constant
from conformance.handlers._registry import case


def sequential(**completion: Any) -> MapConfig[Any]:
    """max-concurrency 1 (deterministic order), with an optional completion config."""
    config: Any = CompletionConfig(**completion) if completion else CompletionConfig()
    return MapConfig(max_concurrency=1, completion_config=config)


def direct(c: DurableContext, item: Any, index: int, items: Sequence[Any]) -> Any:
    """Returns the item itself."""
    return item


def upper(c: DurableContext, item: Any, index: int, items: Sequence[Any]) -> Any:
    return item.upper()


def fail_on_fail(c: DurableContext, item: Any, index: int, items: Sequence[Any]) -> Any:
    """Returns the item, except that the item ``"fail"`` raises."""
    if item == "fail":
        raise RuntimeError(f"item {index} failed")
    return item


class PrefixSerDes(SerDes[Any]):
    """Stores a string item as ``wrapped:<value>`` and strips the prefix on read."""

    def serialize(self, value: Any, serdes_context: SerDesContext) -> str:
        return f"wrapped:{value}"

    def deserialize(self, data: str, serdes_context: SerDesContext) -> Any:
        prefix = "wrapped:"
        if not data.startswith(prefix):
            msg = f"not written by PrefixSerDes: {data!r}"
            raise ValueError(msg)
        return data[len(prefix) :]


class OpSerDes(SerDes[Any]):
    """Whole-result serdes: a successful batch of strings as ``OPSERDE:<a>,<b>``."""

    prefix = "OPSERDE:"

    def serialize(self, value: Any, serdes_context: SerDesContext) -> str:
        return self.prefix + ",".join(value.get_results())

    def deserialize(self, data: str, serdes_context: SerDesContext) -> Any:
        if not data.startswith(self.prefix):
            msg = f"not written by OpSerDes: {data!r}"
            raise ValueError(msg)
        values = data[len(self.prefix) :].split(",") if len(data) > len(self.prefix) else []
        items = [
            BatchItem(index=i, status=BatchItemStatus.SUCCEEDED, result=v)
            for i, v in enumerate(values)
        ]
        return BatchResult(items, CompletionReason.ALL_COMPLETED)


def _op_serdes_config() -> MapConfig[Any]:
    # item_serdes is set so OpSerDes serializes only the whole result, not every item.
    return MapConfig(max_concurrency=1, serdes=OpSerDes(), item_serdes=JsonSerDes())


@case("9-1")
def map_basic(event: Any, ctx: DurableContext) -> Any:
    def greet_item(c: DurableContext, item: Any, index: int, items: Sequence[Any]) -> Any:
        return c.step(constant(f"Hello, {item}!"), name=f"greet-{index}")

    return ctx.map(event, greet_item, name="map", config=sequential()).get_results()


@case("9-2")
def map_unnamed(event: Any, ctx: DurableContext) -> Any:
    return ctx.map(event, lambda c, item, i, items: item * 2, config=sequential()).get_results()


@case("9-3")
def map_indexed(event: Any, ctx: DurableContext) -> Any:
    return ctx.map(
        event, lambda c, item, i, items: item + i, name="indexed", config=sequential()
    ).get_results()


@case("9-4")
def map_empty(event: Any, ctx: DurableContext) -> Any:
    return ctx.map(event, direct, name="empty").get_results()


@case("9-5")
def map_fail_fast(event: Any, ctx: DurableContext) -> Any:
    result: Any = ctx.map(
        ["ok", "fail", "never"],
        fail_on_fail,
        name="failfast",
        config=sequential(tolerated_failure_count=0),
    )
    return projection(result, *FULL)


@case("9-6")
def map_rethrow(event: Any, ctx: DurableContext) -> Any:
    result: Any = ctx.map(
        ["fail", "never"],
        fail_on_fail,
        name="throwing",
        config=sequential(tolerated_failure_count=0),
    )
    result.throw_if_error()
    return result.get_results()


@case("9-7")
def map_min_successful(event: Any, ctx: DurableContext) -> Any:
    result: Any = ctx.map(
        ["a", "b", "c", "d"], direct, name="min-successful", config=sequential(min_successful=2)
    )
    return projection(result, "completionReason", "successCount", "totalCount")


@case("9-8")
def map_tolerated(event: Any, ctx: DurableContext) -> Any:
    result: Any = ctx.map(
        ["a", "fail", "c"],
        fail_on_fail,
        name="tolerated",
        config=sequential(tolerated_failure_count=1),
    )
    return projection(result, *FULL)


@case("9-9")
def map_tolerance_exceeded(event: Any, ctx: DurableContext) -> Any:
    result: Any = ctx.map(
        ["fail", "fail", "c"],
        fail_on_fail,
        name="tolerated-exceeded",
        config=sequential(tolerated_failure_count=1),
    )
    return projection(result, *NO_STATUS)


@case("9-10")
def map_tolerated_percentage(event: Any, ctx: DurableContext) -> Any:
    result: Any = ctx.map(
        ["fail", "fail", "c", "d"],
        fail_on_fail,
        name="tolerated-pct",
        config=sequential(tolerated_failure_percentage=25),
    )
    return projection(result, *NO_STATUS)


@case("9-11")
def map_concurrent(event: Any, ctx: DurableContext) -> Any:
    return ctx.map(
        ["r0", "r1", "r2"], direct, name="concurrent", config=MapConfig(max_concurrency=2)
    ).get_results()


@case("9-12")
def map_flat(event: Any, ctx: DurableContext) -> Any:
    def item_step(c: DurableContext, item: Any, index: int, items: Sequence[Any]) -> Any:
        return c.step(constant(item), name=f"item-{index}")

    config: Any = MapConfig(max_concurrency=1, nesting_type=NestingType.FLAT)
    return ctx.map(["fa", "fb"], item_step, name="flat", config=config).get_results()


@case("9-13")
def map_item_namer(event: Any, ctx: DurableContext) -> Any:
    config: Any = MapConfig(max_concurrency=1, item_namer=lambda item, index: f"item-{item}")
    return ctx.map(
        event, lambda c, item, i, items: item * 10, name="named-items", config=config
    ).get_results()


@case("9-14")
def map_item_serdes(event: Any, ctx: DurableContext) -> Any:
    config: Any = MapConfig(max_concurrency=1, item_serdes=PrefixSerDes())
    return ctx.map(["x", "y"], upper, name="serdes", config=config).get_results()


@case("9-15")
def map_wait_in_item(event: Any, ctx: DurableContext) -> Any:
    def item_fn(c: DurableContext, item: Any, index: int, items: Sequence[Any]) -> Any:
        if index == 1:
            c.wait(Duration.from_seconds(1))
        return c.step(constant(item), name=f"item-{index}")

    return ctx.map(["r0", "r1"], item_fn, name="suspend", config=sequential()).get_results()


@case("9-16")
def map_large_result(event: Any, ctx: DurableContext) -> Any:
    def large(c: DurableContext, item: Any, index: int, items: Sequence[Any]) -> Any:
        return item * (70 * 1024)

    result: Any = ctx.map(["a", "b", "c", "d"], large, name="large", config=sequential())
    return {"successCount": result.success_count, "totalCount": result.total_count}


@case("9-17")
def map_then_wait(event: Any, ctx: DurableContext) -> Any:
    results: Any = ctx.map(["a", "b"], upper, name="then-wait", config=sequential()).get_results()
    ctx.wait(Duration.from_seconds(1))
    return results


@case("9-18")
def map_failure_then_wait(event: Any, ctx: DurableContext) -> Any:
    result: Any = ctx.map(
        ["ok", "fail"],
        fail_on_fail,
        name="fail-then-wait",
        config=sequential(tolerated_failure_count=1),
    )
    ctx.wait(Duration.from_seconds(1))
    return projection(result, *FULL)


@case("9-19")
def map_operation_serdes(event: Any, ctx: DurableContext) -> Any:
    return ctx.map(["x", "y"], upper, name="op-serde", config=_op_serdes_config()).get_results()


@case("9-20")
def map_operation_serdes_replay(event: Any, ctx: DurableContext) -> Any:
    result: Any = ctx.map(["x", "y"], upper, name="op-serde-replay", config=_op_serdes_config())
    ctx.wait(Duration.from_seconds(1))
    return result.get_results()
