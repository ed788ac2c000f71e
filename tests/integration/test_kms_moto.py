"""The kms codec against a real moto KMS on 127.0.0.1, inside real durable handlers."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from aws_durable_execution_sdk_python import durable_execution
from aws_durable_execution_sdk_python.config import Duration, StepConfig
from aws_durable_execution_sdk_python.serdes import SerDesContext
from aws_durable_execution_sdk_python_testing.runner import DurableFunctionTestRunner
from servers import RequestCounter

import durable_ext
from durable_ext.errors import DisallowedContentError, IntegrityError, SerializationError
from durable_ext.serializers._envelope_wire import Reader, encode_key_id
from durable_ext.serializers.frames import armor, frame, read_frame, unarmor
from durable_ext.serializers.kms import DataKeyCache, KmsCodec

pytestmark = pytest.mark.integration

CTX = SerDesContext("op-1", "arn:exec-1")


@pytest.fixture(scope="module")
def kms(moto_server) -> Any:
    return moto_server.client("kms")


@pytest.fixture(scope="module")
def keys(moto_server, kms) -> dict[str, str]:
    """Two customer keys; ``alias`` points at ``a``."""
    a = kms.create_key()["KeyMetadata"]["Arn"]
    b = kms.create_key()["KeyMetadata"]["Arn"]
    alias = f"alias/{moto_server.unique('orders')}"
    kms.create_alias(AliasName=alias, TargetKeyId=a)
    return {"a": a, "b": b, "alias": alias}


def pipeline(moto_server, key: str | None, **kms_options: Any) -> tuple[Any, RequestCounter]:
    client = moto_server.client("kms")
    options = {"client": client, **kms_options}
    spec = f"msgpack+zstd+kms:{key}" if key else "msgpack+zstd+kms"
    return durable_ext.serdes(spec, options={"kms": options}), RequestCounter(client)


def split(text: str) -> tuple[dict[str, Any], bytes]:
    """The envelope header fields of a kms payload, and its body."""
    wire, version, body = read_frame(unarmor(text, "test"), "t")
    assert (wire, version) == (b"k", 1)
    r = Reader(body, "t")
    suite, flags = r.u8(), r.u8()
    key_id = r.key_id()
    context = r.context() if flags & 2 else None
    edk = r.take(r.u16())
    return {"suite": suite, "flags": flags, "key_id": key_id, "context": context, "edk": edk,
            "end": r.pos}, body


def rebuild(body: bytes, end: int, *, key_id: str, edk: bytes, flags: int = 1) -> str:
    header = bytes((1, flags)) + encode_key_id(key_id) + len(edk).to_bytes(2, "big") + edk
    return armor(frame(b"k", 1, header + body[end:]))


def test_alias_round_trip_records_the_key_arn_and_a_real_kms_data_key(moto_server, keys):
    s, count = pipeline(moto_server, keys["alias"])
    value = {"order": 7, "lines": list(range(50))}
    text = s.serialize(value, CTX)
    fields, _ = split(text)
    assert fields["key_id"] == keys["a"]  # the alias resolved; the ARN is what is kept
    assert fields["flags"] == 1 and fields["context"] is None
    assert s.deserialize(text, CTX) == value
    assert count.counts == {"GenerateDataKey": 1}
    reader, rcount = pipeline(moto_server, None)  # decrypt-only, as after a redeploy
    assert reader.deserialize(text, CTX) == value
    assert rcount.counts == {"Decrypt": 1}


def test_thousand_checkpoints_make_one_generate_and_one_decrypt(moto_server, keys):
    invocations: list[RequestCounter] = []

    def fresh() -> Any:
        s, c = pipeline(moto_server, keys["alias"])
        invocations.append(c)
        return s

    @durable_execution
    def handler(event: dict, context: Any) -> int:
        config = StepConfig(serdes=fresh())  # a new process per invocation: cold caches
        total = 0
        for i in range(1000):
            total += context.step(lambda _, i=i: {"i": i, "pad": "p" * 64}, name=f"s{i}",
                                  config=config)["i"]
        context.wait(Duration.from_seconds(1), name="nap")
        return total

    with DurableFunctionTestRunner(handler=handler, poll_interval=0.05) as r:
        result = r.run(input="{}", execution_timeout=120)
    assert result.status.value == "SUCCEEDED", result.error
    assert json.loads(result.result) == sum(range(1000))
    assert len(invocations) == 2
    first, replay = invocations
    assert first.counts == {"GenerateDataKey": 1}  # 1,000 payloads, one data key
    assert replay.counts == {"Decrypt": 1}  # 1,000 replayed payloads, one unwrap


def test_rotation_old_payloads_decrypt_and_the_allow_list_is_enforced(moto_server, keys):
    old_writer, _ = pipeline(moto_server, keys["a"])
    old = old_writer.serialize("written under a", CTX)
    rotated, _ = pipeline(moto_server, keys["b"])
    assert rotated.deserialize(old, CTX) == "written under a"
    assert split(rotated.serialize("new", CTX))[0]["key_id"] == keys["b"]
    strict, strict_count = pipeline(moto_server, keys["b"], allowed_key_ids=[keys["b"]])
    with pytest.raises(DisallowedContentError, match=keys["a"]):
        strict.deserialize(old, CTX)
    assert strict_count.total() == 0  # refused before asking KMS
    bare_id = keys["a"].rsplit("/", 1)[-1]
    lenient, _ = pipeline(moto_server, keys["b"], allowed_key_ids=[keys["b"], bare_id])
    assert lenient.deserialize(old, CTX) == "written under a"


def test_wrong_key_and_tampered_data_key_are_refused(moto_server, keys):
    s, _ = pipeline(moto_server, keys["a"])
    text = s.serialize({"secret": 1}, CTX)
    fields, body = split(text)
    # The header claims key b: KMS refuses to decrypt a's data key under b.
    wrong_key = rebuild(body, fields["end"], key_id=keys["b"], edk=fields["edk"])
    fresh, _ = pipeline(moto_server, None)
    with pytest.raises(SerializationError) as err:
        fresh.deserialize(wrong_key, CTX)
    assert keys["b"] in str(err.value) and "op-1" in str(err.value)
    edk = bytearray(fields["edk"])
    edk[-1] ^= 1
    bad_edk = rebuild(body, fields["end"], key_id=keys["a"], edk=bytes(edk))
    with pytest.raises(IntegrityError, match="InvalidCiphertextException"):
        pipeline(moto_server, None)[0].deserialize(bad_edk, CTX)
    # A data key from another payload (valid on its own) cannot open this ciphertext.
    other = pipeline(moto_server, keys["a"])[0].serialize({"secret": 2}, CTX)
    other_fields, _ = split(other)
    assert other_fields["edk"] != fields["edk"]
    swapped = rebuild(body, fields["end"], key_id=keys["a"], edk=other_fields["edk"])
    with pytest.raises(IntegrityError, match="does not decrypt"):
        pipeline(moto_server, None)[0].deserialize(swapped, CTX)


def test_encryption_context_is_sent_to_kms_and_carried_in_the_payload(moto_server, keys, kms):
    context = {"app": "orders", "stage": "prod"}
    s, _ = pipeline(moto_server, keys["a"], encryption_context=context)
    text = s.serialize([1, 2, 3], CTX)
    fields, _ = split(text)
    assert fields["context"] == context
    # KMS itself binds the data key to the context: without it, KMS refuses.
    with pytest.raises(kms.exceptions.InvalidCiphertextException):
        kms.decrypt(CiphertextBlob=fields["edk"], KeyId=keys["a"])
    assert kms.decrypt(CiphertextBlob=fields["edk"], KeyId=keys["a"],
                       EncryptionContext=context)["KeyId"] == keys["a"]
    reader, _ = pipeline(moto_server, None)  # configured with the default context
    assert reader.deserialize(text, CTX) == [1, 2, 3]
    edited = unarmor(text, "test").replace(b"prod", b"dev!")
    with pytest.raises(IntegrityError):
        pipeline(moto_server, None)[0].deserialize(base64.b64encode(edited).decode(), CTX)


def test_payloads_swapped_between_real_executions_fail(moto_server, keys):
    serdes = pipeline(moto_server, keys["alias"])[0]
    runs: list[dict[str, Any]] = []

    @durable_execution
    def handler(event: dict, context: Any) -> str:
        return str(context.step(lambda _: {"who": event["who"]}, name="whoami",
                                config=StepConfig(serdes=serdes)))

    with DurableFunctionTestRunner(handler=handler, poll_interval=0.05) as r:
        for who in ("alice", "bob"):
            arn = r.run_async(input=json.dumps({"who": who}), execution_timeout=60)
            result = r.wait_for_result(arn, timeout=60)
            assert result.status.value == "SUCCEEDED", result.error
            step = result.get_step("whoami")
            runs.append({"arn": arn, "op": step.operation_id, "payload": step.result})
    alice, bob = runs
    assert alice["op"] == bob["op"] and alice["arn"] != bob["arn"]  # same handler, same ids
    reader = pipeline(moto_server, None)[0]
    assert reader.deserialize(alice["payload"], SerDesContext(alice["op"], alice["arn"])) == {
        "who": "alice"}
    with pytest.raises(IntegrityError, match="copied from another operation or execution"):
        reader.deserialize(alice["payload"], SerDesContext(bob["op"], bob["arn"]))


def test_kms_errors_name_the_operation_and_key(moto_server):
    missing = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000"
    s, _ = pipeline(moto_server, missing)
    with pytest.raises(SerializationError, match="NotFoundException") as err:
        s.serialize(1, CTX)
    assert missing in str(err.value) and "op-1" in str(err.value)
    codec = s.codecs[-1]
    assert isinstance(codec, KmsCodec)
    assert codec.cache.calls == {"generate": 0, "decrypt": 0}


def other_account_client(moto_server) -> Any:
    """A KMS client with another account's credentials: the keys above are not its own."""
    creds = moto_server.client("sts").assume_role(
        RoleArn="arn:aws:iam::210987654321:role/elsewhere", RoleSessionName="outsider",
    )["Credentials"]
    return moto_server.client("kms", aws_access_key_id=creds["AccessKeyId"],
                              aws_secret_access_key=creds["SecretAccessKey"],
                              aws_session_token=creds["SessionToken"])


def test_a_shared_cache_serves_no_data_key_to_a_provider_kms_refuses(moto_server, keys):
    shared = DataKeyCache()
    writer = KmsCodec(keys["a"], client=moto_server.client("kms"), cache=shared)
    sealed = writer.encode(b"secret", CTX)  # its data key is in the shared cache now
    outsider_client = other_account_client(moto_server)
    asked = RequestCounter(outsider_client)
    outsider = KmsCodec(client=outsider_client, cache=shared)
    with pytest.raises(SerializationError, match="kms Decrypt failed") as err:
        outsider.decode(sealed, 1, CTX)
    assert keys["a"] in str(err.value) and "op-1" in str(err.value)
    assert asked.counts == {"Decrypt": 1}  # KMS was asked, and refused
    # Built on the writer's own client (same credentials): the cached data key is shared.
    colleague = KmsCodec(client=writer.provider.client.get(), cache=shared)
    assert colleague.decode(sealed, 1, CTX) == b"secret"
    assert shared.calls == {"generate": 1, "decrypt": 0}
    # A client of its own, even with equal settings, proves nothing: it asks KMS.
    own = moto_server.client("kms")
    own_asked = RequestCounter(own)
    assert KmsCodec(client=own, cache=shared).decode(sealed, 1, CTX) == b"secret"
    assert own_asked.counts == {"Decrypt": 1}


def test_encrypting_providers_share_the_current_data_key_only_on_one_client(moto_server, keys):
    shared = DataKeyCache()
    client = moto_server.client("kms")
    KmsCodec(keys["a"], client=client, cache=shared).encode(b"x", CTX)
    KmsCodec(keys["a"], client=client, cache=shared).encode(b"y", CTX)
    assert shared.calls["generate"] == 1
    outsider_client = other_account_client(moto_server)
    with pytest.raises(SerializationError, match="kms GenerateDataKey failed"):
        KmsCodec(keys["a"], client=outsider_client, cache=shared).encode(b"z", CTX)
    assert shared.calls["generate"] == 1
