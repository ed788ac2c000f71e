import dataclasses
import datetime as dt
import enum
import json
import math
import sys
import threading
import uuid
from decimal import Decimal
from typing import NamedTuple
from zoneinfo import ZoneInfo

import pytest
from aws_durable_execution_sdk_python.concurrency.models import (
    BatchItem,
    BatchItemStatus,
    BatchResult,
    CompletionReason,
)
from aws_durable_execution_sdk_python.lambda_service import ErrorObject
from aws_durable_execution_sdk_python.serdes import ExtendedTypeSerDes, JsonSerDes, SerDesContext
from hypothesis import given, settings
from hypothesis import strategies as st

import durable_ext
from durable_ext.errors import SerializationError
from durable_ext.serializers.frames import frame, is_armored, read_frame, unarmor
from durable_ext.serializers.msgpack_format import (
    EXT_DATETIME_STATE,
    EXT_MARK,
    LAYOUT_MARKED,
    LAYOUT_PLAIN,
)

CTX = SerDesContext("op-7", "arn:aws:lambda:us-east-1:1:function:f/durable-execution/e/i")


@dataclasses.dataclass(frozen=True)
class Money:
    amount: Decimal
    currency: str = "EUR"


@dataclasses.dataclass
class Order:
    id: uuid.UUID
    lines: list[tuple[str, int]]
    total: Money
    placed: dt.datetime
    note: str | None = None
    cache: dict[str, int] = dataclasses.field(default_factory=dict, init=False)


class Status(enum.Enum):
    OPEN = "open"
    SHIPPED = 2


class Point(NamedTuple):
    x: int
    y: int


SERDES = durable_ext.serdes("msgpack", types=[Money, Order, Status, Point])


def roundtrip(value, serdes=SERDES):
    text = serdes.serialize(value, CTX)
    assert isinstance(text, str)
    if is_armored(text):
        text.encode("latin-1")  # one character per byte, in either armor
    else:  # a float-heavy JSON value may go out as the shorter, exact JSON text
        assert same(json.loads(text), value)
    return serdes.deserialize(text, CTX)


def same(a, b):
    """Equality that also checks types, nested, and nan."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (dt.datetime, dt.time)):
        return a == b and a.tzinfo == b.tzinfo and a.fold == b.fold and repr(a) == repr(b)
    if isinstance(a, Decimal):
        return str(a) == str(b)
    return a == b


EXAMPLES = [
    None,
    True,
    False,
    0,
    -1,
    2**63 - 1,
    2**64,
    -(2**63),
    -(2**63) - 1,
    10**100,
    -(10**100),
    0.0,
    -0.0,
    1.5,
    float("inf"),
    float("-inf"),
    float("nan"),
    "",
    "é",
    "\ud800 lone surrogate",
    "x" * 100_000,
    b"",
    b"\x00\xff" * 10,
    [],
    [1, [2, [3]]],
    (),
    (1,),
    (1, (2, ())),
    {},
    {1: "a", None: 2, (1, 2): 3, b"k": 4, 1.5: 5},
    set(),
    {1, 2, 3},
    frozenset({"a", frozenset({1})}),
    dt.datetime(2024, 2, 29, 23, 59, 59, 999_999),
    dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
    dt.datetime(2024, 1, 1, 12, 30, 0, 5, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))),
    dt.datetime(2024, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=-5), "EST")),
    dt.datetime(2021, 11, 7, 1, 30, tzinfo=ZoneInfo("America/New_York"), fold=1),
    dt.datetime(2024, 1, 1, tzinfo=dt.UTC, fold=1),
    dt.datetime(2024, 1, 1, fold=1),
    dt.datetime(1969, 12, 31, 23, 59, 59, 1, tzinfo=dt.UTC),
    dt.datetime(2600, 1, 1, 0, 0, 0, 5, tzinfo=dt.UTC),
    dt.datetime.min,
    dt.datetime.max,
    dt.datetime.min.replace(tzinfo=dt.UTC),
    dt.datetime.max.replace(tzinfo=dt.UTC),
    dt.datetime(2024, 1, 1, tzinfo=dt.timezone(dt.timedelta(0), "Z")),
    dt.datetime(2024, 1, 1, tzinfo=ZoneInfo("UTC")),
    dt.date(1, 1, 1),
    dt.date(9999, 12, 31),
    dt.time(0, 0),
    dt.time(23, 59, 59, 999_999, tzinfo=dt.UTC),
    dt.timedelta(0),
    dt.timedelta(days=-999_999_999),
    dt.timedelta.max,
    dt.timedelta(microseconds=-1),
    Decimal("1.10"),
    Decimal("-0"),
    Decimal("NaN"),
    Decimal("-Infinity"),
    Decimal("1E+999"),
    uuid.UUID(int=0),
    uuid.uuid4(),
    Status.OPEN,
    Status.SHIPPED,
    Point(1, 2),
    Money(Decimal("9.99")),
]


@pytest.mark.parametrize("value", EXAMPLES, ids=lambda v: type(v).__name__)
def test_exact_round_trip_of_every_supported_type(value):
    assert same(roundtrip(value), value)


def test_registered_dataclass_with_nested_types_and_init_false_field():
    order = Order(
        uuid.uuid4(),
        [("sku-1", 2)],
        Money(Decimal("3.50")),
        dt.datetime(2024, 5, 1, 8, tzinfo=dt.UTC),
    )
    order.cache["hits"] = 3
    back = roundtrip(order)
    assert back == order and back.cache == {"hits": 3}
    assert type(back.lines[0]) is tuple and type(back.total) is Money


def test_batch_result_round_trips_with_typed_item_results():
    br = BatchResult(
        [
            BatchItem(0, BatchItemStatus.SUCCEEDED, (Decimal("1.5"), dt.date(2024, 1, 2))),
            BatchItem(
                1, BatchItemStatus.FAILED, None, ErrorObject("boom", "ValueError", None, None)
            ),
        ],
        CompletionReason.ALL_COMPLETED,
    )
    back = roundtrip(br)
    assert isinstance(back, BatchResult)
    assert back.all[0].result == (Decimal("1.5"), dt.date(2024, 1, 2))
    assert back.all[1].error.message == "boom"
    assert back.completion_reason is CompletionReason.ALL_COMPLETED


def test_unsupported_type_names_the_type_and_the_operation():
    class Opaque:
        pass

    with pytest.raises(SerializationError) as info:
        SERDES.serialize({"x": [Opaque()]}, CTX)
    assert "Opaque" in str(info.value) and "op-7" in str(info.value)


def test_unregistered_dataclass_gets_a_registration_hint():
    @dataclasses.dataclass
    class Unregistered:
        a: int

    with pytest.raises(SerializationError, match="register the class"):
        durable_ext.serdes("msgpack").serialize(Unregistered(1), CTX)


def test_decoding_never_resolves_an_unregistered_tag():
    payload = SERDES.serialize(Status.OPEN, CTX)
    other = durable_ext.serdes("msgpack")  # knows no classes
    with pytest.raises(SerializationError, match="unregistered type tag 'Status'") as info:
        other.deserialize(payload, CTX)
    assert "operation 'op-7'" in str(info.value)  # says where, like every decode error


def test_payload_naming_a_module_does_not_import_it():
    import msgpack

    from durable_ext.serializers import msgpack_format as mf

    body = msgpack.packb(msgpack.ExtType(mf.EXT_OBJECT, msgpack.packb(["antigravity.Fly", {}])))
    forged = durable_ext.serializers.frames.armor(frame(b"m", 1, body))
    with pytest.raises(SerializationError):
        SERDES.deserialize(forged, CTX)
    assert "antigravity" not in sys.modules


def test_reads_payloads_written_by_the_sdk_default_serializers():
    value = {"when": dt.datetime(2024, 1, 1, tzinfo=dt.UTC), "ids": (1, 2), "d": Decimal("2.5")}
    legacy = ExtendedTypeSerDes().serialize(value, CTX)
    assert SERDES.deserialize(legacy, CTX) == value
    assert SERDES.deserialize(JsonSerDes().serialize({"a": [1, "b"]}, CTX), CTX) == {"a": [1, "b"]}
    assert SERDES.deserialize('"plain string"', CTX) == "plain string"
    # plain JSON that merely looks like the SDK's envelope stays plain JSON
    assert SERDES.deserialize('{"t": "nope", "v": 1}', CTX) == {"t": "nope", "v": 1}


def test_newer_format_version_is_refused_with_upgrade_hint():
    import msgpack

    newer = durable_ext.serializers.frames.armor(frame(b"m", 4, msgpack.packb(1)))
    with pytest.raises(SerializationError, match="upgrade durable-ext"):
        SERDES.deserialize(newer, CTX)


def test_smaller_than_the_sdk_envelope_on_typed_data():
    value = {
        "id": uuid.uuid4(),
        "at": dt.datetime.now(dt.UTC),
        "amount": Decimal("12.34"),
        "tags": ("a", "b"),
        "qty": 3,
    }
    ours = SERDES.serialize(value, CTX)
    sdk = ExtendedTypeSerDes().serialize(value, CTX)
    assert len(ours) < 0.6 * len(sdk)


def test_concurrent_use_from_threads_is_safe():
    values = [{"n": i, "t": (i, str(i)), "d": Decimal(i)} for i in range(200)]
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for v in values[offset:] + values[:offset]:
                assert roundtrip(v) == v
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i * 37,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors


def test_failed_encode_leaves_the_packer_usable():
    class Opaque:
        pass

    with pytest.raises(SerializationError):
        SERDES.serialize([1, 2, Opaque()], CTX)
    assert roundtrip([1, 2, 3]) == [1, 2, 3]


def test_unknown_timezone_implementation_is_refused():
    class Custom(dt.tzinfo):
        def utcoffset(self, d):
            return dt.timedelta(0)

    with pytest.raises(SerializationError, match="tzinfo"):
        SERDES.serialize(dt.datetime(2024, 1, 1, tzinfo=Custom()), CTX)


scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True)
    | st.text()
    | st.binary()
    | st.decimals(allow_nan=False)
    | st.uuids()
    | st.datetimes(timezones=st.none() | st.timezones())
    | st.dates()
    | st.times()
    | st.timedeltas()
)
hashables = st.recursive(
    scalars.filter(lambda v: not (isinstance(v, float) and math.isnan(v))),
    lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=3),
    max_leaves=6,
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.tuples(inner, inner)
        | st.dictionaries(hashables, inner, max_size=5)
        | st.sets(hashables, max_size=4)
    ),
    max_leaves=25,
)


@settings(max_examples=700, deadline=None)
@given(values)
def test_property_round_trip_is_exact(value):
    assert same(roundtrip(value), value)


@settings(max_examples=300, deadline=None)
@given(values)
def test_property_round_trip_through_compression(value):
    assert same(
        roundtrip(value, durable_ext.serdes("msgpack+zstd", options={"zstd": {"threshold": 0}})),
        value,
    )


# Written by the first release (body layout 1): containers and datetimes as
# self-contained extension bodies. Every later release must keep reading it.
LAYOUT_1_PAYLOAD = (
    "wQFtAYuldHVwbGXHCwGTAdYBkgKheNQBkKNzZXTHAwKSAQKpZnJvemVuc2V0xwkDkqFhxwMBkgECo3V0Y9cECf9H"
    "tZbcpB+lbmFpdmXXBAAAAGhE6cUepWZpeGVk2AQCAACAx0KgHwAGLJwEAAAApHpvbmXHGAQHAACAF86WH0FtZXJp"
    "Y2EvTmV3X1lvcmukZGF0ZdYF6QcDEqR1dWlk2AlvHYo+K3xMVZoefT8LLJ5Bp2RlY2ltYWzHBwgxMjM0LjU2xwMB"
    "kgECkscMBwEAAAAAAAAAAAAAAMcNCgyfLJzQRnTt6kAAAAA="
)
LAYOUT_1_VALUE = {
    "tuple": (1, (2, "x"), ()),
    "set": {1, 2},
    "frozenset": frozenset({"a", (1, 2)}),
    "utc": dt.datetime(2025, 3, 14, 9, 26, 53, 589_793, tzinfo=dt.UTC),
    "naive": dt.datetime(1969, 7, 20, 20, 17, 40),
    "fixed": dt.datetime(
        2024, 1, 1, 12, 30, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))
    ),
    "zone": dt.datetime(2021, 11, 7, 1, 30, tzinfo=ZoneInfo("America/New_York"), fold=1),
    "date": dt.date(2025, 3, 18),
    "uuid": uuid.UUID("6f1d8a3e-2b7c-4c55-9a1e-7d3f0b2c9e41"),
    "decimal": Decimal("1234.56"),
    (1, 2): [dt.timedelta(days=1), 10**30],
}


def test_reads_payloads_of_the_first_layout():
    raw = unarmor(LAYOUT_1_PAYLOAD, "t")
    assert read_frame(raw, "t")[:2] == (b"m", 1)
    assert same(SERDES.deserialize(LAYOUT_1_PAYLOAD, CTX), LAYOUT_1_VALUE)


def _layout(value):
    return read_frame(unarmor(SERDES.serialize(value, CTX), "t"), "t")[1]


@pytest.mark.parametrize(
    "value",
    [{"a": [1, 2]}, [dt.datetime(2024, 1, 1, tzinfo=dt.UTC)], Money(Decimal(1)), b"x" * 99],
    ids=repr,
)
def test_values_without_containers_to_mark_use_the_plain_layout(value):
    assert _layout(value) == LAYOUT_PLAIN


@pytest.mark.parametrize(
    "value", [(1,), [{1, 2}], {"k": frozenset()}, {(1, 2): "tuple key"}], ids=repr
)
def test_tuples_and_sets_switch_to_the_marked_layout(value):
    assert _layout(value) == LAYOUT_MARKED
    assert same(roundtrip(value), value)


def test_a_failed_encode_does_not_leave_the_marked_flag_raised():
    with pytest.raises(SerializationError):
        SERDES.serialize((1, object()), CTX)
    assert _layout([1, 2]) == LAYOUT_PLAIN


def test_marked_body_read_as_plain_is_an_error_not_a_marker_object():
    import msgpack

    body = msgpack.packb([1, msgpack.ExtType(EXT_MARK, b"\x00")])
    plain = durable_ext.serializers.frames.armor(frame(b"m", LAYOUT_PLAIN, body))
    with pytest.raises(SerializationError, match="container marker"):
        SERDES.deserialize(plain, CTX)
    marked = durable_ext.serializers.frames.armor(frame(b"m", LAYOUT_MARKED, body))
    assert SERDES.deserialize(marked, CTX) == (1,)


def test_utc_datetimes_travel_as_msgpack_timestamps():
    import msgpack

    value = dt.datetime(2025, 1, 1, 8, tzinfo=dt.UTC)
    body = read_frame(unarmor(SERDES.serialize(value, CTX), "t"), "t")[2]
    assert msgpack.unpackb(body) == msgpack.Timestamp(1735718400)
    assert body[:2] == b"\xd6\xff"  # whole seconds: msgpack's 6-byte timestamp
    assert roundtrip(value).tzinfo is dt.UTC


@pytest.mark.parametrize("field,byte", [(4, 24), (5, 60), (6, 60), (3, 0)])
def test_out_of_range_datetime_fields_are_refused(field, byte):
    import msgpack

    state = bytearray(dt.datetime(2024, 2, 29, 1, 2, 3).__reduce_ex__(4)[1][0])
    state[field] = byte
    body = msgpack.packb(msgpack.ExtType(EXT_DATETIME_STATE, bytes(state)))
    payload = durable_ext.serializers.frames.armor(frame(b"m", LAYOUT_PLAIN, body))
    with pytest.raises(SerializationError, match="op-7"):
        SERDES.deserialize(payload, CTX)


def test_unknown_layout_zero_is_refused():
    import msgpack

    payload = durable_ext.serializers.frames.armor(frame(b"m", 0, msgpack.packb(1)))
    with pytest.raises(SerializationError, match="unknown layout 0"):
        SERDES.deserialize(payload, CTX)


def test_armor_is_unpadded_and_padded_armor_is_still_read():
    text = SERDES.serialize({"k": "vw"}, CTX)  # 10 bytes: base64 would end in "=="
    assert "=" not in text and len(text) == 14
    assert SERDES.deserialize(text + "==", CTX) == {"k": "vw"}
    with pytest.raises(SerializationError, match="op-7"):
        SERDES.deserialize(text + "AAA", CTX)  # a length of 1 mod 4 is never base64
    big = bytes(range(256)) * 20 + b"!"  # binary, above UNPADDED_MAX: base64 keeps its padding
    text = SERDES.serialize(big, CTX)
    assert text.startswith("w") and text.endswith("=") and SERDES.deserialize(text, CTX) == big


@dataclasses.dataclass
class Note:
    text: str


def test_lone_surrogates_in_nested_and_marked_values_round_trip():
    serdes = durable_ext.serdes("msgpack", types=[Note])
    value = {"\udc80key": (Note("\ud800"), {"\udfff"}), "plain": ["ok"]}
    text = serdes.serialize(value, CTX)
    assert read_frame(unarmor(text, "t"), "t")[1] == LAYOUT_MARKED
    assert same(serdes.deserialize(text, CTX), value)
    assert _layout(["no surrogates"]) == LAYOUT_PLAIN  # the retry left nothing behind


@pytest.mark.parametrize(
    "layout",
    [
        lambda mark: {"k": mark},  # a map value
        lambda mark: [mark, 1],  # not the last item
        lambda mark: mark,  # the whole body
        lambda mark: [[1, mark], mark, 2],  # one consumed, one left over
    ],
    ids=["map-value", "mid-array", "top-level", "one-left-over"],
)
def test_a_marker_out_of_place_in_a_marked_body_is_an_error(layout):
    import msgpack

    body = msgpack.packb(layout(msgpack.ExtType(EXT_MARK, b"\x00")))
    payload = durable_ext.serializers.frames.armor(frame(b"m", LAYOUT_MARKED, body))
    with pytest.raises(SerializationError, match=r"op-7.*container marker out of place"):
        SERDES.deserialize(payload, CTX)
