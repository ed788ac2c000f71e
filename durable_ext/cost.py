"""What an execution costs on Lambda durable functions, estimated from its history.

Three charges make the estimate (rates in :class:`Rates`, configurable):

* **durable operations**: the execution's start and every operation it checkpointed,
  each attempt of a step counted (one ``...Started`` event each);
* **data written**: the bytes of every payload the checkpoints carried (inputs, results,
  errors), UTF-8 as sent;
* **data retained**: that data kept for the retention period after the execution closes.

:func:`compare` re-encodes the operations' results with other serializer specs and says
what each would change, in dollars per million executions like this one. Offload to S3 is
estimated without writing anything (the checkpoint keeps the pointer; S3's own charges are
not Lambda's and are left out); encryption with KMS needs a key and is measured by
``durable-ext bench`` instead.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from aws_durable_execution_sdk_python.exceptions import SerDesError

from durable_ext.errors import ConfigError
from durable_ext.serializers.base import SerDesContext
from durable_ext.serializers.readable import Decoder

__all__ = ["Estimate", "Rates", "compare", "estimate", "payloads_of", "register"]

GB = 1 << 30
#: results re-encoded by --compare: what a serializer spec writes (inputs, callback results
#: and errors are written by others and stay as they are)
_RESULT_EVENTS = frozenset({"StepSucceeded", "ContextSucceeded"})


@dataclass(frozen=True)
class Rates:
    """Prices in US dollars (us-east-1 at launch; check the Lambda pricing page for yours).

    Attributes:
        per_million_operations: Durable operations, per million.
        per_gb_written: Data written in checkpoints, per GB.
        per_gb_month_retained: Data retained, per GB-month.
        retention_days: How long a closed execution's history is kept (the service's
            default is 14 days; 1 to 90).

    """

    per_million_operations: float = 8.00
    per_gb_written: float = 0.25
    per_gb_month_retained: float = 0.15
    retention_days: float = 14.0


@dataclass(frozen=True)
class Estimate:
    """An execution's billable quantities and their cost in dollars."""

    operations: int
    bytes_written: int
    operations_cost: float
    written_cost: float
    retained_cost: float

    @property
    def total(self) -> float:
        """The estimate's total, in dollars."""
        return self.operations_cost + self.written_cost + self.retained_cost

    def to_dict(self) -> dict[str, Any]:
        """Return it as JSON data, with the total and the cost per million executions."""
        out = asdict(self)
        out["total"] = self.total
        out["per_million_executions"] = self.total * 1e6
        return out


def estimate(history: Mapping[str, Any], rates: Rates = Rates()) -> Estimate:
    """Estimate the cost of the execution whose history (with execution data) is given."""
    operations = 0
    written = 0
    for event in history.get("Events", ()):
        if str(event.get("EventType", "")).endswith("Started"):
            operations += 1
        for payload in payloads_of(event):
            written += len(payload.encode("utf-8", "surrogatepass"))
    return _priced(operations, written, rates)


def _priced(operations: int, written: int, rates: Rates) -> Estimate:
    gb = written / GB
    return Estimate(
        operations=operations,
        bytes_written=written,
        operations_cost=operations * rates.per_million_operations / 1e6,
        written_cost=gb * rates.per_gb_written,
        retained_cost=gb * rates.per_gb_month_retained * rates.retention_days / 30.0,
    )


def payloads_of(event: Mapping[str, Any]) -> Iterable[str]:
    """Yield the payloads one history event carries (error objects as JSON text)."""
    for key, details in event.items():
        if key.endswith("Details") and isinstance(details, dict):
            for value in details.values():
                if isinstance(value, dict) and isinstance(value.get("Payload"), str):
                    yield value["Payload"]
                elif isinstance(value, dict) and isinstance(value.get("Payload"), dict):
                    yield json.dumps(value["Payload"])  # an error object


def compare(history: Mapping[str, Any], specs: Sequence[str], decoder: Decoder, *,
            execution_arn: str = "", rates: Rates = Rates()) -> list[dict[str, Any]]:
    """Re-encode the operations' results with each spec; return what each would cost.

    Each row has the spec, the bytes the results take, the whole estimate and the saving
    against the recorded execution per million executions (negative: it would cost more).
    A spec that cannot write these values says why in ``"error"``.
    """
    base = estimate(history, rates)
    recorded = 0
    values: list[tuple[str, Any]] = []
    for event in history.get("Events", ()):
        if event.get("EventType") not in _RESULT_EVENTS:
            continue
        for payload in payloads_of(event):
            recorded += len(payload.encode("utf-8", "surrogatepass"))
            try:
                values.append((str(event.get("Id") or ""), decoder.value(
                    payload, operation_id=event.get("Id"), execution_arn=execution_arn)))
            except SerDesError as exc:
                raise ConfigError(f"cannot decode the result of operation {event.get('Id')!r} "
                                  f"to re-encode it: {exc}; give --serdes/--types") from None
    rows = [{"spec": "(recorded)", "result_bytes": recorded, **base.to_dict(), "saving": 0.0}]
    for spec in specs:
        row: dict[str, Any] = {"spec": spec}
        try:
            size = sum(len(_serdes(spec).serialize(v, SerDesContext(op, execution_arn)))
                       for op, v in values)
        except Exception as exc:  # a spec that cannot carry these values, or a bad spec
            row["error"] = f"{type(exc).__name__}: {exc}"
            rows.append(row)
            continue
        other = _priced(base.operations, base.bytes_written - recorded + size, rates)
        row.update(result_bytes=size, **other.to_dict(),
                   saving=(base.total - other.total) * 1e6)
        rows.append(row)
    return rows


def _serdes(spec: str) -> Any:
    import durable_ext
    from durable_ext.serializers.s3 import S3Offload

    if any(stage in spec for stage in ("kms", "localkey")):
        raise ConfigError("encryption needs a key: measure it with durable-ext bench")
    pipeline: Any = durable_ext.serdes(spec)
    if isinstance(pipeline.offload, S3Offload):
        pipeline.offload = _DryRun(pipeline.offload)
    return pipeline


class _DryRun:
    """An S3 offload that decides and points as the real one does, and writes nothing."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.wire, self.version, self.name = real.wire, real.version, real.name
        self.role = real.role

    def store(self, data: bytes, ctx: SerDesContext) -> bytes | None:
        real = self._real
        put, real._put = real._put, lambda *a, **k: None
        try:
            body: bytes | None = real.store(data, ctx)
        finally:
            real._put = put
        return body


# ---------------------------------------------------------------- CLI


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``cost`` to the ``durable-ext`` parser."""
    from durable_ext.serializers.decode_cli import add_decoder_options

    p: argparse.ArgumentParser = subparsers.add_parser(
        "cost", help="estimate what an execution costs on Lambda durable functions")
    p.add_argument("execution", metavar="ARN|NAME")
    p.add_argument("--compare", default="", metavar="SPEC,SPEC",
                   help="serializer specs to compare, e.g. msgpack,msgpack+zstd")
    defaults = Rates()
    p.add_argument("--per-million-operations", type=float,
                   default=defaults.per_million_operations)
    p.add_argument("--per-gb-written", type=float, default=defaults.per_gb_written)
    p.add_argument("--per-gb-month-retained", type=float,
                   default=defaults.per_gb_month_retained)
    p.add_argument("--retention-days", type=float, default=defaults.retention_days)
    p.add_argument("--backend", default=None,
                   help="store URL (default: $DURABLE_EXT_BACKEND or file://.durable)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    add_decoder_options(p)
    p.set_defaults(func=_cmd_cost)
    return p


def _cmd_cost(args: argparse.Namespace) -> int:
    from durable_ext.cli import _find_arn, _runtime
    from durable_ext.serializers.decode_cli import decoder_from_args

    rates = Rates(args.per_million_operations, args.per_gb_written,
                  args.per_gb_month_retained, args.retention_days)
    specs = [s.strip() for s in args.compare.split(",") if s.strip()]
    with _runtime(args, existing=True) as rt:
        arn = _find_arn(rt, args.execution)
        history = rt.history(arn, include_execution_data=True)
    if specs:
        decoder = decoder_from_args(args, default=True)
        assert decoder is not None
        rows = compare(history, specs, decoder, execution_arn=arn, rates=rates)
    else:
        rows = [{"spec": "(recorded)", **estimate(history, rates).to_dict()}]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        if "error" in row:
            print(f"{row['spec']:<28} cannot be compared: {row['error']}")
            continue
        saving = f"  saves ${row['saving']:,.2f}" if "saving" in row and specs else ""
        print(f"{row['spec']:<28} {row['operations']} operations, "
              f"{row['bytes_written']:,} bytes written: ${row['total']:.8f} "
              f"(${row['per_million_executions']:,.2f} per million executions){saving}")
    return 0
