"""The model format: registered pydantic models, dataclasses and attrs classes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import subprocess
import sys
import textwrap
import uuid
from decimal import Decimal
from typing import Any, NamedTuple

import attrs
import pytest
from aws_durable_execution_sdk_python.serdes import SerDesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field, field_validator

import durable_ext
from durable_ext.errors import ConfigError, SerializationError, SpecError
from durable_ext.serializers.frames import is_armored, read_frame, unarmor
from durable_ext.serializers.model_format import EXT_MODEL, ModelFormat, ModelRegistry
from durable_ext.serializers.msgpack_format import LAYOUT_PLAIN
from durable_ext.serializers.types import TypeRegistry

CTX = SerDesContext("op-m", "arn:aws:lambda:us-east-1:1:function:f/durable-execution/e/i")


class Color(enum.Enum):  # deliberately not registered: validation restores it in models
    RED = "red"
    BLUE = "blue"


class Status(enum.Enum):
    OPEN = 1
    DONE = 2


class Point(NamedTuple):
    x: int
    y: int


@dataclasses.dataclass
class Address:
    street: str
    city: str = "Lisbon"


class Line(BaseModel):
    sku: str
    qty: int = Field(gt=0)
    price: Decimal


class Order(BaseModel):
    id: uuid.UUID
    placed: dt.datetime
    lines: list[Line]
    ship_to: Address
    color: Color
    tags: set[str] = set()
    dims: tuple[int, int, int] = (1, 1, 1)
    blob: bytes = b""
    note: str | None = None
    meta: dict[str, Any] = {}


@attrs.define
class Parcel:
    weight: float = attrs.field(validator=attrs.validators.gt(0))
    _secret: str = "s"
    label: str = attrs.field(init=False, default="unlabelled")


class Aliased(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    order_id: str = Field(alias="orderId")


class Opaque:
    """A class pydantic cannot describe."""

    def __init__(self, v: int) -> None:
        self.v = v


@dataclasses.dataclass
class Shipment:  # pydantic cannot describe an attrs field type: built through __init__
    parcel: Parcel
    n: int = 0
    seen: bool = dataclasses.field(init=False, default=False)


def registry() -> ModelRegistry:
    return ModelRegistry([Order, Line, Address, Parcel, Aliased, Shipment, Status, Point])


SERDES = durable_ext.serdes("model", types=registry())

ORDER = Order(
    id=uuid.UUID(int=42),
    placed=dt.datetime(2025, 5, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=2))),
    lines=[Line(sku="a", qty=2, price=Decimal("9.99")),
           Line(sku="b", qty=1, price=Decimal("0.01"))],
    ship_to=Address("Rua X"),
    color=Color.BLUE,
    tags={"gift", "fragile"},
    dims=(3, 4, 5),
    blob=b"\x00\xff",
    meta={"k": [1, 2], "when": dt.date(2025, 1, 2)},
)


def rt(value: Any, serdes=SERDES) -> Any:
    text = serdes.serialize(value, CTX)
    assert isinstance(text, str) and is_armored(text)
    text.encode("latin-1")  # one character per byte, in either armor
    return serdes.deserialize(text, CTX)


def test_pydantic_model_round_trip_keeps_every_field_type():
    back = rt(ORDER)
    assert type(back) is Order and back == ORDER
    assert type(back.lines[0]) is Line and type(back.ship_to) is Address
    assert back.color is Color.BLUE and back.placed.utcoffset() == dt.timedelta(hours=2)


def test_frame_is_the_model_wire_and_models_use_their_extension_type():
    raw = unarmor(SERDES.serialize(ORDER, CTX), "t")
    wire, version, body = read_frame(raw, "t")
    # the model's fields travel inside its extension body: the top level has no markers
    assert (wire, version) == (b"M", LAYOUT_PLAIN)
    import msgpack

    ext = msgpack.unpackb(body)
    assert ext.code == EXT_MODEL
    assert msgpack.unpackb(ext.data, strict_map_key=False)[0] == "Order"


def test_dataclass_attrs_enum_namedtuple_and_plain_values():
    p = Parcel(1.5, "x")
    p.label = "fragile"
    value = {
        "addr": Address("Main St", "Porto"),
        "parcel": p,
        "status": Status.DONE,
        "point": Point(1, 2),
        "plain": (1, {2, 3}, frozenset({4}), Decimal("1.1"), dt.timedelta(days=1), 2**70),
        "orders": [ORDER, ORDER],
    }
    back = rt(value)
    assert back == value
    assert back["parcel"].label == "fragile" and back["status"] is Status.DONE
    assert type(back["point"]) is Point


def test_aliases_round_trip():
    assert rt(Aliased(orderId="x")) == Aliased(orderId="x")


def test_dataclass_that_pydantic_cannot_describe_is_built_through_init():
    s = Shipment(Parcel(2.0), 3)
    s.seen = True
    back = rt(s)
    assert type(back) is Shipment and type(back.parcel) is Parcel
    assert (back.n, back.seen, back.parcel.weight) == (3, True, 2.0)


def test_init_built_dataclass_reports_a_missing_required_field():
    @dataclasses.dataclass
    class ShipmentV0:
        n: int = 0

    text = durable_ext.serdes("model", types=_reg_with(ShipmentV0, "Shipment")).serialize(
        ShipmentV0(1), CTX)
    with pytest.raises(SerializationError, match=r"op-m.*Shipment.*field 'parcel': required"):
        SERDES.deserialize(text, CTX)


def test_values_are_validated_on_decode():
    # A payload written by a deploy whose Line allowed qty=0 is checked by today's Line.
    class LooseLine(BaseModel):
        sku: str
        qty: int
        price: Decimal

    old = durable_ext.serdes("model", types=_reg_with(LooseLine, "Line"))
    text = old.serialize(LooseLine(sku="a", qty=0, price=Decimal(1)), CTX)
    with pytest.raises(SerializationError, match=r"Line.*field 'qty'.*greater than 0"):
        SERDES.deserialize(text, CTX)


def _reg_with(cls: type, tag: str) -> ModelRegistry:
    reg = ModelRegistry()
    reg.register(cls, tag=tag)
    return reg


def test_field_validators_run_on_decode():
    class Temp(BaseModel):
        celsius: float

    class StrictTemp(BaseModel):
        celsius: float

        @field_validator("celsius")
        @classmethod
        def above_absolute_zero(cls, v: float) -> float:
            if v < -273.15:
                raise ValueError("below absolute zero")
            return v

    old = durable_ext.serdes("model", types=_reg_with(Temp, "T"))
    text = old.serialize(Temp(celsius=-300), CTX)
    with pytest.raises(SerializationError, match=r"field 'celsius'.*below absolute zero"):
        durable_ext.serdes("model", types=_reg_with(StrictTemp, "T")).deserialize(text, CTX)


def test_attrs_validators_run_on_decode():
    @attrs.define
    class Loose:
        weight: float
        _secret: str = "s"

    text = durable_ext.serdes("model", types=_reg_with(Loose, "Parcel")).serialize(Loose(-1.0), CTX)
    with pytest.raises(SerializationError, match=r"model [\w.]*test_model_format\.Parcel.*"
                                                 r"'weight' must be > 0"):
        SERDES.deserialize(text, CTX)


@pytest.mark.parametrize("spec", ["model+zstd", "model+zlib"])
def test_composes_with_compression(spec):
    codec = spec.split("+")[1]
    s = durable_ext.serdes(spec, types=registry(), options={codec: {"threshold": 0}})
    big = [ORDER] * 50
    text = s.serialize(big, CTX)
    assert read_frame(unarmor(text, "t"), "t")[0] == {"zstd": b"z", "zlib": b"l"}[codec]
    assert len(text) < len(SERDES.serialize(big, CTX)) / 3
    assert s.deserialize(text, CTX) == big


def test_model_pipeline_reads_msgpack_payloads_and_msgpack_reads_plain_model_payloads():
    plain = {"a": (1, 2), "b": dt.date(2025, 1, 1)}
    assert SERDES.deserialize(durable_ext.serdes("msgpack").serialize(plain, CTX), CTX) == plain
    assert durable_ext.serdes("msgpack").deserialize(SERDES.serialize(plain, CTX), CTX) == plain


def test_msgpack_pipeline_cannot_invent_a_model_class():
    with pytest.raises(SerializationError, match="unregistered tag 'Order'"):
        durable_ext.serdes("msgpack").deserialize(SERDES.serialize(ORDER, CTX), CTX)


# -- registration -----------------------------------------------------------------------


def test_register_forms():
    reg = ModelRegistry()

    @reg.register
    class A(BaseModel):
        x: int

    @reg.register(tag="B.v2")
    @dataclasses.dataclass
    class B:
        y: int

    assert reg.register(A) is A  # again: a no-op
    assert (reg.tag_of(A), reg.tag_of(B), reg.class_of("B.v2")) == (A.__qualname__, "B.v2", B)
    assert A in reg and len(reg) == 2 and set(reg) == {A, B}
    assert rt([A(x=1), B(2)], durable_ext.serdes("model", types=reg)) == [A(x=1), B(2)]


def test_types_may_be_a_list_or_a_msgpack_type_registry():
    assert rt(Address("x"), durable_ext.serdes("model", types=[Address])) == Address("x")
    tr = TypeRegistry()
    tr.register(Address, tag="Addr")
    fmt = ModelFormat(types=tr)
    assert fmt.models.tag_of(Address) == "Addr"


def test_registration_errors():
    reg = ModelRegistry([Address])

    class Other(BaseModel):
        z: int

    with pytest.raises(ConfigError, match="tag 'Address' already names"):
        reg.register(Other, tag="Address")
    with pytest.raises(ConfigError, match="already registered as 'Address'"):
        reg.register(Address, tag="Addr2")
    with pytest.raises(ConfigError, match="not a pydantic model, dataclass, attrs class"):
        reg.register(Opaque)
    with pytest.raises(ConfigError, match="only classes"):
        reg.register(Address("x"))  # type: ignore[call-overload]
    with pytest.raises(ConfigError, match="already names"):
        reg.register(Status, tag="Address")
    reg.register(Status)
    with pytest.raises(ConfigError, match="already names"):
        reg.register(Other, tag="Status")


def test_unregistered_model_on_encode_names_class_and_fix():
    class Stray(BaseModel):
        x: int

    with pytest.raises(SerializationError, match=r"test_model_format\..*Stray.*op-m.*"
                                                 r"ModelRegistry\.register"):
        SERDES.serialize({"k": Stray(x=1)}, CTX)


def test_unsupported_plain_type_still_names_it():
    with pytest.raises(SerializationError, match=r"builtins\.object"):
        SERDES.serialize(object(), CTX)


def test_field_that_fails_to_dump_is_a_serialization_error():
    class Bad(BaseModel):
        model_config = ConfigDict(arbitrary_types_allowed=True)
        v: Opaque

    with pytest.raises(SerializationError, match=r"Opaque in operation 'op-m' .*model '[^']*Bad'"):
        durable_ext.serdes("model", types=[Bad]).serialize(Bad(v=Opaque(1)), CTX)


def test_spec_argument_is_refused():
    with pytest.raises(SpecError, match="takes no argument"):
        durable_ext.serdes("model:x")


def test_missing_pydantic_names_the_models_extra():
    code = textwrap.dedent(
        """
        import sys
        sys.modules["pydantic"] = None
        import durable_ext
        try:
            durable_ext.serdes("model")
        except ImportError as exc:
            print(type(exc).__name__, exc)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("MissingDependencyError")
    assert "pip install 'durable-ext[models]'" in out.stdout


# -- json mode --------------------------------------------------------------------------


def json_registry(*classes: type) -> ModelRegistry:
    reg = ModelRegistry()
    for cls in classes:
        reg.register(cls, json=True)
    return reg


# pydantic JSON carries neither non-UTF-8 bytes nor a date in an Any field as such
UTF8_ORDER = ORDER.model_copy(update={"blob": b"utf-8 text", "meta": {"k": [1, 2]}})


def test_json_mode_round_trip_and_stores_pydantic_json():
    s = durable_ext.serdes("model", types=json_registry(Order, Line))
    back = rt(UTF8_ORDER, s)
    assert back == UTF8_ORDER and type(back.lines[0]) is Line and back.color is Color.BLUE
    import msgpack

    ext = msgpack.unpackb(read_frame(unarmor(s.serialize(UTF8_ORDER, CTX), "t"), "t")[2])
    tag, data = msgpack.unpackb(ext.data)
    assert tag == "Order" and isinstance(data, bytes) and data.startswith(b'{"id":')


def test_payloads_of_either_mode_decode_whatever_the_current_registration():
    exact = durable_ext.serdes("model", types=ModelRegistry([Order, Line]))
    as_json = durable_ext.serdes("model", types=json_registry(Order, Line))
    assert as_json.deserialize(exact.serialize(ORDER, CTX), CTX) == ORDER
    assert exact.deserialize(as_json.serialize(UTF8_ORDER, CTX), CTX) == UTF8_ORDER


def test_json_mode_value_pydantic_json_cannot_hold_says_why():
    s = durable_ext.serdes("model", types=json_registry(Order, Line))
    with pytest.raises(SerializationError, match=r"Order in operation 'op-m' .*utf-8"):
        s.serialize(ORDER, CTX)  # its blob is not UTF-8


def test_json_mode_has_json_limits_on_untyped_fields():
    class Event(BaseModel):
        payload: dict[str, Any]

    value = Event(payload={"when": dt.date(2025, 1, 2)})
    assert rt(value, durable_ext.serdes("model", types=[Event])) == value  # exact mode
    back = rt(value, durable_ext.serdes("model", types=json_registry(Event)))
    assert back.payload == {"when": "2025-01-02"}  # what pydantic's JSON gives back


def test_json_mode_drift_names_the_field():
    class V1(BaseModel):
        a: int

    class V2(BaseModel):
        a: int
        b: str

    old = durable_ext.serdes("model", types=_reg_with(V1, "V"))
    new = ModelRegistry()
    new.register(V2, tag="V", json=True)
    with pytest.raises(SerializationError, match=r"op-m.*V2.*field 'b': Field required"):
        durable_ext.serdes("model", types=new).deserialize(old.serialize(V1(a=1), CTX), CTX)
    text = durable_ext.serdes("model", types=json_registry(V1)).serialize(V1(a=1), CTX)
    with pytest.raises(SerializationError, match=r"field 'b': Field required"):
        durable_ext.serdes("model", types=_reg_with(V2, V1.__qualname__)).deserialize(text, CTX)


def test_json_mode_refuses_classes_pydantic_cannot_describe():
    with pytest.raises(ConfigError, match="json=True needs a class pydantic can describe"):
        ModelRegistry().register(Shipment, json=True)
    with pytest.raises(ConfigError, match="json=True needs a class pydantic can describe"):
        ModelRegistry().register(Parcel, json=True)


# -- round-trip property ------------------------------------------------------------------


lines = st.builds(Line, sku=st.text(max_size=8), qty=st.integers(1, 2**40),
                  price=st.decimals(allow_nan=False, allow_infinity=False, places=2))
orders = st.builds(
    Order,
    id=st.uuids(),
    placed=st.datetimes(timezones=st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=-3))])),
    lines=st.lists(lines, max_size=3),
    ship_to=st.builds(Address, street=st.text(max_size=8), city=st.text(max_size=8)),
    color=st.sampled_from(Color),
    tags=st.sets(st.text(max_size=4), max_size=3),
    dims=st.tuples(st.integers(), st.integers(), st.integers()).filter(
        lambda t: all(-(2**63) <= v < 2**64 for v in t)),
    blob=st.binary(max_size=16),
    note=st.none() | st.text(max_size=8),
    meta=st.dictionaries(st.text(max_size=4), st.integers() | st.floats(allow_nan=False)
                         | st.dates() | st.binary(max_size=4), max_size=3),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(orders, max_size=3), st.sampled_from(["model", "model+zstd"]))
def test_any_order_round_trips(values, spec):
    s = durable_ext.serdes(spec, types=registry(), options={"zstd": {"threshold": 0}})
    assert rt(values, s) == values


def test_registering_again_with_json_switches_the_stored_form():
    reg = ModelRegistry([Line])
    s = durable_ext.serdes("model", types=reg)
    value = Line(sku="a", qty=1, price=Decimal(1))
    assert rt(value, s) == value  # builds the exact-mode adapter
    reg.register(Line, json=True)
    import msgpack

    ext = msgpack.unpackb(read_frame(unarmor(s.serialize(value, CTX), "t"), "t")[2])
    assert isinstance(msgpack.unpackb(ext.data)[1], bytes)
    assert rt(value, s) == value
