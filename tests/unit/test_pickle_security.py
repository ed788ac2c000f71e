"""A forged pickle payload never runs code: the canary file is never written.

The exploit is a real one: unpickling it writes the canary. A control test proves
that, so the refusals below are refusals of a live payload, not of a harmless one.
"""

from __future__ import annotations

import base64
import pickle
from pathlib import Path

import pytest
from aws_durable_execution_sdk_python.exceptions import SerDesError
from aws_durable_execution_sdk_python.serdes import SerDesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import durable_ext
from durable_ext.errors import DisallowedContentError, IntegrityError
from durable_ext.serializers import pickle_format
from durable_ext.serializers.frames import armor, frame
from durable_ext.serializers.pickle_format import PickleFormat

ARN = "arn:aws:lambda:us-east-1:123456789012:function:f/durable-execution/e/i"
VICTIM_CTX = SerDesContext("op-victim", ARN)
KEY = b"v" * 32
ATTACKER_KEY = b"a" * 32


class Exploit:
    """Unpickling this runs ``exec``: it writes the canary file."""

    def __init__(self, canary: Path) -> None:
        self.canary = canary

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (exec, (f"open({str(self.canary)!r}, 'w').write('owned')",))


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    return tmp_path / "canary"


@pytest.fixture
def victim():
    return durable_ext.serdes("pickle+zstd", options={"pickle": {"key": KEY, "key_id": "prod"}})


@pytest.fixture
def loads_calls(monkeypatch):
    """Record every pickle.loads the format makes: none may happen for a forgery."""
    calls: list[bytes] = []
    real = pickle_format.pickle.loads

    def spy(data, *a, **kw):
        calls.append(data)
        return real(data, *a, **kw)

    monkeypatch.setattr(pickle_format.pickle, "loads", spy)
    return calls


def test_control_the_exploit_is_live(canary):
    pickle.loads(pickle.dumps(Exploit(canary)))
    assert canary.read_text() == "owned"


def test_control_a_payload_signed_with_the_real_key_for_this_operation_would_run(canary, victim):
    # What an attacker would need: the key. With it, the payload runs; so the
    # signature is what stands between a forgery and code execution.
    victim.deserialize(victim.serialize(Exploit(canary), VICTIM_CTX), VICTIM_CTX)
    assert canary.exists()


def forgeries(canary: Path) -> dict[str, str]:
    evil = pickle.dumps(Exploit(canary))
    attacker = PickleFormat(key=ATTACKER_KEY, key_id="prod")
    signed_elsewhere = PickleFormat(key=KEY, key_id="prod")
    other_op = SerDesContext("op-attacker", ARN)
    other_exec = SerDesContext("op-victim", ARN.replace("/e/", "/other/"))
    return {
        "unsigned frame": armor(frame(b"p", 1, b"\x00" + evil)),
        "garbage tag": armor(frame(b"p", 1, b"\x04prod" + bytes(32) + evil)),
        "attacker key under the victim's key id": armor(
            frame(b"p", 1, attacker.encode(Exploit(canary), VICTIM_CTX))),
        "signed for another operation": armor(
            frame(b"p", 1, signed_elsewhere.encode(Exploit(canary), other_op))),
        "signed for another execution": armor(
            frame(b"p", 1, signed_elsewhere.encode(Exploit(canary), other_exec))),
        "unknown key id": armor(frame(b"p", 1, b"\x03old" + bytes(32) + evil)),
        "bare pickle armored": armor(evil),
        "bare pickle as text": evil.decode("latin-1"),
        "bare pickle base64": base64.b64encode(evil).decode(),
        "pickle frame in an unknown wrapper": armor(frame(b"zz", 1, frame(b"p", 1, evil))),
    }


@pytest.mark.parametrize("name", sorted(forgeries(Path("x"))))
def test_forged_payload_never_executes(name, canary, victim, loads_calls):
    with pytest.raises(SerDesError):
        victim.deserialize(forgeries(canary)[name], VICTIM_CTX)
    assert not canary.exists()
    assert loads_calls == []


@pytest.mark.parametrize("spec", ["msgpack", "msgpack+zstd", "json", "model"])
def test_pipelines_without_pickle_refuse_even_validly_signed_payloads(spec, canary, victim):
    text = victim.serialize(Exploit(canary), VICTIM_CTX)
    with pytest.raises(DisallowedContentError):
        durable_ext.serdes(spec).deserialize(text, VICTIM_CTX)
    assert not canary.exists()


FUZZ = settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def fuzz_canary(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "canary"


@FUZZ
@given(data=st.data())
def test_any_mutation_of_a_signed_exploit_is_refused(data, fuzz_canary):
    fmt = PickleFormat(key=KEY, key_id="prod")
    serdes = durable_ext.serdes("pickle", options={"pickle": {"key": KEY, "key_id": "prod"}})
    # Signed for another operation: any payload the attacker can see, replayed here.
    raw = frame(b"p", 1, fmt.encode(Exploit(fuzz_canary), SerDesContext("op-x", ARN)))
    kind = data.draw(st.sampled_from(["flip", "truncate", "splice", "as-is"]))
    forged = bytearray(raw)
    if kind == "flip":
        i = data.draw(st.integers(0, len(raw) - 1))
        forged[i] ^= data.draw(st.integers(1, 255))
    elif kind == "truncate":
        forged = forged[: data.draw(st.integers(0, len(raw) - 1))]
    elif kind == "splice":
        i = data.draw(st.integers(0, len(raw)))
        forged[i:i] = data.draw(st.binary(min_size=1, max_size=40))
    with pytest.raises(SerDesError):
        serdes.deserialize(armor(bytes(forged)), VICTIM_CTX)
    assert not fuzz_canary.exists()


def test_verification_happens_before_any_unpickling(canary, loads_calls):
    fmt = PickleFormat(key=KEY)
    body = fmt.encode(Exploit(canary), SerDesContext("op-x", ARN))
    with pytest.raises(IntegrityError):
        fmt.decode(body, 1, VICTIM_CTX)
    assert loads_calls == [] and not canary.exists()
