"""Fuzzing the pickle decoder: only SerializationError, never a hang, never a load."""

from __future__ import annotations

import threading

from aws_durable_execution_sdk_python.serdes import SerDesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import durable_ext
from durable_ext.errors import SerializationError
from durable_ext.serializers.frames import MAGIC, armor, frame, unarmor

CTX = SerDesContext("op-fuzz", "arn:fuzz")
KEY = b"f" * 32
SERDES = durable_ext.serdes(
    "pickle+zstd", options={"pickle": {"key": KEY, "key_id": "k"}, "zstd": {"threshold": 0}}
)
VALUE = {"a": list(range(50))}
VALID = unarmor(SERDES.serialize(VALUE, CTX), "t")
FUZZ = settings(max_examples=1200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
#: a decode that takes this long is a hang (real decodes here take microseconds)
HANG_SECONDS = 30
REFUSED = object()


def bounded(serdes, text: str, where: str) -> object:
    """Decode in a daemon thread, bounded in time: return the value, or REFUSED on
    SerializationError (which must say where); any other exception fails the test."""
    result: list[object] = []

    def run() -> None:
        try:
            result.append(serdes.deserialize(text, CTX))
        except SerializationError as exc:
            assert where in str(exc), str(exc)
            result.append(REFUSED)
        except BaseException as exc:  # reported below, in the test's thread
            result.append(exc)

    worker = threading.Thread(target=run, daemon=True)  # a hung one cannot block exit
    worker.start()
    worker.join(HANG_SECONDS)
    if worker.is_alive():
        raise AssertionError(f"decoder hung on {text[:80]!r}")
    if isinstance(result[0], BaseException):
        raise result[0]
    return result[0]


def outcome(text: str) -> object:
    return bounded(SERDES, text, "op-fuzz")


@FUZZ
@given(st.binary(max_size=300))
def test_random_pickle_frame_bodies_are_always_refused(body):
    assert outcome(armor(frame(b"p", 1, body))) is REFUSED


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes_behind_the_magic_byte(raw):
    assert outcome(armor(bytes([MAGIC]) + raw)) is REFUSED


@FUZZ
@given(st.text(max_size=200))
def test_random_text(text):
    # Text may by chance be JSON, which the pipeline accepts as a foreign payload.
    outcome(text)


@FUZZ
@given(st.data())
def test_mutated_valid_payloads(data):
    forged = bytearray(VALID)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(forged) - 1))
        forged[i] = data.draw(st.integers(0, 255))
    result = outcome(armor(bytes(forged)))
    # A change the compressor's framing ignores may still decode: then to the same value.
    assert result is REFUSED or result == VALUE
