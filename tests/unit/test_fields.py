"""The fields stage: selected fields encrypted or redacted, the rest plain; moves refused."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import struct
import uuid
from decimal import Decimal
from typing import Annotated, Any

import msgpack
import pytest
from aws_durable_execution_sdk_python.concurrency.models import (
    BatchItem,
    BatchItemStatus,
    BatchResult,
    CompletionReason,
)
from aws_durable_execution_sdk_python.exceptions import SerDesError
from aws_durable_execution_sdk_python.serdes import SerDesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field

import durable_ext
from durable_ext.errors import (
    ConfigError,
    DisallowedContentError,
    IntegrityError,
    SerializationError,
    SpecError,
)
from durable_ext.serializers._field_marks import OPEN, SEALED, OpenFields
from durable_ext.serializers.fields import ENCRYPT, FieldsStage, Redacted
from durable_ext.serializers.fields_view import view
from durable_ext.serializers.frames import armor, frame, read_frame, unarmor
from durable_ext.serializers.model_format import ModelRegistry
from durable_ext.serializers.msgpack_format import MsgpackFormat

KEY = b"k" * 32
RKEY = b"r" * 32
CTX = SerDesContext("op-1", "arn:aws:lambda:us-east-1:1:function:f/durable-execution/e/1")
SPEC = "msgpack+fields:localkey;paths=customer.email,cards[*].number;redact=customer.ssn"


@pytest.fixture(autouse=True)
def _quiet(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="durable_ext.serializers.kms")


def pipeline(spec: str = SPEC, **fields: Any) -> Any:
    return durable_ext.serdes(spec, options={"fields": {"key": KEY, "redact_key": RKEY,
                                                        **fields}})


def order() -> dict[str, Any]:
    return {
        "id": uuid.UUID(int=7),
        "customer": {"email": "ada@example.com", "name": "Ada", "ssn": "123-45-6789"},
        "cards": [
            {"number": "4111111111111111", "exp": (12, 30)},
            {"number": b"\x00raw", "exp": dt.date(2031, 1, 2)},
            {"brand": "none"},
        ],
        "total": Decimal("12.50"),
    }


# -- the F frame, opened and rebuilt by hand (what an attacker with store access can do) -----


def split(text: str) -> tuple[bytes, bytes, bytes, Any]:
    """Return (prefix up to the envelope, envelope, format header, plain tree with SEALED)."""
    wire, version, body = read_frame(unarmor(text, "t"), "t")
    assert (wire, version) == (b"F", 1)
    n = body[0]
    pos = 1 + n
    (plen,) = struct.unpack_from(">I", body, pos)
    pos += 4 + plen
    (elen,) = struct.unpack_from(">I", body, pos)
    head = body[: pos + 4]
    envelope = body[pos + 4 : pos + 4 + elen]
    inner = body[pos + 4 + elen :]
    fwire, fversion, fbody = read_frame(inner, "t")
    token = OPEN.set(OpenFields())
    try:
        tree = MsgpackFormat().decode(fbody, fversion, CTX)
    finally:
        OPEN.reset(token)
    return head, envelope, frame(fwire, fversion, b""), tree


def join(head: bytes, envelope: bytes, header: bytes, tree: Any) -> str:
    def swap(node: Any) -> Any:
        if node is SEALED:
            return MsgpackFormat.sealed_mark
        if isinstance(node, dict):
            return {k: swap(v) for k, v in node.items()}
        if isinstance(node, list):
            return [swap(v) for v in node]
        return node

    version, body = MsgpackFormat().encode_versioned(swap(tree), CTX)
    return armor(frame(b"F", 1, head + envelope + frame(header[2:-1], version, body)))


# -- round trips ------------------------------------------------------------------------


def test_selected_fields_round_trip_with_their_types_and_the_rest_stays_plain() -> None:
    s = pipeline()
    text = s.serialize(order(), CTX)
    back = s.deserialize(text, CTX)
    expected = order()
    assert back["cards"] == expected["cards"]  # bytes, tuple and date kept in encrypted fields
    assert back["customer"]["email"] == "ada@example.com"
    assert back["id"] == expected["id"] and back["total"] == Decimal("12.50")
    assert isinstance(back["customer"]["ssn"], Redacted)
    raw = unarmor(text, "t")
    for secret in (b"ada@example.com", b"4111111111111111", b"\x00raw", b"123-45-6789"):
        assert secret not in raw
    assert b"Ada" in raw and b"brand" in raw  # the rest is readable as it is


def test_view_shows_encrypted_fields_as_such_without_a_key_and_decrypted_with_it() -> None:
    s = pipeline()
    text = s.serialize(order(), CTX)
    shown = view(text, CTX)
    assert shown["customer"]["email"] == {"$encrypted": {
        "path": "customer.email", "field": 0, "stage": "localkey",
        "key_id": shown["customer"]["email"]["$encrypted"]["key_id"]}}
    assert shown["cards"][1]["number"]["$encrypted"]["path"] == "cards[1].number"
    assert shown["customer"]["name"] == "Ada"
    assert shown["customer"]["ssn"]["$redacted"].startswith("redacted:")
    opened = view(text, CTX, serdes=s)
    assert opened["customer"]["email"] == "ada@example.com"
    assert opened["cards"][1]["number"] == {"$bytes": "AHJhdw=="}
    other = durable_ext.serdes(SPEC, options={"fields": {"key": b"o" * 32,
                                                         "redact_key": RKEY}})
    wrong = view(text, CTX, serdes=other)
    assert "error" in wrong["customer"]["email"]["$encrypted"]
    assert wrong["customer"]["name"] == "Ada"


def test_decoding_without_the_key_is_refused_naming_the_stage() -> None:
    text = pipeline().serialize(order(), CTX)
    with pytest.raises(DisallowedContentError, match="fields"):
        durable_ext.serdes("msgpack").deserialize(text, CTX)
    reader = durable_ext.serdes("msgpack", options={"fields": {}})
    with pytest.raises(DisallowedContentError, match="no key"):
        reader.deserialize(text, CTX)
    # A reader configured with the key only (options, no paths) decrypts.
    only_key = durable_ext.serdes("msgpack", options={"fields": {"localkey": True, "key": KEY}})
    assert only_key.deserialize(text, CTX)["customer"]["email"] == "ada@example.com"


def test_nothing_selected_writes_no_fields_frame() -> None:
    s = pipeline()
    text = s.serialize({"other": 1}, CTX)
    assert read_frame(unarmor(text, "t"), "t")[0] == b"m"
    assert s.deserialize(text, CTX) == {"other": 1}


def test_with_compression_and_the_python_api() -> None:
    stage = FieldsStage(["a.secret", "rows[*].pin"], localkey=True, key=KEY)
    from durable_ext.serializers.compression import ZlibCodec
    from durable_ext.serializers.pipeline import Pipeline

    p = Pipeline(MsgpackFormat(), [ZlibCodec(threshold=0)], fields=stage)
    value = {"a": {"secret": "s" * 2000}, "rows": [{"pin": i, "x": "y" * 50} for i in range(50)]}
    text = p.serialize(value, CTX)
    assert read_frame(unarmor(text, "t"), "t")[0] == b"l"
    assert p.deserialize(text, CTX) == value
    assert repr(p) == "Pipeline('msgpack+fields+zlib')"


def test_a_field_inside_a_selected_field_is_sealed_with_it() -> None:
    s = durable_ext.serdes("msgpack+fields:localkey;paths=a.b,a;redact=a.c",
                           options={"fields": {"key": KEY, "redact_key": RKEY}})
    text = s.serialize({"a": {"b": 1, "c": 2}}, CTX)
    assert list(view(text, CTX)["a"]) == ["$encrypted"]
    back = s.deserialize(text, CTX)
    assert back["a"]["b"] == 1 and isinstance(back["a"]["c"], Redacted)


def test_wildcard_keys_int_keys_and_top_level_lists() -> None:
    s = durable_ext.serdes("msgpack+fields:localkey;paths=accounts.*.iban,[*].pin,[1]",
                           options={"fields": {"key": KEY}})
    v1 = {"accounts": {"a": {"iban": "DE1"}, 7: {"iban": "DE2"}, "b": {"other": 1}}}
    assert s.deserialize(s.serialize(v1, CTX), CTX) == v1
    v2 = [{"pin": 1}, {"pin": 2, "x": 3}, {"no": 0}]
    text = s.serialize(v2, CTX)
    assert s.deserialize(text, CTX) == v2
    assert view(text, CTX)[1]["$encrypted"]["path"] == "[1]"  # [1] selects the whole item


# -- moves, copies and tampering ------------------------------------------------------------


def test_moved_to_another_operation_or_execution_is_refused() -> None:
    s = pipeline()
    text = s.serialize(order(), CTX)
    for ctx in (SerDesContext("op-2", CTX.durable_execution_arn),
                SerDesContext("op-1", CTX.durable_execution_arn + "x")):
        with pytest.raises(IntegrityError, match="moved to another path, operation"):
            s.deserialize(text, ctx)


def test_a_field_moved_to_another_path_is_refused() -> None:
    s = pipeline()
    head, env, header, tree = split(s.serialize(order(), CTX))
    # A parent key renamed: the concrete path changes.
    renamed = dict(tree)
    renamed["customer"] = dict(tree["customer"])
    renamed["client"] = renamed.pop("customer")
    with pytest.raises(SerDesError):
        s.deserialize(join(head, env, header, renamed), CTX)
    # Outside objects an encrypted field's place holds None (the paths say where fields
    # are); inside objects it holds a mark the format tells apart from any value.
    assert tree["customer"]["email"] is None and tree["cards"][0]["number"] is None
    # A field moved to another selected path: the paths the payload binds change.
    moved = dict(tree, cards=[{"exp": 1}, tree["cards"][1], {"number": None}])
    with pytest.raises(IntegrityError, match="do not decrypt"):
        s.deserialize(join(head, env, header, moved), CTX)
    # A field added at a selected path.
    added = dict(tree, cards=[*tree["cards"][:2], {"number": None}])
    with pytest.raises(IntegrityError, match=r"do not decrypt|match their paths"):
        s.deserialize(join(head, env, header, added), CTX)
    # An object's mark put where no path selects one, or where a plain value is expected.
    copied = dict(tree, extra=SEALED)
    with pytest.raises(IntegrityError, match="moved or copied"):
        s.deserialize(join(head, env, header, copied), CTX)
    marked = dict(tree, customer=dict(tree["customer"], email=SEALED))
    with pytest.raises(IntegrityError, match="plain value"):
        s.deserialize(join(head, env, header, marked), CTX)
    # A mark replaced by a plain value.
    plain = dict(tree, customer=dict(tree["customer"], email="eve@example.com"))
    with pytest.raises(IntegrityError, match="plain value"):
        s.deserialize(join(head, env, header, plain), CTX)
    # A card removed: the third card's mark would move up.
    removed = dict(tree, cards=tree["cards"][1:])
    with pytest.raises(IntegrityError):
        s.deserialize(join(head, env, header, removed), CTX)
    # Untouched, the rebuilt payload still decodes (the helpers are faithful).
    assert s.deserialize(join(head, env, header, tree), CTX)["cards"] == order()["cards"]


def test_marks_outside_a_fields_frame_are_refused() -> None:
    s = pipeline()
    _, _, _, tree = split(s.serialize(order(), CTX))
    tree["customer"]["email"] = MsgpackFormat.sealed_mark
    tree["cards"] = []
    text = armor(frame(b"m", 2, MsgpackFormat().encode(tree, CTX)))
    with pytest.raises(SerializationError, match="encrypted field outside a fields frame"):
        s.deserialize(text, CTX)


def test_every_byte_of_the_fields_frame_is_checked() -> None:
    s = pipeline(spec="msgpack+fields:localkey;paths=k")
    raw = unarmor(s.serialize({"k": "secret", "p": 1}, CTX), "t")
    for i in range(len(raw)):
        tampered = bytearray(raw)
        tampered[i] ^= 0x01
        try:
            out = s.deserialize(armor(bytes(tampered)), CTX)
        except SerDesError:
            continue
        # Only the plain field may change; the encrypted one never decodes to anything else.
        assert out.get("k") == "secret", i


def test_a_changed_pattern_is_refused() -> None:
    s = pipeline(spec="msgpack+fields:localkey;paths=k")
    text = s.serialize({"k": "secret", "j": "x"}, CTX)
    wire, version, body = read_frame(unarmor(text, "t"), "t")
    forged = body.replace(msgpack.packb([["k"]]), msgpack.packb([["j"]]))
    assert forged != body
    with pytest.raises(SerDesError):
        s.deserialize(armor(frame(wire, version, forged)), CTX)


# -- redaction --------------------------------------------------------------------------


def test_redaction_is_a_keyed_hash_that_compares_and_never_fails_to_decode() -> None:
    s = durable_ext.serdes("msgpack+fields:redact=ssn,tags[*]",
                           options={"fields": {"redact_key": RKEY}})
    stage = s.fields
    text = s.serialize({"ssn": "123-45-6789", "tags": ["a", "a", 3]}, CTX)
    back = durable_ext.serdes("msgpack").deserialize(text, CTX)  # no key, no fields stage
    assert back["ssn"] == stage.redact_value("123-45-6789")
    assert back["ssn"] != stage.redact_value("123-45-6780")
    assert back["tags"][0] == back["tags"][1] != back["tags"][2]
    assert back["ssn"].key_id == stage.redact_value("x").key_id
    assert b"123-45-6789" not in unarmor(text, "t")
    # Another key gives other hashes.
    other = FieldsStage(redact="ssn", redact_key=b"q" * 32)
    assert other.redact_value("123-45-6789") != back["ssn"]
    # A redacted value written again stays as it is.
    again = s.deserialize(s.serialize(back, CTX), CTX)
    assert again == back


def test_redaction_needs_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DURABLE_EXT_REDACT_KEY", raising=False)
    with pytest.raises(ConfigError, match="DURABLE_EXT_REDACT_KEY"):
        durable_ext.serdes("msgpack+fields:redact=ssn")
    monkeypatch.setenv("DURABLE_EXT_REDACT_KEY", "r1:" + "cg" * 22)
    s = durable_ext.serdes("msgpack+fields:redact=ssn")
    assert s.deserialize(s.serialize({"ssn": 1}, CTX), CTX)["ssn"].key_id == "r1"


@pytest.mark.parametrize("body", [b"", b"\x05ab", b"\x01a" + b"x" * 31, b"\x01\xff" + b"x" * 32])
def test_malformed_redacted_values_are_refused(body: bytes) -> None:
    text = armor(frame(b"m", 2, msgpack.packb(msgpack.ExtType(17, body))))
    with pytest.raises(SerializationError):
        durable_ext.serdes("msgpack").deserialize(text, CTX)


# -- spec and configuration ---------------------------------------------------------------


@pytest.mark.parametrize("spec, match", [
    ("msgpack+fields:colour=red", "unknown spec option"),
    ("msgpack+fields:localkey;paths=", "needs a value"),
    ("msgpack+fields:localkey;paths", "needs a value"),
    ("msgpack+fields:localkey;paths=a..b", "bad field name"),
    ("msgpack+fields:localkey;paths=a[x]", "bad index"),
    ("msgpack+fields:localkey;paths=a,a", "twice"),
    ("msgpack+fields:paths=a", "need a key|without kms"),
    ("msgpack+fields:kms=alias/x;localkey;paths=a", "one of"),
    ("json+fields:localkey;paths=a", "msgpack or model"),
    ("msgpack+zstd+fields:localkey;paths=a", "expected a codec"),
])
def test_bad_specs_say_what_is_wrong(spec: str, match: str) -> None:
    with pytest.raises((ConfigError, SpecError), match=match):
        durable_ext.serdes(spec, options={"fields": {"key": KEY}})


def test_kms_spec_builds_a_kms_codec_with_the_key() -> None:
    s = durable_ext.serdes("msgpack+fields:kms=arn:aws:kms:eu-west-1:111122223333:key/"
                           "1234abcd-12ab-34cd-56ef-1234567890ab;paths=a")
    assert s.fields.codec.name == "kms"
    assert s.fields.codec.provider.key_id.endswith("1234567890ab")


# -- models, dataclasses, BatchResults, predicates ------------------------------------------


class Card(BaseModel):
    number: Annotated[str, ENCRYPT]
    holder: str = Field(json_schema_extra={"durable_ext": "redact"})
    brand: str = "visa"


class Customer(BaseModel):
    email: str = Field(json_schema_extra={"durable_ext": "encrypt"}, alias="e-mail")
    cards: list[Card] = []
    name: str


@dataclasses.dataclass
class Shipment:
    address: str = dataclasses.field(metadata={"durable_ext": "encrypt"})
    code: Annotated[int, ENCRYPT] = 0
    note: str = ""


def test_pydantic_marks_encrypt_and_redact_fields_of_nested_models() -> None:
    models = ModelRegistry([Customer, Card, Shipment])
    s = durable_ext.serdes("model+fields:localkey", types=models,
                           options={"fields": {"key": KEY, "redact_key": RKEY}})
    c = Customer(**{"e-mail": "ada@example.com"}, name="Ada",
                 cards=[Card(number="4111", holder="ADA L")])
    value = {"c": c, "ship": Shipment(address="1 Main St", code=42, note="ring")}
    text = s.serialize(value, CTX)
    raw = unarmor(text, "t")
    for secret in (b"ada@example.com", b"4111", b"ADA L", b"1 Main St"):
        assert secret not in raw
    back = s.deserialize(text, CTX)
    assert back["ship"] == value["ship"]
    assert back["c"].email == "ada@example.com" and back["c"].cards[0].number == "4111"
    assert back["c"].cards[0].holder.startswith("redacted:")  # a str, as the field wants
    assert back["c"].name == "Ada"
    shown = view(text, CTX, serdes=durable_ext.serdes("model", types=models,
                                                      options={"fields": {}}))
    assert shown["c"]["$object"] == "Customer"
    assert "$encrypted" in shown["c"]["fields"]["e-mail"]


def test_msgpack_dataclass_metadata_marks() -> None:
    s = durable_ext.serdes("msgpack+fields:localkey", types=[Shipment],
                           options={"fields": {"key": KEY}})
    value = [Shipment(address="1 Main St", code=7), Shipment(address="2 Side Rd")]
    text = s.serialize(value, CTX)
    assert b"Main St" not in unarmor(text, "t")
    assert s.deserialize(text, CTX) == value


def test_paths_reach_into_registered_objects_and_batch_results() -> None:
    s = durable_ext.serdes("msgpack+fields:localkey;paths=email,ship.address", types=[Shipment],
                           options={"fields": {"key": KEY, "models": False}})
    batch = BatchResult([
        BatchItem(0, BatchItemStatus.SUCCEEDED, {"email": "a@x", "n": 1}),
        BatchItem(1, BatchItemStatus.SUCCEEDED, {"email": "b@x", "ship": Shipment("3 Rd")}),
        BatchItem(2, BatchItemStatus.FAILED, None),
    ], CompletionReason.ALL_COMPLETED)
    text = s.serialize(batch, CTX)
    raw = unarmor(text, "t")
    assert b"a@x" not in raw and b"3 Rd" not in raw
    back = s.deserialize(text, CTX)
    assert isinstance(back, BatchResult)
    assert back.to_dict() == batch.to_dict()
    reader = durable_ext.serdes("msgpack", types=[Shipment], options={"fields": {}})
    shown = view(text, CTX, serdes=reader)
    assert shown["fields"]["all"][1]["result"]["email"]["$encrypted"]["path"] == \
        "all[1].result.email"


def test_a_predicate_selects_fields() -> None:
    def pick(path: tuple[Any, ...], value: Any) -> Any:
        if path[-1] == "token":
            return "encrypt"
        return "redact" if path[-1] == "pin" else None

    stage = FieldsStage(predicate=pick, localkey=True, key=KEY, redact_key=RKEY)
    from durable_ext.serializers.pipeline import Pipeline

    p = Pipeline(MsgpackFormat(), fields=stage)
    value = {"a": [{"token": "t1", "pin": 1}, {"token": ("t", 2)}], "b": {"c": {"token": None}}}
    back = p.deserialize(p.serialize(value, CTX), CTX)
    assert back["a"][1]["token"] == ("t", 2) and back["b"]["c"]["token"] is None
    assert isinstance(back["a"][0]["pin"], Redacted)


# -- hostile input ------------------------------------------------------------------------


_SAMPLE = pipeline().serialize(order(), CTX)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzzed_fields_payloads_fail_only_with_serdes_errors(data: st.DataObject) -> None:
    s = pipeline()
    raw = bytearray(unarmor(_SAMPLE, "t"))
    for _ in range(data.draw(st.integers(1, 8))):
        kind = data.draw(st.sampled_from(["flip", "cut", "insert", "set"]))
        i = data.draw(st.integers(0, len(raw) - 1))
        if kind == "flip":
            raw[i] ^= 1 << data.draw(st.integers(0, 7))
        elif kind == "cut":
            del raw[i : i + data.draw(st.integers(1, 64))]
        elif kind == "insert":
            raw[i:i] = data.draw(st.binary(min_size=1, max_size=16))
        else:
            raw[i] = data.draw(st.sampled_from([0x00, 0xFF, 0xC1, 0xDD, 0xDF, 0xC9]))
        if not raw:
            raw = bytearray(b"\xc1")
    try:
        out = s.deserialize(armor(bytes(raw)), CTX)
    except SerDesError:
        return
    # What decodes holds the original encrypted fields, never other values in their place.
    if isinstance(out, dict) and isinstance(out.get("customer"), dict) and \
            "email" in out["customer"]:
        assert out["customer"]["email"] == "ada@example.com"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_random_fields_frames_fail_only_with_serdes_errors(body: bytes) -> None:
    with contextlib.suppress(SerDesError):
        pipeline().deserialize(armor(frame(b"F", 1, body)), CTX)


def test_pattern_lists_in_payloads_are_bounded() -> None:
    s = pipeline(spec="msgpack+fields:localkey;paths=k")
    text = s.serialize({"k": 1}, CTX)
    wire, version, body = read_frame(unarmor(text, "t"), "t")
    n = body[0]
    (plen,) = struct.unpack_from(">I", body, 1 + n)
    huge = msgpack.packb([["k"]] * 5000)
    forged = body[: 1 + n] + struct.pack(">I", len(huge)) + huge + body[1 + n + 4 + plen :]
    with pytest.raises(IntegrityError, match="malformed paths"):
        s.deserialize(armor(frame(wire, version, forged)), CTX)
    deep = msgpack.packb([["a"] * 40])
    forged = body[: 1 + n] + struct.pack(">I", len(deep)) + deep + body[1 + n + 4 + plen :]
    with pytest.raises(IntegrityError, match="malformed paths"):
        s.deserialize(armor(frame(wire, version, forged)), CTX)


def test_redaction_needs_no_cryptography_and_encryption_names_its_extra() -> None:
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(
        """
        import sys
        sys.modules["cryptography"] = None  # as if not installed
        import durable_ext
        from durable_ext.errors import MissingDependencyError
        from aws_durable_execution_sdk_python.serdes import SerDesContext
        s = durable_ext.serdes("msgpack+fields:redact=ssn",
                               options={"fields": {"redact_key": b"r" * 32}})
        print(s.deserialize(s.serialize({"ssn": "1"}, SerDesContext()), SerDesContext())["ssn"][:9])
        try:
            durable_ext.serdes("msgpack+fields:localkey;paths=a")
        except MissingDependencyError as exc:
            print(exc)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("redacted:")
    assert "pip install 'durable-ext[kms]'" in out.stdout


def test_a_pipeline_may_encrypt_fields_and_the_whole_payload() -> None:
    s = durable_ext.serdes("msgpack+fields:localkey;paths=a+zstd+localkey",
                           options={"fields": {"key": KEY}, "localkey": {"key": b"w" * 32}})
    text = s.serialize({"a": "x" * 600, "b": 1}, CTX)
    assert read_frame(unarmor(text, "t"), "t")[0] == b"K"
    assert s.deserialize(text, CTX) == {"a": "x" * 600, "b": 1}
    assert view(text, CTX, serdes=s) == {"a": "x" * 600, "b": 1}


def test_values_no_json_can_carry_never_take_the_json_shortcut() -> None:
    # A float-heavy value would go out as JSON without fields: never with them.
    s = pipeline(spec="msgpack+fields:localkey;paths=secret")
    value = {"secret": 0.5, "xs": [0.25] * 200}
    assert durable_ext.serdes("msgpack").serialize(value, CTX).startswith("{")
    text = s.serialize(value, CTX)
    assert text[:1] in ("w", "\xc1") and "0.5" not in text
    assert s.deserialize(text, CTX) == value


def test_marks_without_their_key_are_refused_when_the_pipeline_is_built(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DURABLE_EXT_REDACT_KEY", raising=False)
    models = ModelRegistry([Customer, Card])
    with pytest.raises(ConfigError, match="redaction key"):
        durable_ext.serdes("model+fields:localkey", types=models, options={"fields": {"key": KEY}})
    with pytest.raises(ConfigError, match="no key"):
        durable_ext.serdes("model+fields", types=models,
                           options={"fields": {"redact_key": RKEY}})


def test_paths_that_would_visit_too_much_are_stopped() -> None:
    # 4,000 literals under a wildcard, over 2,000 dicts: 8 million visits, past max_items.
    paths = ",".join(f"[*].k{i}" for i in range(4000))
    s = durable_ext.serdes(f"msgpack+fields:localkey;paths={paths}",
                           options={"fields": {"key": KEY}}, limits={"max_items": 100_000})
    with pytest.raises(SerializationError, match="visits"):
        s.serialize([{"a": 1}] * 2000, CTX)
    small = durable_ext.serdes("msgpack+fields:localkey;paths=[*].k1",
                               options={"fields": {"key": KEY}}, limits={"max_items": 100_000})
    text = small.serialize([{"k1": 1}] * 50, CTX)
    # The reader's own limits apply to the paths the payload brings.
    with pytest.raises(SerializationError, match="visits"):
        durable_ext.serdes("msgpack", options={"fields": {"localkey": True, "key": KEY}},
                           limits={"max_items": 60}).deserialize(text, CTX)
    assert small.deserialize(text, CTX) == [{"k1": 1}] * 50


_KEYS = st.sampled_from(["a", "b", "c", 0, 1])
_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=3) | st.binary(max_size=3),
    lambda inner: (st.lists(inner, max_size=3) | st.lists(inner, max_size=3).map(tuple)
                   | st.dictionaries(_KEYS, inner, max_size=3)),
    max_leaves=12,
)
_SEGMENT = st.sampled_from(["a", "b", "c", "*", "[*]", "[0]", "[1]"])


def _path(segs: list[str]) -> str:
    out = ""
    for s in segs:
        out += s if s.startswith("[") or not out else "." + s
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_VALUES, st.lists(st.lists(_SEGMENT, min_size=1, max_size=3).map(_path), min_size=1,
                         max_size=3, unique=True), st.booleans())
def test_any_value_under_any_paths_round_trips_exactly(value: Any, paths: list[str],
                                                       redact: bool) -> None:
    stage = FieldsStage(paths[1:] if redact and len(paths) > 1 else paths,
                        redact=paths[:1] if redact and len(paths) > 1 else (),
                        localkey=True, key=KEY, redact_key=RKEY)
    from durable_ext.serializers.pipeline import Pipeline

    p = Pipeline(MsgpackFormat(), fields=stage)
    back = p.deserialize(p.serialize(value, CTX), CTX)
    if not (redact and len(paths) > 1):
        assert back == value and repr(back) == repr(value)
    shown = view(p.serialize(value, CTX), CTX)  # never fails without the key
    assert shown is not None or value is None
