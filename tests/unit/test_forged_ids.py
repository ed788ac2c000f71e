"""Callback ids and checkpoint tokens cannot be forged, edited or derived from each other."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from durable_ext.backends.memory import MemoryStore
from durable_ext.engine import Engine
from durable_ext.engine.tokens import CheckpointToken, IdSigner, peek_callback_id
from durable_ext.errors import InvalidCheckpointTokenError, NotFoundError


def callbacks(op_ids: list[str]) -> list[dict[str, Any]]:
    return [
        {"Id": op, "Type": "CALLBACK", "Action": "START", "SubType": "Callback"} for op in op_ids
    ]


@pytest.fixture
def running() -> tuple[Engine, str, str, dict[str, str]]:
    """An execution waiting on callbacks k1..k3; its engine, ARN, token and callback ids."""
    engine = Engine(MemoryStore(), now_ms=lambda: 1_000_000)
    arn, _ = engine.start("fn", "{}")
    inv = engine.begin_invocation(arn)
    assert inv is not None
    res = engine.checkpoint(arn, inv.token, callbacks(["k1", "k2", "k3"]))
    ids = {op["Id"]: op["CallbackDetails"]["CallbackId"] for op in res.operations}
    assert res.token is not None
    return engine, arn, res.token, ids


def reseal(text: str, body: Any) -> str:
    """Keep the tag of ``text`` but put another body behind it (what a forger can do)."""
    raw = base64.b64decode(text)
    return base64.b64encode(raw[:16] + json.dumps(body, separators=(",", ":")).encode()).decode()


def test_ids_match_the_service_pattern_and_bounds(running: Any) -> None:
    import re

    _engine, _arn, token, ids = running
    for text, limit in [(token, 2048), *((cid, 1024) for cid in ids.values())]:
        assert re.fullmatch(r"[A-Za-z0-9+/]+={0,2}", text) and len(text) <= limit


def test_the_holder_of_one_callback_id_cannot_mint_another(running: Any) -> None:
    engine, arn, _token, ids = running
    for victim in ("k2", "k3", "k-unknown"):
        forged = reseal(ids["k1"], [arn, victim])
        with pytest.raises(NotFoundError, match="unknown callback id"):
            engine.callback_success(forged, b'"stolen"')
    engine.callback_success(ids["k2"], b'"mine"')  # the genuine id still works


def test_unsigned_callback_ids_of_the_previous_format_are_refused(running: Any) -> None:
    engine, arn, _token, _ids = running
    old = base64.urlsafe_b64encode(json.dumps([arn, "k1"]).encode()).decode().rstrip("=")
    assert peek_callback_id(base64.b64encode(b"x" * 16 + json.dumps([arn, "k1"]).encode()).decode())
    with pytest.raises(NotFoundError):
        engine.callback_success(old, b'"x"')


def test_ids_of_another_store_are_refused(running: Any) -> None:
    engine, arn, token, _ids = running
    other = IdSigner(b"o" * 32)
    with pytest.raises(NotFoundError):
        engine.callback_success(other.callback_id(arn, "k1"), b'"x"')
    h = engine.store.header(arn)
    foreign = other.token(CheckpointToken(h.execution_id, h.token_sequence, h.invocation_id or ""))
    with pytest.raises(InvalidCheckpointTokenError):
        engine.checkpoint(arn, foreign, [])
    engine.checkpoint(arn, token, [])


def test_a_token_cannot_be_edited_or_used_as_a_callback_id_and_back(running: Any) -> None:
    engine, arn, token, ids = running
    h = engine.store.header(arn)
    later = reseal(token, [h.execution_id, h.token_sequence + 1, h.invocation_id])
    with pytest.raises(InvalidCheckpointTokenError):
        engine.checkpoint(arn, later, [])
    with pytest.raises(NotFoundError):
        engine.callback_success(token, b'"x"')
    with pytest.raises(InvalidCheckpointTokenError):
        engine.checkpoint(arn, ids["k1"], [])
    # the same body under the other kind's tag: keys are separate per kind
    with pytest.raises(NotFoundError):
        engine.callback_success(reseal(token, [arn, "k1"]), b'"x"')
    engine.checkpoint(arn, token, [])


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_every_single_byte_change_of_a_callback_id_is_refused(data: st.DataObject) -> None:
    signer = IdSigner(b"s" * 32)
    arn = "arn:aws:lambda:us-east-1:1:function:f:$LATEST/durable-execution/n/x"
    cid = signer.callback_id(arn, "op")
    raw = bytearray(base64.b64decode(cid))
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] ^= data.draw(st.integers(1, 255))
    assert signer.callback_target(base64.b64encode(bytes(raw)).decode()) is None


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=3000) | st.binary(max_size=2000).map(lambda b: base64.b64encode(b).decode()))  # noqa: E501
def test_arbitrary_strings_are_neither_ids_nor_tokens(text: str) -> None:
    signer = IdSigner(b"s" * 32)
    assert signer.callback_target(text) is None
    assert signer.parse_token(text) is None


def test_overlong_ids_are_refused_before_decoding() -> None:
    signer = IdSigner(b"s" * 32)
    long_id = signer.callback_id("a" * 900, "op")
    assert len(long_id) > 1024 and signer.callback_target(long_id) is None
