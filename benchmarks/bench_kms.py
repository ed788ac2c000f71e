"""KMS envelope encryption: KMS requests per 1,000 checkpoints, and the codec against the
AWS Encryption SDK on the same payloads, in one run.

Run (together with the S3 counts)::

    .venv/bin/pytest benchmarks/bench_kms.py benchmarks/bench_s3.py --benchmark-json=kms-s3.json
    .venv/bin/python benchmarks/bench_kms.py kms-s3.json   # tables of benchmarks/README.md

Cases:

* ``requests``: a real durable handler checkpoints 1,000 step results through
  ``msgpack+kms`` against a moto KMS on 127.0.0.1, then replays them after a wait in a
  fresh pipeline (cold caches, as in a new Lambda process). ``cached`` is the default
  codec; ``uncached`` uses a fresh data key per payload (``max_messages=1``), what an
  envelope without a data-key cache costs.
* ``codec``: sealing and opening the same 1 KB and 100 KB payloads with

  - ``localkey``: this package's codec with a local key (no network);
  - ``kms``: this package's codec with a moto KMS key, data key cached (no network
    after the first payload, so the KMS round trip is not what is timed);
  - ``floor``: bare AES-256-GCM (random nonce, no header), the cipher alone;
  - ``esdk``: ``aws-encryption-sdk`` with its default suite
    (AES-256-GCM, HKDF-SHA512, key commitment, ECDSA P-384 signatures), a caching
    materials manager and a raw AES-256 master key (no network).

  Byte overhead is the sealed size minus the payload size (our 4-byte frame header
  included).
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from aws_durable_execution_sdk_python import durable_execution
from aws_durable_execution_sdk_python.config import Duration, StepConfig
from aws_durable_execution_sdk_python.serdes import SerDesContext
from aws_durable_execution_sdk_python_testing.runner import DurableFunctionTestRunner
from servers import RequestCounter, moto_server  # noqa: F401 - the fixture

import durable_ext
from durable_ext.serializers.frames import frame
from durable_ext.serializers.kms import KmsCodec, LocalKeyCodec

CTX = SerDesContext(
    "0" * 64, "arn:aws:lambda:us-east-1:123456789012:function:bench:$LATEST/durable-execution/b/i"
)
SIZES = {"1KB": 1024, "100KB": 100 * 1024}
LOCAL_KEY = bytes(range(32))
CHECKPOINTS = 1000


@pytest.fixture(scope="module")
def key_arn(moto_server) -> str:  # noqa: F811
    return str(moto_server.client("kms").create_key()["KeyMetadata"]["Arn"])


# -- KMS requests per 1,000 checkpoints --------------------------------------------------


@pytest.mark.parametrize("cache", ["cached", "uncached"])
def test_requests(benchmark, moto_server, key_arn, cache: str) -> None:  # noqa: F811
    counters: list[RequestCounter] = []
    extra = {"max_messages": 1} if cache == "uncached" else {}

    def fresh() -> Any:
        client = moto_server.client("kms")
        counters.append(RequestCounter(client))
        return durable_ext.serdes(f"msgpack+kms:{key_arn}",
                                  options={"kms": {"client": client, **extra}})

    @durable_execution
    def handler(event: dict, context: Any) -> int:
        config = StepConfig(serdes=fresh())
        total = 0
        for i in range(CHECKPOINTS):
            total += context.step(lambda _, i=i: {"i": i}, name=f"s{i}", config=config)["i"]
        context.wait(Duration.from_seconds(1), name="nap")
        return total

    def run() -> None:
        counters.clear()
        with DurableFunctionTestRunner(handler=handler, poll_interval=0.05) as r:
            result = r.run(input="{}", execution_timeout=300)
        assert result.status.value == "SUCCEEDED", result.error
        assert json.loads(result.result) == sum(range(CHECKPOINTS))

    benchmark.group = "kms-requests"
    benchmark.pedantic(run, rounds=1, iterations=1)
    first, replay = counters
    benchmark.extra_info.update(
        kind="requests", cache=cache, checkpoints=CHECKPOINTS,
        generate_first=first["GenerateDataKey"], decrypt_first=first["Decrypt"],
        generate_replay=replay["GenerateDataKey"], decrypt_replay=replay["Decrypt"],
    )


# -- the codec against the AWS Encryption SDK --------------------------------------------


def esdk() -> tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]:
    import aws_encryption_sdk
    from aws_encryption_sdk import (
        CachingCryptoMaterialsManager,
        CommitmentPolicy,
        LocalCryptoMaterialsCache,
    )
    from aws_encryption_sdk.identifiers import EncryptionKeyType, WrappingAlgorithm
    from aws_encryption_sdk.key_providers.raw import RawMasterKeyProvider, WrappingKey

    class StaticKey(RawMasterKeyProvider):  # type: ignore[misc]
        provider_id = "bench"

        def _get_raw_key(self, key_id: bytes) -> WrappingKey:
            return WrappingKey(
                wrapping_algorithm=WrappingAlgorithm.AES_256_GCM_IV12_TAG16_NO_PADDING,
                wrapping_key=LOCAL_KEY, wrapping_key_type=EncryptionKeyType.SYMMETRIC)

    provider = StaticKey()
    provider.add_master_key(b"bench-key")
    cmm = CachingCryptoMaterialsManager(
        master_key_provider=provider, cache=LocalCryptoMaterialsCache(capacity=100),
        max_age=300.0, max_messages_encrypted=100_000)
    client = aws_encryption_sdk.EncryptionSDKClient(
        commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)
    return (lambda d: client.encrypt(source=d, materials_manager=cmm)[0],
            lambda c: client.decrypt(source=c, materials_manager=cmm)[0])


def ours(codec: Any) -> tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]:
    # Timed as the pipeline runs it: encode, then the frame header it writes.
    prefix = frame(codec.wire, codec.version, b"")
    n = len(prefix)
    return (lambda d: prefix + codec.encode(d, CTX),
            lambda c: codec.decode(c[n:], codec.version, CTX))


def floor() -> tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]:
    # Bare AES-256-GCM with a random nonce: no header, no key lookup. Nothing sealing
    # with this cipher can be faster.
    import os

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    aead = AESGCM(LOCAL_KEY)

    def seal(d: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + aead.encrypt(nonce, d, None)

    return seal, lambda c: aead.decrypt(c[:12], c[12:], None)


IMPLS = ["localkey", "kms", "esdk", "floor"]


@pytest.mark.parametrize("op", ["encrypt", "decrypt"])
@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("impl", IMPLS)
def test_codec(benchmark, moto_server, key_arn, impl: str, size: str, op: str) -> None:  # noqa: F811
    if impl == "esdk":
        seal, open_ = esdk()
    elif impl == "floor":
        seal, open_ = floor()
    elif impl == "kms":
        seal, open_ = ours(KmsCodec(key_arn, client=moto_server.client("kms")))
    else:
        seal, open_ = ours(LocalKeyCodec(LOCAL_KEY))
    data = random.Random(size).randbytes(SIZES[size])
    sealed = seal(data)
    assert open_(sealed) == data and data not in sealed
    benchmark.group = f"{op} {size}"
    benchmark.extra_info.update(kind="codec", impl=impl, size=size, op=op,
                                overhead=len(sealed) - len(data))
    if op == "encrypt":
        benchmark(seal, data)
    else:
        benchmark(open_, sealed)


# -- report -------------------------------------------------------------------------------


def report(path: str) -> None:
    """Print the KMS and S3 tables of benchmarks/README.md from a pytest-benchmark JSON file."""
    with open(path) as fh:
        rows = [(b["extra_info"], b["stats"]) for b in json.load(fh)["benchmarks"]]
    reqs = [(i, s) for i, s in rows if i.get("kind") == "requests"]
    if reqs:
        print("| data keys | GenerateDataKey (first run) | Decrypt (first run) "
              "| GenerateDataKey (replay) | Decrypt (replay) | 1,000 checkpoints + replay |")
        print("|---|---:|---:|---:|---:|---:|")
        for i, s in reqs:
            print(f"| {i['cache']} | {i['generate_first']} | {i['decrypt_first']} | "
                  f"{i['generate_replay']} | {i['decrypt_replay']} | {s['median']:.2f} s |")
        print()
    codec = {(i["size"], i["op"], i["impl"]): (s["median"], i["overhead"])
             for i, s in rows if i.get("kind") == "codec"}
    if codec:
        print("| payload | op | codec | median | speed-up vs esdk | overhead (bytes) "
              "| overhead vs esdk |")
        print("|---|---|---|---:|---:|---:|---:|")
        for size in SIZES:
            for op in ("encrypt", "decrypt"):
                base = codec.get((size, op, "esdk"))
                for impl in IMPLS:
                    got = codec.get((size, op, impl))
                    if got is None or base is None:
                        continue
                    t, over = got
                    print(f"| {size} | {op} | {impl} | {t * 1e6:,.1f} us | {base[0] / t:,.0f}x "
                          f"| {over} | {over / base[1]:.2f}x |")
        print()
    s3 = [i for i, _ in rows if i.get("kind") == "s3"]
    if s3:
        print("| pipeline, payload | checkpoint (chars) | write | first-run read "
              "| replay, new process | replay again | retried write, same process "
              "| retried write, new process |")
        print("|---|---:|---|---|---|---|---|---|")
        for i in s3:
            print(f"| {i['case']} | {i['checkpoint']:,} | {i['write']} | {i['first_read']} | "
                  f"{i['replay']} | {i['replay_again']} | {i['retry_same']} | "
                  f"{i['retry_new']} |")


if __name__ == "__main__":
    report(sys.argv[1])
