"""The fields stage inside real durable handlers on the local Runtime, with moto KMS and S3.

Steps, map and parallel items and their BatchResults, a callback sent by a durable_ext
sender, compression and S3 offload all go through one ``default_serdes`` pipeline whose
``fields`` stage encrypts customer e-mails and card numbers with a KMS key and redacts
SSNs. The execution runs in one Runtime, is resumed and replayed in a second one (fresh
pipeline, cold caches), and then every byte it left behind is searched for the selected
fields: the store's files, the history, and the S3 objects, through every layer of every
payload (armor, compression, offload).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import random
import zlib
from pathlib import Path
from typing import Annotated, Any

import pytest
import zstandard
from aws_durable_execution_sdk_python import DurableContext, durable_execution
from aws_durable_execution_sdk_python.config import Duration
from aws_durable_execution_sdk_python.serdes import SerDesContext
from pydantic import BaseModel, Field
from servers import RequestCounter

import durable_ext
from durable_ext.engine.tokens import peek_callback_id
from durable_ext.runtime import Runtime, VirtualClock
from durable_ext.serializers.fields import ENCRYPT
from durable_ext.serializers.fields_view import view
from durable_ext.serializers.frames import ARMOR_PREFIX, TEXT_PREFIX, armor, read_frame, unarmor
from durable_ext.serializers.model_format import ModelRegistry
from durable_ext.serializers.s3 import S3Pointer

pytestmark = pytest.mark.integration

REDACT_KEY = b"r" * 32
PATHS = "customer.email,cards[*].number"


def customer(n: int) -> dict[str, Any]:
    return {
        "customer": {"email": f"user{n}.secret@example.com", "name": f"Ada Lovelace {n}",
                     "ssn": f"987-65-{4320 + n}"},
        "cards": [{"number": f"4111-0000-0000-{1000 + n}", "brand": "visa"},
                  {"number": f"5500-0000-0000-{2000 + n}", "brand": "mc"}],
        "total": n * 10,
    }


SECRETS = [s.encode() for n in range(8) for s in (
    f"user{n}.secret@example.com", f"4111-0000-0000-{1000 + n}", f"5500-0000-0000-{2000 + n}",
    f"987-65-{4320 + n}")]


@pytest.fixture(scope="module")
def aws(moto_server: Any) -> dict[str, Any]:
    kms = moto_server.client("kms")
    key = kms.create_key()["KeyMetadata"]["Arn"]
    bucket = moto_server.unique("fields")
    moto_server.client("s3").create_bucket(Bucket=bucket)
    return {"key": key, "bucket": bucket}


@pytest.fixture(autouse=True)
def _quiet(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)


def pipeline(moto_server: Any, aws: dict[str, Any], *, s3: bool = True) -> tuple[Any, Any]:
    kms = moto_server.client("kms")
    spec = f"msgpack+fields:kms={aws['key']};paths={PATHS};redact=customer.ssn+zstd"
    options: dict[str, Any] = {"fields": {"client": kms, "redact_key": REDACT_KEY}}
    if s3:
        spec += f"+s3://{aws['bucket']}/ckpt?threshold=1500"
        options["s3"] = {"client": moto_server.client("s3")}
    return durable_ext.serdes(spec, options=options), RequestCounter(kms)


def make_handler(serdes: Any) -> Any:
    @durable_execution
    @durable_ext.default_serdes(serdes, callback_serdes=True)
    def handler(event: Any, ctx: DurableContext) -> Any:
        small = ctx.step(lambda _: customer(0), name="small")
        big = ctx.step(lambda _: {**customer(1), "blob": random.Random(1).randbytes(4000)},
                       name="big")
        ctx.wait(Duration.from_seconds(5))
        mapped = ctx.map([2, 3], lambda c, n, i, items: c.step(lambda _: customer(n),
                                                                name="item"), name="map")
        par = ctx.parallel([lambda c: customer(4), lambda c: customer(5)], name="par")
        # create_callback, not wait_for_callback: the SDK checkpoints the latter's child
        # context result with its own JSON, which would hold the decoded fields in plain.
        sent = ctx.create_callback(name="approve").result()
        kept = ctx.step(lambda _: sent, name="keep-callback")
        results = mapped.get_results() + par.get_results()
        ssn = results[0]["customer"]["ssn"]
        return {
            "small": small == {**customer(0), "customer": {**customer(0)["customer"],
                                                           "ssn": small["customer"]["ssn"]}},
            "big_cards": big["cards"] == customer(1)["cards"],
            "emails": [r["customer"]["email"] == customer(n)["customer"]["email"]
                       for r, n in zip(results, [2, 3, 4, 5], strict=True)],
            "cards": [r["cards"] == customer(n)["cards"]
                      for r, n in zip(results, [2, 3, 4, 5], strict=True)],
            "ssn_redacted": isinstance(ssn, str) and ssn.startswith("redacted:")
                            and ssn == serdes.fields.redact_value(customer(2)["customer"]["ssn"]),
            "callback": kept["cards"] == customer(6)["cards"]
                        and kept["customer"]["email"] == customer(6)["customer"]["email"],
        }

    return handler


def callback_id(rt: Runtime, arn: str) -> str:
    events = rt.history(arn)["Events"]
    ids = [e["CallbackStartedDetails"]["CallbackId"] for e in events
           if e["EventType"] == "CallbackStarted"]
    assert len(ids) == 1
    return str(ids[0])


# -- every layer of every payload ------------------------------------------------------------


def layers(data: bytes, s3: Any, depth: int = 0) -> list[bytes]:
    """``data`` and everything inside it: decompressed frames, fetched S3 objects."""
    out = [data]
    if depth > 8 or len(data) < 4 or data[0] != 0xC1:
        return out
    try:
        wire, _, body = read_frame(data, "scan")
    except Exception:
        return out
    inner: bytes | None = None
    if wire == b"z":
        inner = zstandard.ZstdDecompressor().decompressobj().decompress(body)
    elif wire == b"l":
        inner = zlib.decompress(body)
    elif wire == b"s":
        ptr = S3Pointer.unpack(body, "scan")
        inner = s3.get_object(Bucket=ptr.bucket, Key=ptr.key)["Body"].read()
    elif wire == b"F":
        inner = body  # its plain part is read as it is
    if inner is not None:
        out += layers(inner, s3, depth + 1)
        n = inner[0] if wire == b"F" else 0
        if wire == b"F":
            # the format frame after the prefix
            pos = 1 + n
            plen = int.from_bytes(inner[pos : pos + 4], "big")
            pos += 4 + plen
            elen = int.from_bytes(inner[pos : pos + 4], "big")
            out += layers(inner[pos + 4 + elen :], s3, depth + 1)
    return out


def strings(obj: Any) -> list[str]:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in strings(v)]
    if isinstance(obj, list):
        return [s for v in obj for s in strings(v)]
    return []


def decoded(text: str, s3: Any) -> list[bytes]:
    found = [text.encode("utf-8", "surrogatepass")]
    if text[:1] in (ARMOR_PREFIX, TEXT_PREFIX):
        with contextlib.suppress(Exception):
            found += layers(unarmor(text, "scan"), s3)
    else:
        # Base64 anywhere (the Lambda API's and the HTTP API's forms of payloads).
        with contextlib.suppress(binascii.Error, ValueError):
            found.append(base64.b64decode(text, validate=True))
    return found


def test_no_selected_field_appears_in_the_store_the_history_or_s3(
        moto_server: Any, aws: dict[str, Any], tmp_path: Path) -> None:
    store = tmp_path / "store"
    s3 = moto_server.client("s3")
    first, first_kms = pipeline(moto_server, aws)
    with Runtime(f"file://{store}", clock=VirtualClock()) as rt:
        rt.register("orders", make_handler(first))
        arn = rt.start("orders", {"order": 1})
        rt.run_until_idle(60)
        assert rt.describe(arn)["Status"] == "RUNNING"  # waiting for the callback
        cid = callback_id(rt, arn)
    # A durable_ext sender encrypts the callback's fields for that callback's operation.
    target_arn, op = peek_callback_id(cid) or ("", "")
    sender, _ = pipeline(moto_server, aws, s3=False)
    payload = sender.serialize(customer(6), SerDesContext(op, target_arn))
    assert b"4111-0000-0000-1006" not in b"".join(decoded(payload, s3))

    # A new Runtime and pipeline (cold caches, as after a redeploy) resumes and replays.
    second, second_kms = pipeline(moto_server, aws)
    with Runtime(f"file://{store}", clock=VirtualClock()) as rt:
        rt.register("orders", make_handler(second))
        rt.send_callback_success(cid, payload)
        rt.run_until_idle(60)
        desc = rt.describe(arn)
        assert desc["Status"] == "SUCCEEDED", desc.get("Error")
        assert json.loads(desc["Result"]) == {
            "small": True, "big_cards": True, "emails": [True] * 4, "cards": [True] * 4,
            "ssn_redacted": True, "callback": True}
        history = rt.history(arn, include_execution_data=True)

    # One data key per pipeline, decrypted once by the other.
    assert first_kms["GenerateDataKey"] == 1 and first_kms["Decrypt"] == 0
    assert second_kms["GenerateDataKey"] <= 1 and second_kms["Decrypt"] <= 2

    blobs: list[bytes] = []
    for path in store.rglob("*"):
        if path.is_file():
            raw = path.read_bytes()
            blobs.append(raw)
            try:
                doc = json.loads(raw)
            except ValueError:
                doc = None
            for s in strings(doc) if doc is not None else ():
                blobs += decoded(s, s3)
    for s in strings(json.loads(json.dumps(history, default=str))):
        blobs += decoded(s, s3)
    listed = s3.list_objects_v2(Bucket=aws["bucket"]).get("Contents", [])
    assert listed, "the big step was offloaded"
    for obj in listed:
        blobs += layers(s3.get_object(Bucket=aws["bucket"], Key=obj["Key"])["Body"].read(), s3)
    everything = b"\n".join(blobs)
    leaked = [s for s in SECRETS if s in everything]
    assert leaked == []
    # The search does see the plain fields, in the store, the history and S3 alike.
    for n in (0, 1, 2, 4, 6):
        assert f"Ada Lovelace {n}".encode() in everything, n


def test_the_history_viewed_without_the_key_shows_structure_and_encrypted_fields(
        moto_server: Any, aws: dict[str, Any]) -> None:
    serdes, _ = pipeline(moto_server, aws, s3=False)

    @durable_execution
    @durable_ext.default_serdes(serdes)
    def handler(event: Any, ctx: DurableContext) -> Any:
        ctx.step(lambda _: customer(7), name="one")
        return "done"

    with Runtime("memory://", clock=VirtualClock()) as rt:
        rt.register("fn", handler)
        out = rt.run("fn", {})
        assert out["Status"] == "SUCCEEDED"
        arn = out["DurableExecutionArn"]
        ev = next(e for e in rt.history(arn)["Events"] if e["EventType"] == "StepSucceeded")
        op_id = ev["Id"]
        text = ev["StepSucceededDetails"]["Result"]["Payload"]
    ctx = SerDesContext(op_id, arn)
    shown = view(text, ctx, serdes=durable_ext.serdes("msgpack", options={"fields": {}}))
    assert shown["customer"]["name"] == "Ada Lovelace 7"
    assert shown["customer"]["email"]["$encrypted"]["key_id"] == aws["key"]
    assert shown["cards"][1]["number"]["$encrypted"]["path"] == "cards[1].number"
    assert shown["customer"]["ssn"]["$redacted"].startswith("redacted:")
    assert view(text, ctx, serdes=serdes)["cards"][1]["number"] == "5500-0000-0000-2007"


@pytest.mark.parametrize("attack", ["swap", "flip"])
def test_a_checkpoint_moved_or_altered_in_the_store_fails_the_replay(
        moto_server: Any, aws: dict[str, Any], attack: str) -> None:
    serdes, _ = pipeline(moto_server, aws, s3=False)

    @durable_execution
    @durable_ext.default_serdes(serdes)
    def handler(event: Any, ctx: DurableContext) -> Any:
        a = ctx.step(lambda _: customer(0), name="a")
        b = ctx.step(lambda _: customer(1), name="b")
        ctx.create_callback(name="hold").result()
        return {"a": a["customer"]["email"] == customer(0)["customer"]["email"],
                "b": b["customer"]["email"] == customer(1)["customer"]["email"]}

    with Runtime("memory://", clock=VirtualClock()) as rt:
        rt.register("fn", handler)
        arn = rt.start("fn", {})
        rt.run_until_idle(60)
        assert rt.describe(arn)["Status"] == "RUNNING"
        steps = [r for r in rt.store.operations(arn) if r.data.get("Type") == "STEP"]
        assert len(steps) == 2
        results = [r.data["StepDetails"]["Result"] for r in steps]
        if attack == "swap":  # each step's checkpoint moved to the other operation
            steps[0].data["StepDetails"]["Result"] = results[1]
            steps[1].data["StepDetails"]["Result"] = results[0]
        else:  # one byte of the encrypted fields altered
            raw = bytearray(unarmor(results[1], "t"))
            raw[len(raw) // 3] ^= 0x40
            steps[1].data["StepDetails"]["Result"] = armor(bytes(raw))
        stored = [r.data["StepDetails"]["Result"] for r in rt.store.operations(arn)
                  if r.data.get("Type") == "STEP"]
        assert stored != results  # the store really holds the attacker's version
        rt.send_callback_success(callback_id(rt, arn), "go")
        rt.run_until_idle(60)
        desc = rt.describe(arn)
    assert desc["Status"] == "FAILED", desc
    error = json.dumps(desc.get("Error"))
    assert "IntegrityError" in error or "SerDes" in error, error


class Card(BaseModel):
    number: Annotated[str, ENCRYPT]
    brand: str


class Buyer(BaseModel):
    email: str = Field(json_schema_extra={"durable_ext": "encrypt"})
    name: str
    cards: list[Card]


MODELS = ModelRegistry([Buyer, Card])


def test_default_serdes_spec_with_models_map_and_parallel_localkey() -> None:
    seen: list[str] = []

    @durable_execution
    @durable_ext.default_serdes("model+fields:localkey;paths=email,[*].email", types=MODELS,
                                options={"fields": {"key": b"k" * 32}})
    def handler(event: Any, ctx: DurableContext) -> Any:
        buyer = ctx.step(lambda _: Buyer(email="b@x.io", name="Bo",
                                         cards=[Card(number="4242", brand="v")]), name="buyer")
        seen.append("invoked")
        ctx.wait(Duration.from_seconds(3))
        rows = ctx.map([1, 2], lambda c, n, i, items: {"email": f"m{n}@x.io", "n": n},
                       name="rows").get_results()
        pair = ctx.parallel([lambda c: Buyer(email="p@x.io", name="Pa", cards=[]),
                             lambda c: [{"email": "q@x.io"}]], name="pair").get_results()
        seen.append(type(buyer).__name__)
        return {"buyer": buyer.cards[0].number == "4242" and buyer.email == "b@x.io",
                "rows": [r["email"] for r in rows] == ["m1@x.io", "m2@x.io"],
                "pair": pair[0].email == "p@x.io" and pair[1] == [{"email": "q@x.io"}]}

    with Runtime("memory://", clock=VirtualClock()) as rt:
        rt.register("fn", handler)
        out = rt.run("fn", {})
        assert out["Status"] == "SUCCEEDED", out.get("Error")
        assert json.loads(out["Result"]) == {"buyer": True, "rows": True, "pair": True}
        texts = [s for e in rt.history(out["DurableExecutionArn"])["Events"]
                 for s in strings(e)]
    # a first invocation up to the wait, then a replay that decoded the buyer checkpoint
    assert seen.count("invoked") >= 2 and seen[-1] == "Buyer"
    joined = "\n".join(texts).encode()
    raw = b"\n".join(b for t in texts for b in decoded(t, None))
    for secret in (b"b@x.io", b"4242", b"m1@x.io", b"m2@x.io", b"p@x.io", b"q@x.io"):
        assert secret not in raw and secret not in joined, secret
    assert b"Bo" in raw and b"Pa" in raw
