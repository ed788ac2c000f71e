"""Schema drift between deploys: what pydantic's defaults allow works, the rest names the field.

Each test writes with the class of one "deploy" and reads with the class of the next,
both registered under the same tag, as a replay after a deploy would.
"""

from __future__ import annotations

import dataclasses

import attrs
import pytest
from aws_durable_execution_sdk_python.serdes import SerDesContext
from pydantic import BaseModel, ConfigDict

import durable_ext
from durable_ext.errors import SerializationError
from durable_ext.serializers.model_format import ModelRegistry

CTX = SerDesContext("op-drift", "arn:drift")


def deploy(cls: type, tag: str = "Order"):
    reg = ModelRegistry()
    reg.register(cls, tag=tag)
    return durable_ext.serdes("model", types=reg)


def replay(old_value, old_cls, new_cls):
    text = deploy(old_cls).serialize(old_value, CTX)
    return deploy(new_cls).deserialize(text, CTX)


# -- pydantic ---------------------------------------------------------------------------


class OrderV1(BaseModel):
    id: str
    qty: int


def test_pydantic_added_field_with_default_takes_the_default():
    class OrderV2(BaseModel):
        id: str
        qty: int
        currency: str = "EUR"

    back = replay(OrderV1(id="a", qty=2), OrderV1, OrderV2)
    assert type(back) is OrderV2 and back == OrderV2(id="a", qty=2, currency="EUR")


def test_pydantic_added_required_field_names_model_and_field():
    class OrderV2(BaseModel):
        id: str
        qty: int
        customer: str

    with pytest.raises(SerializationError) as info:
        replay(OrderV1(id="a", qty=2), OrderV1, OrderV2)
    msg = str(info.value)
    assert "op-drift" in msg and "OrderV2" in msg and "'Order'" in msg
    assert "field 'customer': Field required (missing)" in msg


def test_pydantic_removed_field_is_dropped():
    class OrderV2(BaseModel):
        id: str

    back = replay(OrderV1(id="a", qty=2), OrderV1, OrderV2)
    assert back == OrderV2(id="a") and not hasattr(back, "qty")


def test_pydantic_removed_field_with_extra_forbid_names_the_field():
    class OrderV2(BaseModel):
        model_config = ConfigDict(extra="forbid")
        id: str

    with pytest.raises(SerializationError, match=r"OrderV2.*field 'qty'.*extra_forbidden"):
        replay(OrderV1(id="a", qty=2), OrderV1, OrderV2)


def test_pydantic_changed_type_coerces_when_lax_mode_allows():
    class OrderV2(BaseModel):
        id: str
        qty: float

    assert replay(OrderV1(id="a", qty=2), OrderV1, OrderV2).qty == 2.0


def test_pydantic_incompatible_type_names_the_field():
    class OrderV2(BaseModel):
        id: int
        qty: int

    with pytest.raises(SerializationError, match=r"field 'id':.*int_parsing"):
        replay(OrderV1(id="not-a-number", qty=2), OrderV1, OrderV2)


def test_pydantic_nested_drift_names_the_nested_path():
    class LineV1(BaseModel):
        sku: str

    class CartV1(BaseModel):
        lines: list[LineV1]

    class LineV2(BaseModel):
        sku: str
        qty: int

    class CartV2(BaseModel):
        lines: list[LineV2]

    with pytest.raises(SerializationError, match=r"field 'lines\.0\.qty': Field required"):
        replay(CartV1(lines=[LineV1(sku="x")]), CartV1, CartV2)


def test_model_renamed_to_a_new_tag_is_an_unregistered_tag():
    text = deploy(OrderV1).serialize(OrderV1(id="a", qty=1), CTX)
    with pytest.raises(SerializationError, match="unregistered tag 'Order'"):
        deploy(OrderV1, tag="Order.v2").deserialize(text, CTX)


# -- dataclasses ------------------------------------------------------------------------


@dataclasses.dataclass
class ParcelV1:
    id: str
    weight: float


def test_dataclass_added_field_with_default_and_removed_field():
    @dataclasses.dataclass
    class ParcelV2:
        id: str
        fragile: bool = False

    assert replay(ParcelV1("p", 1.0), ParcelV1, ParcelV2) == ParcelV2("p", False)


def test_dataclass_added_required_field_names_it():
    @dataclasses.dataclass
    class ParcelV2:
        id: str
        weight: float
        owner: str

    with pytest.raises(SerializationError, match=r"ParcelV2.*field 'owner': Field required"):
        replay(ParcelV1("p", 1.0), ParcelV1, ParcelV2)


def test_dataclass_values_are_type_checked_on_decode():
    @dataclasses.dataclass
    class ParcelV2:
        id: str
        weight: dict[str, int]

    with pytest.raises(SerializationError, match=r"field 'weight'.*dict_type"):
        replay(ParcelV1("p", 1.0), ParcelV1, ParcelV2)


# -- attrs ------------------------------------------------------------------------------


@attrs.define
class BoxV1:
    id: str
    size: int


def test_attrs_added_field_with_default_and_removed_field():
    @attrs.define
    class BoxV2:
        id: str
        color: str = "brown"

    assert replay(BoxV1("b", 3), BoxV1, BoxV2) == BoxV2("b", "brown")


def test_attrs_added_required_field_names_it():
    @attrs.define
    class BoxV2:
        id: str
        size: int
        owner: str

    with pytest.raises(SerializationError, match=r"op-drift.*BoxV2.*field 'owner': required"):
        replay(BoxV1("b", 3), BoxV1, BoxV2)


def test_attrs_stored_value_that_is_not_a_field_map():
    # A deploy changed the tag's class from a NamedTuple-like list to an attrs class.
    @attrs.define
    class BoxV2:
        id: str

    reg = ModelRegistry()
    reg.register(BoxV2, tag="Order")
    fmt = durable_ext.serdes("model", types=reg).format
    import msgpack

    body = msgpack.packb(msgpack.ExtType(64, msgpack.packb(["Order", [1, 2]])))
    with pytest.raises(SerializationError, match="BoxV2: expected a field map, got list"):
        fmt.decode(body, 1, CTX)
