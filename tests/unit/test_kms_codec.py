"""The envelope codecs without a network: local keys, binding, tampering, caches, rotation."""

from __future__ import annotations

import base64
import logging
import subprocess
import sys
import textwrap

import pytest
from aws_durable_execution_sdk_python.serdes import SerDesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import durable_ext
from durable_ext.errors import (
    ConfigError,
    DisallowedContentError,
    IntegrityError,
    SerializationError,
)
from durable_ext.serializers._envelope_wire import Reader, encode_key_id
from durable_ext.serializers.frames import is_armored, read_frame, unarmor
from durable_ext.serializers.kms import (
    DEFAULT_CONTEXT,
    DataKey,
    DataKeyCache,
    KmsCodec,
    KmsKeyProvider,
    LocalKeyCodec,
    LocalKeyProvider,
)

KEY_A = bytes(range(32))
KEY_B = bytes(range(1, 33))
ARN = "arn:aws:lambda:us-east-1:123456789012:function:f:$LATEST/durable-execution/e1/i1"
CTX = SerDesContext("op-1", ARN)
KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
VALUE = {"order": 42, "items": ["a", "b"], "blob": b"\x00\x01"}


def codec(key: bytes = KEY_A, **kw) -> LocalKeyCodec:
    return LocalKeyCodec(key, **kw)


def pipeline(**kw) -> durable_ext.Pipeline:
    return durable_ext.serdes("msgpack+localkey", options={"localkey": {"key": KEY_A, **kw}})


def body_of(payload: str) -> bytes:
    wire, version, body = read_frame(unarmor(payload, "test"), "test")
    assert (wire, version) == (b"K", 1)
    return body


def test_round_trip_through_the_pipeline_and_the_header_names_the_key():
    s = pipeline()
    text = s.serialize(VALUE, CTX)
    assert isinstance(text, str) and is_armored(text)
    text.encode("latin-1")  # one character per byte, in either armor
    assert s.deserialize(text, CTX) == VALUE
    key_id = LocalKeyProvider(KEY_A).key_id
    assert key_id.encode() in body_of(text)
    assert b"order" not in unarmor(text, "test")  # nothing of the value in clear


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=5000), op=st.text(max_size=40), arn=st.text(max_size=80))
def test_any_bytes_round_trip_under_any_context(data, op, arn):
    c = CODEC
    ctx = SerDesContext(op, arn)
    assert c.decode(c.encode(data, ctx), 1, ctx) == data


CODEC = codec()


def test_ciphertext_bound_to_operation_and_execution():
    s = pipeline()
    text = s.serialize(VALUE, CTX)
    for other in (SerDesContext("op-2", CTX.durable_execution_arn),
                  SerDesContext(CTX.operation_id, CTX.durable_execution_arn + "x"),
                  SerDesContext("", ""),
                  # length-prefixed binding: moving a character between the fields fails
                  SerDesContext("op-", "1" + CTX.durable_execution_arn)):
        with pytest.raises(IntegrityError, match="copied from another operation or execution"):
            s.deserialize(text, other)


def test_unbound_payloads_move_between_operations_and_the_flag_cannot_be_flipped():
    s = pipeline(bind=False)
    text = s.serialize(VALUE, CTX)
    assert s.deserialize(text, SerDesContext("elsewhere", "arn:other")) == VALUE
    # Setting the "bound" flag on an unbound payload (or clearing it on a bound one)
    # changes the authenticated header: it does not decrypt.
    raw = bytearray(unarmor(text, "test"))
    raw[5] ^= 1  # frame header is 4 bytes, then suite, then flags
    with pytest.raises(IntegrityError):
        s.deserialize(base64.b64encode(bytes(raw)).decode(), CTX)


def test_every_flipped_bit_and_every_truncation_is_refused():
    c = codec()
    sealed = c.encode(b"the real value" * 3, CTX)
    for i in range(len(sealed)):
        for bit in (0x01, 0x80):
            bad = bytearray(sealed)
            bad[i] ^= bit
            with pytest.raises(SerializationError):
                codec().decode(bytes(bad), 1, CTX)
    for n in range(len(sealed)):
        with pytest.raises(SerializationError):
            codec().decode(sealed[:n], 1, CTX)


def test_swapped_ciphertexts_between_operations_fail():
    c = codec()
    ctx2 = SerDesContext("op-2", CTX.durable_execution_arn)
    one, two = c.encode(b"first", CTX), c.encode(b"second", ctx2)
    assert c.decode(one, 1, CTX) == b"first"
    with pytest.raises(IntegrityError):
        c.decode(two, 1, CTX)
    with pytest.raises(IntegrityError):
        c.decode(one, 1, ctx2)


def test_wrong_key_is_refused_and_names_the_key_not_the_secret():
    sealed = codec(KEY_A).encode(b"x", CTX)
    with pytest.raises(SerializationError) as err:
        codec(KEY_B).decode(sealed, 1, CTX)
    kid = LocalKeyProvider(KEY_A).key_id
    assert kid in str(err.value) and "not configured" in str(err.value)
    for secret in (KEY_A, KEY_B):
        assert secret.hex() not in str(err.value)
        assert base64.b64encode(secret).decode() not in str(err.value)


def test_same_key_id_with_other_material_does_not_decrypt():
    sealed = codec(KEY_A, key_id="prod").encode(b"x", CTX)
    with pytest.raises(IntegrityError, match="does not verify under local key 'prod'"):
        codec(KEY_B, key_id="prod").decode(sealed, 1, CTX)


def test_rotation_old_keys_still_decrypt():
    old = codec(KEY_A, key_id="2025").encode(b"old", CTX)
    old_key = f"2025:{base64.b64encode(KEY_A).decode()}"
    rotated = LocalKeyCodec(KEY_B, key_id="2026", verify_keys=[old_key])
    assert rotated.decode(old, 1, CTX) == b"old"
    new = rotated.encode(b"new", CTX)
    assert b"2026" in new and rotated.decode(new, 1, CTX) == b"new"
    with pytest.raises(SerializationError, match="2026"):
        codec(KEY_A, key_id="2025").decode(new, 1, CTX)


def test_keys_from_environment_and_file(monkeypatch, tmp_path):
    text = f"k1:{base64.b64encode(KEY_A).decode()},k2:{base64.b64encode(KEY_B).decode()}"
    monkeypatch.setenv("DURABLE_EXT_LOCAL_KEY", text)
    s = durable_ext.serdes("msgpack+localkey", options={"localkey": {}})
    assert s.codecs[0].provider.key_id == "k1"
    sealed = s.serialize(VALUE, CTX)
    s2 = durable_ext.serdes("msgpack+localkey:k2", options={"localkey": {}})
    assert s2.codecs[0].provider.key_id == "k2"
    assert s2.deserialize(sealed, CTX) == VALUE  # k1 still decrypts
    path = tmp_path / "keys"
    path.write_text(text)
    monkeypatch.delenv("DURABLE_EXT_LOCAL_KEY")
    from_file = LocalKeyCodec(key_file=path)
    assert from_file.decode(s.codecs[0].encode(b"z", CTX), 1, CTX) == b"z"
    with pytest.raises(ConfigError, match="DURABLE_EXT_LOCAL_KEY"):
        LocalKeyCodec()
    with pytest.raises(ConfigError, match="32 bytes"):
        LocalKeyCodec(b"short" * 7)
    with pytest.raises(ConfigError, match="cannot be read"):
        LocalKeyCodec(key_file=tmp_path / "missing")
    with pytest.raises(ConfigError, match="not among the loaded keys"):
        LocalKeyCodec(text, key_id="k3")


def test_data_key_cache_bounds_by_messages_bytes_and_age():
    now = [0.0]
    cache = DataKeyCache(max_age=10, max_messages=3, max_bytes=100, clock=lambda: now[0])
    c = codec(cache=cache)

    def edk(sealed: bytes) -> bytes:
        r = Reader(sealed, "t")
        r.take(2)
        r.key_id()
        return r.take(r.u16())

    first = [edk(c.encode(b"x", CTX)) for _ in range(3)]
    assert len(set(first)) == 1 and cache.calls["generate"] == 1
    fourth = edk(c.encode(b"x", CTX))  # 4th message: a new data key
    assert fourth not in first and cache.calls["generate"] == 2
    edk(c.encode(b"y" * 95, CTX))  # 1 + 95 bytes: still within 100
    assert cache.calls["generate"] == 2
    edk(c.encode(b"y" * 10, CTX))  # would exceed 100 bytes
    assert cache.calls["generate"] == 3
    now[0] = 11.0  # older than max_age
    edk(c.encode(b"z", CTX))
    assert cache.calls["generate"] == 4
    assert cache.calls["decrypt"] == 0  # keys we generated are known for decryption


def test_thousand_payloads_one_data_key_and_one_unwrap_on_replay():
    writer = codec()
    sealed = [writer.encode(f"value {i}".encode(), SerDesContext(f"op-{i}", "arn:e"))
              for i in range(1000)]
    assert writer.cache.calls == {"generate": 1, "decrypt": 0}
    reader = codec()  # a new process replaying the execution
    for i, s in enumerate(sealed):
        assert reader.decode(s, 1, SerDesContext(f"op-{i}", "arn:e")) == f"value {i}".encode()
    assert reader.cache.calls == {"generate": 0, "decrypt": 1}


def test_encryption_context_is_carried_so_changing_the_setting_keeps_old_payloads():
    c = codec(encryption_context={"tenant": "acme", "app": "orders"})
    sealed = c.encode(b"x", CTX)
    assert b"tenant" in sealed and b"acme" in sealed
    assert codec().decode(sealed, 1, CTX) == b"x"  # default-context codec reads it
    assert b"durable-ext" not in codec().encode(b"x", CTX)  # default context is implied
    edited = sealed.replace(b"acme", b"acmf")
    with pytest.raises(IntegrityError):
        codec().decode(edited, 1, CTX)
    with pytest.raises(ConfigError, match="encryption_context"):
        codec(encryption_context={"k": 1})


def test_unknown_suite_flags_and_newer_versions_are_refused():
    sealed = bytearray(codec().encode(b"x", CTX))
    for pos, value in ((0, 9), (1, 0x80)):
        bad = bytearray(sealed)
        bad[pos] = value
        with pytest.raises(IntegrityError, match="unknown suite or flags"):
            codec().decode(bytes(bad), 1, CTX)
    with pytest.raises(SerializationError, match="upgrade durable-ext"):
        codec().decode(bytes(sealed), 2, CTX)


@pytest.mark.parametrize("key_id", [
    "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    "arn:aws-us-gov:kms:us-gov-west-1:000000000001:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    "arn:aws:kms:eu-west-1:123456789012:key/mrk-1234abcd12ab34cd56ef1234567890ab",
    "arn:aws:kms:us-east-1:123456789012:key/1234ABCD-12AB-34CD-56EF-1234567890AB",
    "alias/orders",
    "local-dev",
])
def test_key_ids_round_trip_and_key_arns_pack_small(key_id):
    packed = encode_key_id(key_id)
    assert Reader(packed, "t").key_id() == key_id
    if key_id.startswith("arn:aws:kms:us-east-1") and "mrk" not in key_id and key_id.islower():
        assert len(packed) < len(key_id) / 2


def test_key_material_never_in_reprs_messages_or_logs(caplog):
    caplog.set_level(logging.DEBUG)
    c = codec()
    dk = c.provider.generate(DEFAULT_CONTEXT, "t")
    texts = [repr(c), str(c), repr(c.provider), repr(c.cache), repr(dk),
             repr(DataKey("k", b"s" * 32, b"e")), repr(pipeline())]
    sealed = c.encode(b"x", CTX)
    for attempt in (lambda: c.decode(sealed, 1, SerDesContext("other", "")),
                    lambda: codec(KEY_B).decode(sealed, 1, CTX),
                    lambda: c.decode(sealed[:20], 1, CTX)):
        with pytest.raises(SerializationError) as err:
            attempt()
        texts.append(str(err.value))
    texts += [r.getMessage() for r in caplog.records]
    secrets = [KEY_A, dk.plaintext]
    for text in texts:
        for s in secrets:
            assert s.hex() not in text and base64.b64encode(s).decode() not in text
            assert repr(s)[2:-1] not in text
    assert "plaintext" not in repr(dk)


def test_kms_codec_spec_and_options():
    s = durable_ext.serdes(f"msgpack+zstd+kms:{KEY_ARN}")
    kms = s.codecs[-1]
    assert isinstance(kms, KmsCodec)
    assert kms.provider.key_id.endswith("1234567890ab")
    opts = {"kms": {"key_id": "alias/orders", "max_messages": 5}}
    s = durable_ext.serdes("msgpack+kms", options=opts)
    assert s.codecs[0].provider.key_id == "alias/orders" and s.codecs[0].cache.max_messages == 5
    assert s.codecs[0].provider.client._client is None  # no client built, no I/O yet
    with pytest.raises(ConfigError, match="both in the spec"):
        KmsCodec.from_spec("alias/a", key_id="alias/b")
    with pytest.raises(ConfigError, match="not aliases"):
        KmsKeyProvider("alias/a", allowed_key_ids=["alias/a"])
    with pytest.raises(ConfigError, match="not both"):
        KmsCodec("alias/a", cache=DataKeyCache(), max_age=3)
    with pytest.raises(ConfigError, match="max_messages"):
        KmsCodec("alias/a", max_messages=0)
    with pytest.raises(ConfigError, match="unexpected keyword"):
        KmsCodec("alias/a", colour="red")


def test_kms_without_a_key_decrypts_only_and_says_how_to_configure(monkeypatch):
    monkeypatch.delenv("DURABLE_EXT_KMS_KEY_ID", raising=False)
    c = KmsCodec()
    with pytest.raises(SerializationError, match="kms:<key id"):
        c.encode(b"x", CTX)
    monkeypatch.setenv("DURABLE_EXT_KMS_KEY_ID", "alias/from-env")
    assert KmsCodec().provider.key_id == "alias/from-env"


def test_allow_list_is_checked_before_any_kms_call():
    arn = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    p = KmsKeyProvider("alias/x", allowed_key_ids=["1234abcd-12ab-34cd-56ef-0000000000ff"])
    assert not p.allows(arn)
    with pytest.raises(DisallowedContentError, match="not in allowed_key_ids"):
        p.decrypt(arn, b"edk", DEFAULT_CONTEXT, "operation 'x'")
    assert p.client._client is None  # refused without building a client
    assert KmsKeyProvider(allowed_key_ids=["1234abcd-12ab-34cd-56ef-1234567890ab"]).allows(arn)
    assert KmsKeyProvider(allowed_key_ids=[arn]).allows(arn)


def test_a_pipeline_reads_localkey_payloads_only_when_configured_for_them():
    sealed = pipeline().serialize(VALUE, CTX)
    with pytest.raises(DisallowedContentError, match="localkey"):
        durable_ext.serdes("msgpack").deserialize(sealed, CTX)
    reader = durable_ext.serdes("msgpack", options={"localkey": {"key": KEY_A}})
    assert reader.deserialize(sealed, CTX) == VALUE


def test_frame_header_is_authenticated():
    # The same body under another stage id (or version) does not decrypt: the frame
    # header is part of the associated data, so no stage can be swapped for another.
    class Renamed(LocalKeyCodec):
        wire = b"X"

    body = codec().encode(b"x", CTX)
    assert codec().decode(body, 1, CTX) == b"x"
    with pytest.raises(IntegrityError):
        Renamed(KEY_A).decode(body, 1, CTX)


def test_missing_cryptography_gives_the_install_hint():
    code = textwrap.dedent("""
        import sys
        sys.modules["cryptography"] = None
        try:
            import durable_ext.serializers.kms
        except ImportError as exc:
            print(type(exc).__name__, exc)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert "MissingDependencyError" in out and "pip install 'durable-ext[kms]'" in out


def test_nonces_are_fresh_per_payload():
    c = codec()
    sealed = {c.encode(b"same", CTX) for _ in range(200)}
    assert len(sealed) == 200
    nonces = {s[-16 - 4 - 12 : -16 - 4] for s in sealed}  # body ends nonce | 4-byte ct | tag
    assert len(nonces) == 200


def test_large_payloads_sealed_again_for_the_same_operation_reuse_the_ciphertext():
    c = codec(reuse_min_bytes=1000)
    big, small = b"b" * 1000, b"s" * 999
    first = c.encode(big, CTX)
    assert c.encode(big, CTX) == first  # same operation, same content: same bytes
    assert c.cache.calls["generate"] == 1
    assert c.encode(big, SerDesContext("op-2", ARN)) != first  # bound elsewhere: sealed anew
    assert c.encode(big + b"!", CTX) != first
    assert c.encode(small, CTX) != c.encode(small, CTX)  # under the size: fresh nonce
    assert c.decode(first, 1, CTX) == big
    off = codec(reuse_min_bytes=None)
    assert off.encode(big, CTX) != off.encode(big, CTX)
    with pytest.raises(ConfigError, match="reuse_min_bytes"):
        codec(reuse_min_bytes=0)


def test_a_shared_cache_does_not_open_payloads_under_keys_a_stage_does_not_accept():
    shared = DataKeyCache()
    sealed = codec(KEY_A, cache=shared).encode(b"x", CTX)  # A's data key is now cached
    with pytest.raises(DisallowedContentError, match="not configured or not allowed"):
        codec(KEY_B, cache=shared).decode(sealed, 1, CTX)


def test_a_shared_cache_keeps_same_named_local_keys_apart():
    shared = DataKeyCache()
    one = codec(KEY_A, key_id="dev", cache=shared)
    two = codec(KEY_B, key_id="dev", cache=shared)
    sealed = two.encode(b"x", CTX)
    assert one.encode(b"y", CTX) and shared.calls["generate"] == 2
    assert codec(KEY_B, key_id="dev").decode(sealed, 1, CTX) == b"x"  # sealed under B's key


def test_a_shared_cache_never_opens_a_payload_with_another_secret_of_the_same_key_id():
    shared = DataKeyCache()
    sealed = codec(KEY_A, key_id="dev", cache=shared).encode(b"x", CTX)  # A's data key cached
    impostor = codec(KEY_B, key_id="dev", cache=shared)  # same id, another secret
    with pytest.raises(IntegrityError, match="does not verify under local key 'dev'"):
        impostor.decode(sealed, 1, CTX)
    assert shared.calls["decrypt"] == 0  # refused by its own unwrap, not served from the cache


def test_a_shared_cache_is_shared_by_providers_of_the_very_same_local_key():
    shared = DataKeyCache()
    sealed = codec(KEY_A, key_id="dev", cache=shared).encode(b"x", CTX)
    twin = codec(KEY_A, key_id="dev", cache=shared)  # same id and secret: provably the same key
    assert twin.decode(sealed, 1, CTX) == b"x"
    assert twin.encode(b"y", CTX) and shared.calls == {"generate": 1, "decrypt": 0}


def test_cache_ids_fingerprint_local_secrets_without_holding_them():
    provider = LocalKeyProvider(KEY_A, key_id="dev")
    ident = repr((provider.cache_id, provider.decrypt_cache_id("dev")))
    for text in (KEY_A.hex(), base64.b64encode(KEY_A).decode(), repr(KEY_A)):
        assert text not in ident
    assert provider.cache_id != LocalKeyProvider(KEY_B, key_id="dev").cache_id
    assert provider.cache_id == LocalKeyProvider(KEY_A, key_id="dev").cache_id


def test_one_key_id_with_two_secrets_is_refused():
    text = f"k1:{base64.b64encode(KEY_A).decode()},k1:{base64.b64encode(KEY_B).decode()}"
    with pytest.raises(ConfigError, match="'k1' is given twice with different secrets"):
        LocalKeyCodec(text)
    assert LocalKeyCodec(KEY_A, key_id="k1", verify_keys=[KEY_A]).provider.key_ids


def kms_client(secret: str = "s") -> object:
    import boto3  # builds a client object only; nothing is sent

    return boto3.client("kms", region_name="us-east-1", aws_access_key_id="AKIDTEST",
                        aws_secret_access_key=secret)


def test_kms_providers_share_cached_data_keys_only_with_one_client_and_grants():
    client, other = kms_client(), kms_client()  # equal settings, still two credential sets
    one = KmsKeyProvider("alias/a", client=client)
    assert one.cache_id == KmsKeyProvider("alias/a", client=client).cache_id
    assert one.decrypt_cache_id(KEY_ARN) == KmsKeyProvider(client=client).decrypt_cache_id(KEY_ARN)
    for unlike in (KmsKeyProvider("alias/a", client=other),
                   KmsKeyProvider("alias/b", client=client),
                   KmsKeyProvider("alias/a", client=client, grant_tokens=["g"]),
                   KmsKeyProvider("alias/a"), KmsKeyProvider("alias/a", client=object())):
        assert unlike.cache_id != one.cache_id
        if unlike.key_id == one.key_id:  # decrypting, the payload names the key
            assert unlike.decrypt_cache_id(KEY_ARN) != one.decrypt_cache_id(KEY_ARN)
    lazy = KmsKeyProvider("alias/a")  # credentials from the environment: provably only itself
    assert lazy.cache_id == lazy.cache_id and lazy.cache_id != KmsKeyProvider("alias/a").cache_id


def test_building_a_localkey_codec_says_once_that_it_is_a_development_key(caplog):
    from durable_ext.serializers import kms

    kms._note_development_key.cache_clear()
    with caplog.at_level(logging.WARNING, logger="durable_ext.serializers.kms"):
        codec()
        codec(KEY_B)
    notes = [r for r in caplog.records if "development" in r.getMessage()]
    assert len(notes) == 1 and "kms:" in notes[0].getMessage()
