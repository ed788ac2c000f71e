"""Formats that pick a body layout per value: the pipeline writes it and hands it back."""

from typing import Any, ClassVar

import pytest
from aws_durable_execution_sdk_python.serdes import SerDesContext

from durable_ext.serializers.base import Format, VersionedFormat
from durable_ext.serializers.compression import ZlibCodec
from durable_ext.serializers.frames import read_frame, unarmor
from durable_ext.serializers.pipeline import Pipeline

CTX = SerDesContext("op-v", "arn:x")


class TextFormat:
    """Layout 1 for ASCII text, layout 2 for anything else (UTF-8)."""

    name: ClassVar[str] = "text"
    role: ClassVar[str] = "format"
    wire: ClassVar[bytes] = b"txt"
    version: ClassVar[int] = 2

    def __init__(self) -> None:
        self.decoded: list[int] = []

    def encode_versioned(self, value: str, ctx: SerDesContext) -> tuple[int, bytes]:
        return (1, value.encode("ascii")) if value.isascii() else (2, value.encode())

    def encode(self, value: str, ctx: SerDesContext) -> bytes:
        return self.encode_versioned(value, ctx)[1]

    def decode(self, body: bytes, version: int, ctx: SerDesContext) -> Any:
        self.decoded.append(version)
        return body.decode("ascii" if version == 1 else "utf-8")


class PlainTextFormat(TextFormat):
    """The same without encode_versioned: every body is written at ``version``."""

    encode_versioned = None  # type: ignore[assignment]

    def encode(self, value: str, ctx: SerDesContext) -> bytes:
        return value.encode()


def test_text_format_is_a_versioned_format():
    assert isinstance(TextFormat(), VersionedFormat)
    assert isinstance(PlainTextFormat(), Format)


@pytest.mark.parametrize("codecs", [[], [ZlibCodec(threshold=0)]], ids=["bare", "zlib"])
@pytest.mark.parametrize(("value", "layout"), [("plain", 1), ("naïve", 2)])
def test_the_layout_a_format_reports_is_written_and_handed_back(codecs, value, layout):
    fmt = TextFormat()
    pipeline = Pipeline(fmt, codecs)
    text = pipeline.serialize(value, CTX)
    if not codecs:
        assert read_frame(unarmor(text, "t"), "t")[:2] == (b"txt", layout)
    assert pipeline.deserialize(text, CTX) == value
    assert fmt.decoded == [layout]


def test_formats_without_encode_versioned_write_their_version():
    fmt = PlainTextFormat()
    pipeline = Pipeline(fmt)
    text = pipeline.serialize("plain", CTX)
    assert read_frame(unarmor(text, "t"), "t")[:2] == (b"txt", 2)
    assert pipeline.deserialize(text, CTX) == "plain"
    assert fmt.decoded == [2]
