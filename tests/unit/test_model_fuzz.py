"""Fuzzing the model decoder: only SerializationError, never a hang."""

from __future__ import annotations

import dataclasses
import datetime as dt

import attrs
import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from test_pickle_fuzz import REFUSED, bounded  # one bounded decoder for both suites

import durable_ext
from durable_ext.serializers.frames import armor, frame
from durable_ext.serializers.model_format import EXT_MODEL, ModelRegistry


class Item(BaseModel):
    sku: str
    qty: int = 1
    at: dt.datetime | None = None


@dataclasses.dataclass
class Box:
    items: list[Item]
    label: str = ""


@attrs.define
class Crate:
    box: Box
    weight: float = attrs.field(default=1.0, validator=attrs.validators.ge(0))


TAGS = ["Item", "Box", "Crate", "Unknown", ""]
SERDES = durable_ext.serdes("model+zstd", types=ModelRegistry([Item, Box, Crate]),
                            options={"zstd": {"threshold": 0}})
FUZZ = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def outcome(text: str) -> object:
    return bounded(SERDES, text, "op-fuzz")


scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(),
                    st.text(max_size=10), st.binary(max_size=10))
ext_any = st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=30))
trees = st.recursive(
    st.one_of(scalars, ext_any),
    lambda kids: st.one_of(st.lists(kids, max_size=4),
                           st.dictionaries(st.sampled_from(["sku", "qty", "at", "items", "label",
                                                            "box", "weight", "x"]), kids,
                                           max_size=4)),
    max_leaves=8,
)


@st.composite
def model_exts(draw: st.DrawFn) -> msgpack.ExtType:
    """A model extension with a plausible tag and an arbitrary field tree."""
    tag = draw(st.sampled_from(TAGS) | st.integers(-(2**63), 2**63))
    return msgpack.ExtType(EXT_MODEL, msgpack.packb([tag, draw(trees)]))


@FUZZ
@given(st.binary(max_size=300))
def test_random_model_frame_bodies(body):
    outcome(armor(frame(b"M", 1, body)))


@settings(FUZZ, max_examples=800)  # each case is a whole tree: costly to generate
@given(st.lists(model_exts(), min_size=1, max_size=2))
def test_structured_model_payloads(exts):
    body = msgpack.packb(exts)
    result = outcome(armor(frame(b"M", 1, body)))
    if result is not REFUSED:
        assert isinstance(result, list) and len(result) == len(exts)
        assert all(isinstance(v, Item | Box | Crate) for v in result)


@FUZZ
@given(st.binary(min_size=1, max_size=40), st.integers(0, 127))
def test_random_extension_bodies(data, code):
    outcome(armor(frame(b"M", 1, msgpack.packb(msgpack.ExtType(code, data)))))
