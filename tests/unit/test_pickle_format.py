"""The signed pickle format: round trips, keys, rotation, binding and refusals."""

from __future__ import annotations

import base64
import datetime as dt
import pickle
import subprocess
import sys
import textwrap
import threading
import types
from decimal import Decimal

import pytest
from aws_durable_execution_sdk_python.exceptions import SerDesError
from aws_durable_execution_sdk_python.serdes import SerDesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import durable_ext
from durable_ext.errors import (
    ConfigError,
    DisallowedContentError,
    IntegrityError,
    SerializationError,
    SpecError,
)
from durable_ext.serializers._signing import ENV_VAR, Keyring, SigningKey, parse_keys
from durable_ext.serializers.frames import armor, frame, is_armored, read_frame, unarmor
from durable_ext.serializers.pickle_format import PickleFormat, WrappedKey

ARN = "arn:aws:lambda:us-east-1:123456789012:function:f/durable-execution/e/i"
CTX = SerDesContext("op-1", ARN)
K1 = b"1" * 32
K2 = b"2" * 32


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def pickle_serdes(spec: str = "pickle", **opts):
    pick = {"key": K1, **opts}
    rest = {"zstd": {"threshold": 0}} if "zstd" in spec else {}
    if "zlib" in spec:
        rest = {"zlib": {"threshold": 0}}
    return durable_ext.serdes(spec, options={"pickle": pick, **rest})


class Account:
    def __init__(self, owner: str, balance: Decimal) -> None:
        self.owner = owner
        self.balance = balance

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Account) and vars(self) == vars(other)


def make_adder(n: int):
    def add(x: int) -> int:
        return x + n

    return add


VALUES = [
    None,
    0,
    "text",
    b"\x00\xff",
    [1, (2, 3), {4}],
    {"nested": {"at": dt.datetime(2025, 1, 1, tzinfo=dt.UTC)}},
    Account("ana", Decimal("10.50")),
    list(range(2000)),
]


@pytest.mark.parametrize("spec", ["pickle", "pickle+zstd", "pickle+zlib"])
@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_round_trip(spec, value):
    s = pickle_serdes(spec)
    text = s.serialize(value, CTX)
    assert isinstance(text, str) and is_armored(text)
    text.encode("latin-1")  # one character per byte, in either armor
    assert s.deserialize(text, CTX) == value


@pytest.mark.parametrize("spec,outer", [("pickle+zstd", b"z"), ("pickle+zlib", b"l")])
def test_compression_wraps_the_signed_frame(spec, outer):
    s = pickle_serdes(spec)
    raw = unarmor(s.serialize(list(range(2000)), CTX), "t")
    wire, _, body = read_frame(raw, "t")
    assert wire == outer
    inner = s.codecs[0].decode(body, 1, CTX)
    assert read_frame(inner, "t")[0] == b"p"


def test_closures_and_lambdas_survive():
    s = pickle_serdes()
    add5 = s.deserialize(s.serialize(make_adder(5), CTX), CTX)
    square = s.deserialize(s.serialize(lambda x: x * x, CTX), CTX)
    assert add5(1) == 6 and square(7) == 49


def test_header_carries_the_key_id_and_a_32_byte_tag():
    fmt = PickleFormat(key=K1, key_id="main")
    body = fmt.encode("x", CTX)
    assert body[0] == 4 and body[1:5] == b"main"
    assert pickle.loads(body[5 + 32 :]) == "x"


# -- binding and tampering --------------------------------------------------------------


@pytest.mark.parametrize(
    "other",
    [SerDesContext("op-2", ARN), SerDesContext("op-1", ARN + "x"), SerDesContext("", ""),
     SerDesContext("op-1" + ARN, ""), SerDesContext("", "op-1" + ARN)],
    ids=["other-operation", "other-execution", "empty", "shifted-1", "shifted-2"],
)
def test_payload_copied_elsewhere_is_refused(other):
    s = pickle_serdes()
    text = s.serialize({"v": 1}, CTX)
    with pytest.raises(IntegrityError, match="copied from another operation or execution"):
        s.deserialize(text, other)


def test_every_flipped_byte_is_refused():
    s = pickle_serdes()
    raw = unarmor(s.serialize(["payload", 42], CTX), "t")
    refused = 0
    for i in range(len(raw)):
        forged = bytearray(raw)
        forged[i] ^= 0x01
        with pytest.raises(SerDesError):
            s.deserialize(armor(bytes(forged)), CTX)
        refused += 1
    assert refused == len(raw)


def test_truncated_unsigned_and_malformed_bodies_are_refused():
    s = pickle_serdes()
    good = PickleFormat(key=K1).encode("x", CTX)
    for body, why in [
        (b"", "unsigned"),
        (b"\x00" + pickle.dumps("x"), "unsigned"),
        (good[: 1 + good[0] + 31], "truncated"),
        (good[: 1 + good[0] + 32], "truncated"),
        (b"\x02\xff\xfe" + bytes(32) + b"x", "malformed key id"),
    ]:
        with pytest.raises(IntegrityError, match=why):
            s.deserialize(armor(frame(b"p", 1, body)), CTX)


def test_newer_version_is_refused_with_upgrade_hint():
    s = pickle_serdes()
    body = PickleFormat(key=K1).encode("x", CTX)
    with pytest.raises(SerializationError, match="upgrade durable-ext"):
        s.deserialize(armor(frame(b"p", 2, body)), CTX)


def test_wrong_key_and_unknown_key_id_are_refused():
    writer = pickle_serdes(key=K2, key_id="main")
    text = writer.serialize("x", CTX)
    with pytest.raises(IntegrityError, match="does not verify under key 'main'"):
        pickle_serdes(key=K1, key_id="main").deserialize(text, CTX)
    with pytest.raises(IntegrityError, match="key id 'main', which is not among"):
        pickle_serdes(key=K1, key_id="other").deserialize(text, CTX)


def test_pipeline_without_pickle_refuses_pickle_frames():
    text = pickle_serdes("pickle+zstd").serialize(list(range(2000)), CTX)
    for spec in ("msgpack", "msgpack+zstd", "json"):
        with pytest.raises(DisallowedContentError, match="'pickle'"):
            durable_ext.serdes(spec).deserialize(text, CTX)


def test_unpicklable_value_names_its_type():
    with pytest.raises(SerializationError, match=r"_thread\.lock.*op-1"):
        pickle_serdes().serialize(threading.Lock(), CTX)


def test_verified_payload_whose_class_is_gone_says_so(tmp_path, monkeypatch):
    mod = types.ModuleType("deploy_v1")
    exec("class Thing:\n    pass\n", mod.__dict__)  # a class importable by reference
    mod.Thing.__module__ = "deploy_v1"
    monkeypatch.setitem(sys.modules, "deploy_v1", mod)
    s = pickle_serdes()
    text = s.serialize(mod.Thing(), CTX)
    del mod.Thing  # the next deploy no longer has it
    with pytest.raises(SerializationError, match="missing or changed in this deploy"):
        s.deserialize(text, CTX)


# -- keys -------------------------------------------------------------------------------


def test_rotation_old_payloads_verify_new_ones_use_the_new_key():
    old = pickle_serdes(key=K1, key_id="2025")
    text_old = old.serialize("old", CTX)
    rotated = pickle_serdes(key=K2, key_id="2026", verify_keys=[SigningKey("2025", K1)])
    assert rotated.deserialize(text_old, CTX) == "old"
    text_new = rotated.serialize("new", CTX)
    assert unarmor(text_new, "t")[4:9] == b"\x042026"
    with pytest.raises(IntegrityError, match="'2026', which is not among"):
        old.deserialize(text_new, CTX)
    retired = pickle_serdes(key=K2, key_id="2026")  # the old key is dropped later
    with pytest.raises(IntegrityError, match="'2025'"):
        retired.deserialize(text_old, CTX)


def test_key_from_env_with_several_entries_and_spec_key_id(monkeypatch):
    monkeypatch.setenv(ENV_VAR, f"a:{b64(K1)}, b:{b64(K2)}")
    default = durable_ext.serdes("pickle")
    chosen = durable_ext.serdes("pickle:b")
    assert default.format.keyring.signing_id == "a"
    assert chosen.format.keyring.signing_id == "b"
    assert default.deserialize(chosen.serialize(1, CTX), CTX) == 1  # both verify
    assert chosen.deserialize(default.serialize(2, CTX), CTX) == 2
    with pytest.raises(ConfigError, match="'c' is not among"):
        durable_ext.serdes("pickle:c")


def test_key_from_a_custom_env_var_and_unnamed_key_gets_a_derived_id(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("MY_KEY", b64(K1).rstrip("="))
    fmt = PickleFormat(key_env="MY_KEY")
    assert fmt.keyring.signing_id == SigningKey.derive_id(K1)
    assert len(fmt.keyring.signing_id) == 16


def test_key_from_file(tmp_path):
    path = tmp_path / "pickle.key"
    path.write_text(f"k1:{b64(K1)}\nk0:{b64(K2)}\n")
    fmt = PickleFormat(key=path)
    assert fmt.keyring.signing_id == "k1"
    old = PickleFormat(key=K2, key_id="k0")
    assert fmt.decode(old.encode("x", CTX), 1, CTX) == "x"


def test_key_from_a_provider_object_is_fetched_once_and_lazily():
    class Provider:
        calls = 0

        def get_key(self) -> bytes:
            Provider.calls += 1
            return K2

    p = Provider()
    fmt = PickleFormat(key=p, key_id="kms-derived")
    assert Provider.calls == 0  # no I/O when the pipeline is built
    body = fmt.encode("x", CTX)
    assert fmt.decode(body, 1, CTX) == "x"
    assert fmt.decode(fmt.encode("y", CTX), 1, CTX) == "y"
    assert Provider.calls == 1
    assert PickleFormat(key=K2, key_id="kms-derived").decode(body, 1, CTX) == "x"


def test_key_from_a_callable():
    fmt = PickleFormat(key=lambda: K1)
    assert fmt.keyring.signing_id == SigningKey.derive_id(K1)


def test_provider_failures_are_serialization_errors_and_retryable_ones_pass_through():
    from aws_durable_execution_sdk_python.exceptions import RetryableSerDesError

    class Broken:
        def __init__(self, exc: Exception) -> None:
            self.exc = exc

        def key_bytes(self) -> bytes:
            raise self.exc

    with pytest.raises(SerializationError, match="key provider Broken failed"):
        PickleFormat(key=Broken(OSError("down"))).encode("x", CTX)
    with pytest.raises(RetryableSerDesError):
        PickleFormat(key=Broken(RetryableSerDesError("throttled"))).encode("x", CTX)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"key": b"short"}, "at least 32 bytes"),
        ({"key": "id:@@@@"}, "not valid base64"),
        ({"key": f"bad/id:{b64(K1)}"}, "key id .bad/id. is invalid"),
        ({"key": " , "}, "no key found"),
        ({"key": object()}, "not a key source"),
        ({"key": K1, "verify_keys": [SigningKey("x", K2), SigningKey("x", b"3" * 32)]},
         "two different keys share the id 'x'"),
    ],
)
def test_bad_keys_are_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        PickleFormat(**kwargs).encode("x", CTX)


def test_no_key_at_all_says_how_to_set_one(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    with pytest.raises(ConfigError, match=f"set the {ENV_VAR} environment variable"):
        durable_ext.serdes("pickle")


def test_missing_key_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot be read"):
        PickleFormat(key=tmp_path / "absent.key")


def test_secrets_never_appear_in_reprs_or_messages(monkeypatch):
    secret = b"S3cr3t-" * 6
    monkeypatch.setenv(ENV_VAR, f"prod:{b64(secret)}")
    s = durable_ext.serdes("pickle")
    text = s.serialize("x", CTX)
    parsed = parse_keys(f"a:{b64(secret)}", "t")
    shown = [repr(s), repr(s.format), repr(s.format.keyring), repr(parsed)]
    try:
        s.deserialize(text, SerDesContext("op-2", ARN))
    except IntegrityError as exc:
        shown.append(str(exc))
    for where in shown:
        assert "S3cr3t" not in where and b64(secret) not in where


def test_spec_and_options_errors():
    with pytest.raises(ConfigError, match="stage 'pickle'"):
        durable_ext.serdes("pickle", types=[int], options={"pickle": {"key": K1}})
    with pytest.raises(SpecError):
        durable_ext.serdes("pickle+")


def test_keyring_signing_id_example():
    assert Keyring(K1, key_id="k1").signing_id == "k1"


def test_missing_cloudpickle_names_the_pickle_extra():
    code = textwrap.dedent(
        """
        import sys
        sys.modules["cloudpickle"] = None
        import durable_ext
        try:
            durable_ext.serdes("pickle", options={"pickle": {"key": b"k" * 32}})
        except ImportError as exc:
            print(type(exc).__name__, exc)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("MissingDependencyError")
    assert "pip install 'durable-ext[pickle]'" in out.stdout


# -- keys from the KMS codec's key provider, and composition with encryption ----------------


def local_provider():
    from durable_ext.serializers.kms import LocalKeyProvider

    return LocalKeyProvider(b"w" * 32, key_id="wrap")


def test_signing_key_wrapped_by_a_key_provider_is_unwrapped_in_every_process():
    context = {"purpose": "pickle signing"}
    data_key = local_provider().generate(context, "setup")  # done once, at setup time
    # two "processes": each has its own provider instance and unwraps the stored key
    writer = PickleFormat(key=WrappedKey(local_provider(), data_key.key_id, data_key.encrypted,
                                         context), key_id="wrapped-2026")
    reader = PickleFormat(key=WrappedKey(local_provider(), data_key.key_id, data_key.encrypted,
                                         context), key_id="wrapped-2026")
    assert reader.decode(writer.encode({"x": 1}, CTX), 1, CTX) == {"x": 1}
    assert PickleFormat(key=data_key.plaintext, key_id="wrapped-2026").decode(
        writer.encode("same key", CTX), 1, CTX) == "same key"
    wrong_context = PickleFormat(key=WrappedKey(local_provider(), data_key.key_id,
                                                data_key.encrypted, {"purpose": "other"}))
    with pytest.raises(SerDesError, match="does not verify under local key"):
        wrong_context.encode("x", CTX)


def test_a_provider_object_itself_is_refused_with_a_pointer_to_wrapped_key():
    with pytest.raises(ConfigError, match="WrappedKey"):
        PickleFormat(key=local_provider())


def test_key_file_option(tmp_path):
    path = tmp_path / "k"
    path.write_text(b64(K1))
    assert PickleFormat(key_file=str(path)).keyring.signing_id == SigningKey.derive_id(K1)
    with pytest.raises(ConfigError, match="not both"):
        PickleFormat(key=K1, key_file=str(path))


def test_composes_with_compression_and_encryption():
    s = durable_ext.serdes("pickle+zstd+localkey", options={
        "pickle": {"key": K1}, "zstd": {"threshold": 0}, "localkey": {"key": b"e" * 32}})
    value = {"rows": [make_adder(i) for i in range(3)], "data": list(range(500))}
    text = s.serialize(value, CTX)
    assert read_frame(unarmor(text, "t"), "t")[0] == b"K"
    back = s.deserialize(text, CTX)
    assert [f(1) for f in back["rows"]] == [1, 2, 3] and back["data"] == value["data"]
    with pytest.raises(SerDesError):
        s.deserialize(text, SerDesContext("op-2", ARN))


# -- round-trip property ------------------------------------------------------------------


values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
    | st.binary() | st.decimals(allow_nan=False) | st.datetimes() | st.uuids(),
    lambda kids: st.lists(kids, max_size=4) | st.tuples(kids, kids)
    | st.dictionaries(st.text(max_size=4) | st.integers(), kids, max_size=4)
    | st.frozensets(st.integers(), max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values, st.text(max_size=20), st.text(max_size=40))
def test_any_value_round_trips_under_any_context(value, op_id, arn):
    s = pickle_serdes("pickle+zstd")
    ctx = SerDesContext(op_id, arn)
    assert s.deserialize(s.serialize(value, ctx), ctx) == value
