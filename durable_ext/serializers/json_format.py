"""A JSON format with the SDK's own type envelope, for pipelines that must stay JSON.

It writes exactly what the SDK's ``ExtendedTypeSerDes`` writes, inside a frame, so it
composes with compression, encryption and offload like any other format.
"""

from __future__ import annotations

from typing import Any, ClassVar

from aws_durable_execution_sdk_python.serdes import ExtendedTypeSerDes, SerDes

from durable_ext.errors import SerializationError, SpecError
from durable_ext.serializers.base import Role, SerDesContext
from durable_ext.serializers.limits import check_json_text

__all__ = ["JsonFormat"]

class JsonFormat:
    """The SDK's extended-type JSON, as a pipeline format."""

    name: ClassVar[str] = "json"
    role: ClassVar[Role] = "format"
    wire: ClassVar[bytes] = b"j"
    #: a value JSON carries exactly may be written as the plain JSON it reads back from
    json_exact: ClassVar[bool] = True
    version: ClassVar[int] = 1

    def __init__(self) -> None:
        self._sdk: SerDes[Any] = ExtendedTypeSerDes()  # type: ignore[no-untyped-call]

    @classmethod
    def from_spec(cls, arg: str | None, /, **options: Any) -> JsonFormat:
        """Build from a spec stage; ``json`` takes no argument or option."""
        if arg is not None or options:
            raise SpecError("the json format takes no argument or option")
        return cls()

    def encode(self, value: Any, ctx: SerDesContext) -> bytes:
        """Encode with the SDK's extended-type JSON."""
        text: str = self._sdk.serialize(value, ctx)
        return text.encode("utf-8")

    def decode(self, body: bytes, version: int, ctx: SerDesContext) -> Any:
        """Decode extended-type JSON."""
        try:
            check_json_text(body)
            return self._sdk.deserialize(bytes(body).decode("utf-8"), ctx)
        except SerializationError:
            raise
        except RecursionError:
            raise SerializationError(
                f"operation {ctx.operation_id!r}: JSON nested too deeply to decode"
            ) from None
        except Exception as exc:
            raise SerializationError(
                f"operation {ctx.operation_id!r}: corrupt JSON payload ({exc})"
            ) from exc
