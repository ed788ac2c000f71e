"""Signed pickle and model serializers inside real durable handlers, first run and replay.

Handlers are driven by the official testing SDK's in-process runner, which calls the
SDK as Lambda does; a wait or callback in each handler forces a second invocation,
which replays the steps from their checkpoints.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import pickle
import random
import threading
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest
from aws_durable_execution_sdk_python import durable_execution
from aws_durable_execution_sdk_python.config import Duration, MapConfig, StepConfig
from aws_durable_execution_sdk_python.exceptions import SerDesError
from aws_durable_execution_sdk_python.serdes import SerDes, SerDesContext
from aws_durable_execution_sdk_python_testing.runner import DurableFunctionTestRunner
from pydantic import BaseModel

import durable_ext
from durable_ext.errors import IntegrityError
from durable_ext.serializers.frames import armor, frame, read_frame, unarmor
from durable_ext.serializers.model_format import ModelRegistry
from durable_ext.serializers.pickle_format import PickleFormat, WrappedKey

KEY = b"integration-test-signing-key-32b"
PICKLE_OPTS = {"pickle": {"key": KEY, "key_id": "it"}, "zstd": {"threshold": 1024},
               "zlib": {"threshold": 1024}}


class Recording(SerDes[Any]):
    """Records (direction, operation id) of every call, to tell first run from replay."""

    def __init__(self, inner: SerDes[Any]) -> None:
        self.inner = inner
        self.calls: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def serialize(self, value: Any, ctx: SerDesContext) -> str:
        with self._lock:
            self.calls.append(("ser", ctx.operation_id))
        return self.inner.serialize(value, ctx)

    def deserialize(self, data: str, ctx: SerDesContext) -> Any:
        with self._lock:
            self.calls.append(("de", ctx.operation_id))
        return self.inner.deserialize(data, ctx)


def run(handler, *, name: str = "execution-name", callback: str | None = None,
        before_callback=None):
    """Run ``handler`` to completion; return (result, execution ARN)."""
    with DurableFunctionTestRunner(handler=handler, poll_interval=0.05) as runner:
        arn = runner.run_async(input=json.dumps({}), execution_timeout=60, execution_name=name)
        if callback is not None:
            cb = runner.wait_for_callback(arn, name=callback, timeout=30)
            if before_callback is not None:
                before_callback()
            runner.send_callback_success(cb, result=b'"go"')
        return runner.wait_for_result(arn, timeout=60), arn


def wire_of(payload: str) -> bytes:
    return read_frame(unarmor(payload, "t"), "t")[0]


def replayed(rec: Recording, op_id: str) -> bool:
    """Serialized once on the first run, deserialized again by a later invocation."""
    calls = [kind for kind, op in rec.calls if op == op_id]
    return calls[:2] == ["ser", "de"] and calls.count("ser") == 1 and calls[2:].count("de") >= 1


# -- signed pickle ----------------------------------------------------------------------


class Account:
    def __init__(self, owner: str, balance: Decimal) -> None:
        self.owner = owner
        self.balance = balance

    def deposit(self, amount: Decimal) -> Account:
        return Account(self.owner, self.balance + amount)


@pytest.mark.parametrize("spec,outer", [("pickle", b"p"), ("pickle+zstd", b"z"),
                                        ("pickle+zlib", b"l")])
def test_pickle_steps_first_run_and_replay(spec, outer):
    serdes = Recording(durable_ext.serdes(spec, options={k: v for k, v in PICKLE_OPTS.items()
                                                         if k in ("pickle", *spec.split("+"))}))
    cfg = StepConfig(serdes=serdes)
    bodies = {"acct": 0, "rate": 0, "big": 0}
    seen: list[tuple[Any, ...]] = []

    def body(name, value):
        def run_step(_):
            bodies[name] += 1
            return value()
        return run_step

    @durable_execution
    def handler(event: dict, ctx) -> dict:
        acct = ctx.step(body("acct", lambda: Account("ana", Decimal("10"))), name="acct",
                        config=cfg)
        factor = Decimal("1.5")
        rate = ctx.step(body("rate", lambda: lambda x: x * factor), name="rate", config=cfg)
        big = ctx.step(body("big", lambda: {"rows": [(i, str(i)) for i in range(500)]}),
                       name="big", config=cfg)
        adders = ctx.map([1, 2], lambda c, n, i, items: (lambda x: x + n), name="adders",
                         config=MapConfig(serdes=serdes))
        ctx.wait(Duration.from_seconds(1), name="nap")
        after = acct.deposit(rate(Decimal("2")))
        seen.append((type(acct), after.balance, len(big["rows"]), big["rows"][7],
                     [f(10) for f in adders.get_results()]))
        return {"owner": after.owner, "balance": str(after.balance)}

    result, _ = run(handler)
    assert result.status.value == "SUCCEEDED", result.error
    assert json.loads(result.result) == {"owner": "ana", "balance": "13.0"}
    assert bodies == {"acct": 1, "rate": 1, "big": 1}  # replays did not re-run the steps
    assert seen[-1] == (Account, Decimal("13.0"), 500, (7, "7"), [11, 12])
    assert wire_of(result.get_context("adders").result) in (b"p", outer)  # the BatchResult
    for name in ("acct", "rate", "big"):
        assert replayed(serdes, result.get_step(name).operation_id), name
    assert wire_of(result.get_step("acct").result) == b"p"
    assert wire_of(result.get_step("big").result) == outer


def test_pickle_payload_bound_to_its_execution_and_operation():
    serdes = durable_ext.serdes("pickle", options={"pickle": PICKLE_OPTS["pickle"]})

    @durable_execution
    def handler(event: dict, ctx) -> dict:
        ctx.step(lambda _: Account("ana", Decimal("1")), name="acct",
                 config=StepConfig(serdes=serdes))
        ctx.step(lambda _: Account("bob", Decimal("2")), name="other",
                 config=StepConfig(serdes=serdes))
        return {}

    first, arn_a = run(handler, name="exec-a")
    second, arn_b = run(handler, name="exec-b")
    assert arn_a != arn_b
    acct = first.get_step("acct")
    assert serdes.deserialize(acct.result, SerDesContext(acct.operation_id, arn_a)).owner == "ana"
    # the same operation id in another execution, and another operation in this one
    with pytest.raises(IntegrityError):
        serdes.deserialize(acct.result, SerDesContext(acct.operation_id, arn_b))
    with pytest.raises(IntegrityError):
        serdes.deserialize(acct.result, SerDesContext(first.get_step("other").operation_id, arn_a))
    # payload from execution B swapped into execution A's checkpoint for the same step
    swapped = second.get_step("acct")
    with pytest.raises(IntegrityError):
        serdes.deserialize(swapped.result, SerDesContext(acct.operation_id, arn_a))


class Exploit:
    def __init__(self, canary: Path) -> None:
        self.canary = canary

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (exec, (f"open({str(self.canary)!r}, 'w').write('owned')",))


class TamperedStore(SerDes[Any]):
    """Hands the SDK a forged payload on replay, as an attacker with write access to
    the checkpoint store (but not the key) could."""

    def __init__(self, inner: SerDes[Any], forged: str) -> None:
        self.inner = inner
        self.forged = forged
        self.served = 0

    def serialize(self, value: Any, ctx: SerDesContext) -> str:
        return self.inner.serialize(value, ctx)

    def deserialize(self, data: str, ctx: SerDesContext) -> Any:
        if self.served == 0:  # the first run's round trip
            self.served += 1
            return self.inner.deserialize(data, ctx)
        return self.inner.deserialize(self.forged, ctx)


@pytest.mark.parametrize("how", ["attacker key", "unsigned", "signed for another operation"])
def test_forged_checkpoint_fails_the_execution_and_never_runs_code(how, tmp_path):
    canary = tmp_path / "canary"
    evil = Exploit(canary)
    if how == "attacker key":
        body = PickleFormat(key=b"x" * 32, key_id="it").encode(evil, SerDesContext("", ""))
    elif how == "unsigned":
        body = b"\x00" + pickle.dumps(evil)
    else:
        body = PickleFormat(key=KEY, key_id="it").encode(evil, SerDesContext("0-other", ""))
    serdes = TamperedStore(durable_ext.serdes("pickle", options={"pickle": PICKLE_OPTS["pickle"]}),
                           armor(frame(b"p", 1, body)))

    @durable_execution
    def handler(event: dict, ctx) -> dict:
        ctx.step(lambda _: "honest", name="value", config=StepConfig(serdes=serdes))
        ctx.wait(Duration.from_seconds(1), name="nap")
        return {}

    result, _ = run(handler)
    assert result.status.value == "FAILED"
    assert "pickle payload" in result.error.message or "signature" in result.error.message
    assert not canary.exists()
    assert serdes.served == 1  # the replay did reach the forged payload


# -- models -----------------------------------------------------------------------------

MODELS = ModelRegistry()


@MODELS.register
class Line(BaseModel):
    sku: str
    qty: int
    price: Decimal


@MODELS.register
class Order(BaseModel):
    id: uuid.UUID
    placed: dt.datetime
    lines: list[Line]

    def total(self) -> Decimal:
        return sum((ln.price * ln.qty for ln in self.lines), Decimal(0))


@MODELS.register
@dataclasses.dataclass(frozen=True)
class Receipt:
    order_id: uuid.UUID
    total: Decimal


@MODELS.register
@attrs.frozen
class Label:
    carrier: str
    weight: float = attrs.field(validator=attrs.validators.gt(0))


ORDER = Order(id=uuid.UUID(int=9), placed=dt.datetime(2025, 6, 1, 8, 0, tzinfo=dt.UTC),
              lines=[Line(sku="a", qty=2, price=Decimal("4.50")),
                     Line(sku="b", qty=1, price=Decimal("1.00"))])


@pytest.mark.parametrize("spec,outer", [("model", b"M"), ("model+zstd", b"z")])
def test_model_steps_first_run_and_replay(spec, outer):
    serdes = Recording(durable_ext.serdes(spec, types=MODELS,
                                          options={"zstd": {"threshold": 64}}))
    seen: list[tuple[Any, ...]] = []
    runs = {"order": 0}

    def make_order(_):
        runs["order"] += 1
        return ORDER

    @durable_execution
    def handler(event: dict, ctx) -> dict:
        order = ctx.step(make_order, name="order", config=StepConfig(serdes=serdes))
        receipt = ctx.step(lambda _: Receipt(order.id, order.total()), name="receipt",
                           config=StepConfig(serdes=serdes))
        labels = ctx.map(order.lines, lambda c, line, i, items: Label("ups", 0.5 * line.qty),
                         name="labels", config=MapConfig(serdes=serdes))
        ctx.wait(Duration.from_seconds(1), name="nap")
        seen.append((order, receipt, labels.get_results()))
        return {"total": str(receipt.total)}

    result, _ = run(handler)
    assert result.status.value == "SUCCEEDED", result.error
    assert json.loads(result.result) == {"total": "10.00"}
    assert runs["order"] == 1
    order, receipt, labels = seen[-1]
    assert type(order) is Order and order == ORDER and type(order.lines[0]) is Line
    assert receipt == Receipt(ORDER.id, Decimal("10.00"))
    assert labels == [Label("ups", 1.0), Label("ups", 0.5)]
    assert replayed(serdes, result.get_step("order").operation_id)
    assert wire_of(result.get_step("order").result) == outer
    assert wire_of(result.get_context("labels").result) in (b"M", b"z")


def test_default_serdes_with_models():
    seen: list[Any] = []

    @durable_execution
    @durable_ext.default_serdes("model+zstd", types=MODELS)
    def handler(event: dict, ctx) -> dict:
        order = ctx.step(lambda _: ORDER, name="order")
        ctx.wait(Duration.from_seconds(1), name="nap")
        seen.append(order)
        return {}

    result, _ = run(handler)
    assert result.status.value == "SUCCEEDED", result.error
    assert seen[-1] == ORDER and type(seen[-1]) is Order
    assert wire_of(result.get_step("order").result) in (b"M", b"z")


# -- a deploy while an execution is suspended --------------------------------------------


class InvoiceV1(BaseModel):
    id: str
    amount: Decimal


class InvoiceV2Defaulted(BaseModel):
    id: str
    amount: Decimal
    currency: str = "EUR"


class InvoiceV2Required(BaseModel):
    id: str
    amount: Decimal
    customer: str


def deployed(cls: type):
    reg = ModelRegistry()
    reg.register(cls, tag="Invoice")
    return durable_ext.serdes("model", types=reg)


def drift_handler(deploy: dict[str, Any]):
    @durable_execution
    def handler(event: dict, ctx) -> dict:
        serdes = deploy["serdes"]  # whatever this invocation's deploy has
        invoice = ctx.step(lambda _: deploy["cls"](id="i-1", amount=Decimal("5")), name="invoice",
                           config=StepConfig(serdes=serdes))
        ctx.create_callback(name="approval").result()
        return {"type": type(invoice).__name__, **json.loads(invoice.model_dump_json())}

    return handler


def test_deploy_that_adds_a_defaulted_field_replays_with_the_default():
    deploy = {"serdes": deployed(InvoiceV1), "cls": InvoiceV1}

    def redeploy():
        deploy.update(serdes=deployed(InvoiceV2Defaulted), cls=InvoiceV2Defaulted)

    result, _ = run(drift_handler(deploy), callback="approval", before_callback=redeploy)
    assert result.status.value == "SUCCEEDED", result.error
    assert json.loads(result.result) == {"type": "InvoiceV2Defaulted", "id": "i-1",
                                         "amount": "5", "currency": "EUR"}


def test_deploy_that_adds_a_required_field_fails_naming_model_and_field():
    deploy = {"serdes": deployed(InvoiceV1), "cls": InvoiceV1}

    def redeploy():
        deploy.update(serdes=deployed(InvoiceV2Required), cls=InvoiceV2Required)

    result, _ = run(drift_handler(deploy), callback="approval", before_callback=redeploy)
    assert result.status.value == "FAILED"
    message = result.error.message
    assert "InvoiceV2Required" in message and "field 'customer'" in message, message


# -- composition with KMS and S3 offload on a real moto server ----------------------------


@pytest.mark.integration
def test_pickle_with_kms_wrapped_signing_key_encryption_and_s3_offload(moto_server):
    from durable_ext.serializers.kms import KmsKeyProvider
    from durable_ext.serializers.s3 import read_pointer

    kms, s3 = moto_server.client("kms"), moto_server.client("s3")
    key_arn = kms.create_key()["KeyMetadata"]["Arn"]
    bucket = moto_server.unique("pickle")
    s3.create_bucket(Bucket=bucket)
    # set-up, once: a signing key made by KMS, kept only in its encrypted form
    context = {"purpose": "durable-ext pickle signing"}
    data_key = KmsKeyProvider(key_arn, client=kms).generate(context, "setup")

    def pipeline():  # what each cold start builds: the key is unwrapped by KMS Decrypt
        signing = WrappedKey(KmsKeyProvider(client=kms), data_key.key_id, data_key.encrypted,
                             context)
        return Recording(durable_ext.serdes(
            f"pickle+zstd+kms:{key_arn}+s3://{bucket}/ckpt",
            options={"pickle": {"key": signing, "key_id": "kms-1"}, "kms": {"client": kms},
                     "s3": {"client": s3, "threshold": 4096}}))

    serdes = pipeline()
    noise = random.Random(5).randbytes(300_000)  # incompressible: forces the offload
    runs = {"n": 0}

    def produce(_):
        runs["n"] += 1
        return {"report": Account("ana", Decimal("7")), "raw": noise, "fn": lambda x: x * 3}

    seen: list[Any] = []

    @durable_execution
    def handler(event: dict, ctx) -> dict:
        out = ctx.step(produce, name="report", config=StepConfig(serdes=serdes))
        ctx.wait(Duration.from_seconds(1), name="nap")
        seen.append(out)
        return {"n": out["fn"](2)}

    result, arn = run(handler)
    assert result.status.value == "SUCCEEDED", result.error
    assert json.loads(result.result) == {"n": 6} and runs["n"] == 1
    step = result.get_step("report")
    assert replayed(serdes, step.operation_id)
    assert read_pointer(step.result) is not None and len(step.result) < 1000
    assert seen[-1]["raw"] == noise and seen[-1]["report"].owner == "ana"
    # a new process: fresh providers, fresh caches; reads the S3 object and verifies it
    fresh = pipeline()
    assert fresh.deserialize(step.result, SerDesContext(step.operation_id, arn))["raw"] == noise
    with pytest.raises(SerDesError):
        fresh.deserialize(step.result, SerDesContext(step.operation_id, arn + "-other"))
