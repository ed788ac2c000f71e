"""S3 requests per write and per replay, under and over the offload threshold.

Run with ``bench_kms.py`` (see its docstring); ``python benchmarks/bench_kms.py
kms-s3.json`` prints the table. Against a moto server on 127.0.0.1, through
``msgpack+kms+s3``, each case counts the HTTP requests of:

* ``write``: the first serialize (what the step's first run does);
* ``first-run read``: the deserialize right after it (the SDK round-trips every result);
* ``replay, new process``: deserialize in a fresh pipeline (cold cache);
* ``replay again``: a second deserialize in that pipeline;
* ``retried write, same process``: serialize of the same result again in the writing
  pipeline (an invocation retried in a warm environment, or a FLAT branch on replay);
* ``retried write, new process``: the same in another fresh pipeline, and the number
  of objects the execution has after all of it.

The timed part is the whole cycle.
"""

from __future__ import annotations

import random
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from aws_durable_execution_sdk_python.serdes import SerDesContext
from servers import RequestCounter, moto_server  # noqa: F401 - the fixture

import durable_ext
from durable_ext.serializers.s3 import execution_prefix, read_pointer

KB = 1024
#: (pipeline, payload size)
CASES = {
    "msgpack+kms+s3, 100KB (under)": ("msgpack+kms", 100 * KB),
    "msgpack+kms+s3, 300KB (over)": ("msgpack+kms", 300 * KB),
    "msgpack+kms+s3, 5MB (over)": ("msgpack+kms", 5 * KB * KB),
    "msgpack+s3, 300KB (over)": ("msgpack", 300 * KB),
}


@pytest.fixture(scope="module")
def setup(moto_server) -> dict[str, str]:  # noqa: F811
    bucket = moto_server.unique("bench")
    moto_server.client("s3").create_bucket(Bucket=bucket)
    key = moto_server.client("kms").create_key()["KeyMetadata"]["Arn"]
    return {"bucket": bucket, "key": key}


def fmt(c: Counter[str]) -> str:
    return ", ".join(f"{n} {op}" for op, n in sorted(c.items())) or "0"


@pytest.mark.parametrize("case", list(CASES))
def test_s3_requests(benchmark, moto_server, setup, case: str) -> None:  # noqa: F811
    head, size = CASES[case]
    value = random.Random(case).randbytes(size)
    kms = moto_server.client("kms")
    if head.endswith("kms"):
        head = f"msgpack+kms:{setup['key']}"
    round_no = [0]

    def fresh() -> tuple[Any, RequestCounter]:
        s3 = moto_server.client("s3")
        return durable_ext.serdes(
            f"{head}+s3://{setup['bucket']}/bench",
            options={"s3": {"client": s3}, "kms": {"client": kms}}), RequestCounter(s3)

    def count(counter: RequestCounter, action: Any) -> str:
        counter.reset()
        action()
        return fmt(counter.counts)

    def cycle() -> dict[str, Any]:
        round_no[0] += 1
        ctx = SerDesContext("op", f"arn:{case}:{round_no[0]}")
        prefix = execution_prefix(ctx.durable_execution_arn, "bench")
        writer, w = fresh()
        text = writer.serialize(value, ctx)
        write = fmt(w.counts)
        first_read = count(w, lambda: writer.deserialize(text, ctx))
        reader, r = fresh()
        replay = count(r, lambda: reader.deserialize(text, ctx))
        again = count(r, lambda: reader.deserialize(text, ctx))
        same = count(w, lambda: writer.serialize(value, ctx))
        retry, rw = fresh()
        new = count(rw, lambda: retry.serialize(value, ctx))
        listed = moto_server.client("s3").list_objects_v2(Bucket=setup["bucket"], Prefix=prefix)
        assert reader.deserialize(text, ctx) == value
        return {"checkpoint": len(text), "offloaded": read_pointer(text) is not None,
                "write": write, "first_read": first_read, "replay": replay,
                "replay_again": again, "retry_same": same,
                "retry_new": f"{new}; {listed.get('KeyCount', 0)} object(s) in all"}

    benchmark.group = "s3-requests"
    info = benchmark.pedantic(cycle, rounds=3, iterations=1)
    benchmark.extra_info.update(kind="s3", case=case, **info)
