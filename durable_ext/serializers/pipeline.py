"""The pipeline: a format, codecs and an offload composed into one SDK ``SerDes``."""

from __future__ import annotations

import binascii
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from aws_durable_execution_sdk_python.exceptions import RetryableSerDesError, SerDesError
from aws_durable_execution_sdk_python.serdes import TYPE_CODEC, SerDes, TypeTag

from durable_ext.errors import (
    ConfigError,
    DisallowedContentError,
    MissingDependencyError,
    SerializationError,
    SpecError,
)
from durable_ext.observe import OBSERVERS, observed
from durable_ext.registry import SERIALIZERS
from durable_ext.serializers.base import Codec, Format, Offload, SerDesContext, Stage
from durable_ext.serializers.frames import (
    ARMOR_PREFIX,
    BUILTIN_NAMES,
    PADDING,
    TEXT_PREFIX,
    armor,
    armor_counting,
    frame,
    is_armored,
    read_frame,
    stage_name_of,
    unarmor,
)
from durable_ext.serializers.limits import (
    COUNTED_BODY_BYTES,
    DEFAULT_LIMITS,
    NOT_JSON,
    DecodeBudget,
    DecodeLimits,
    check_json_text,
    decoding,
    load_json,
)
from durable_ext.serializers.shortest import (
    FLOAT64,
    MEASURED_MAX,
    SDK_SPACED,
    armor_within_bound,
    shorter_armor,
    shorter_as_json,
    string_json_floor,
)
from durable_ext.serializers.types import TypeRegistry
from durable_ext.spec import PipelineSpec, parse_pipeline

__all__ = ["Pipeline", "build_pipeline", "serdes"]

#: the exact types whose JSON text reads back as the same value (subclasses may not)
_JSON_SCALARS = frozenset({str, int, float, bool, type(None)})

#: built-in stages a pipeline may load on its own to read old payloads; the others
#: (keys, buckets, pickle) act on the outside world and must be configured explicitly.
#: A third-party stage joins them by declaring ``self_contained = True``.
_SELF_CONTAINED = frozenset({"msgpack", "json", "zstd", "zlib", "model"})
_MAX_FRAMES = 16
_a2b = binascii.a2b_base64
_FLOAT64_BYTE = FLOAT64[0]


class Pipeline(SerDes[Any]):
    """An SDK ``SerDes`` made of one format, codecs in order, and an optional offload.

    A ``fields`` stage (:mod:`durable_ext.serializers.fields`) may follow the format: it
    encrypts or redacts chosen fields of the value before the format encodes it.

    ``serialize`` returns a ``str``: text armor (one character per byte, see
    :mod:`~durable_ext.serializers.frames`), base64, or exact JSON. ``deserialize``
    follows the frames in the payload, so it reads everything any pipeline wrote (stages
    missing here are loaded by name from the registry), and it also reads the SDK's own
    JSON payloads, so a function can switch serializers with executions in flight.

    Example:
        >>> from durable_ext.serializers.msgpack_format import MsgpackFormat
        >>> from durable_ext.serializers.compression import ZstdCodec
        >>> p = Pipeline(MsgpackFormat(), [ZstdCodec(level=9)])
        >>> p
        Pipeline('msgpack+zstd')

    """

    def __init__(
        self,
        format: Format,
        codecs: Iterable[Codec] = (),
        offload: Offload | None = None,
        *,
        options: Mapping[str, Mapping[str, Any]] | None = None,
        accept_foreign: bool = True,
        allowed: Iterable[str] | None = None,
        limits: DecodeLimits | Mapping[str, int] | None = None,
        fields: Any = None,
    ) -> None:
        self.format = format
        self.fields = fields
        self.codecs = tuple(codecs)
        self.offload = offload
        self.accept_foreign = accept_foreign
        self.limits = DecodeLimits.coerce(limits)
        self._max_bytes = self.limits.max_bytes
        self._options = {k: dict(v) for k, v in (options or {}).items()}
        _check_role(format, "format", 0)
        if fields is not None:
            _check_role(fields, "fields", 1)
            if not hasattr(format, "sealed_mark"):
                raise SpecError(
                    f"the fields stage needs the msgpack or model format, not {format.name!r}"
                )
            fields.check_format(format)
        for i, c in enumerate(self.codecs, 1):
            _check_role(c, "codec", i)
        if offload is not None:
            _check_role(offload, "offload", len(self.codecs) + 1)
        stages: list[Stage] = [format, *([fields] if fields is not None else []), *self.codecs,
                               *([offload] if offload else [])]
        self._by_wire: dict[bytes, Stage] = {}
        #: how often a frame id may occur in one payload: as often as this pipeline uses the
        #: stage, and once for stages it only reads (no chain of nested bombs)
        self._repeats: dict[bytes, int] = {}
        for st in stages:
            # A stage decodes the frames of its class; frames it writes under another id (zstd
            # writing zlib frames without zstandard) are read by the stage owning that id.
            wire = type(st).wire
            self._by_wire[wire] = st
            self._repeats[wire] = self._repeats.get(wire, 0) + 1
            if st.wire != wire:
                self._repeats[st.wire] = self._repeats.get(st.wire, 0) + 1
        # Pickle can run code on decode: a payload may only use it if this pipeline does.
        self._allowed = set(allowed) if allowed is not None else None
        self._forbidden = {"pickle"} - {st.name for st in stages}
        # Formats whose body layout varies per value say which one each body uses, and
        # formats that can tell say whether JSON may carry the value at all.
        self._encode_format: Callable[[Any, SerDesContext], tuple[int, bytes]] = getattr(
            format, "encode_versioned", None
        ) or (lambda value, ctx: (format.version, format.encode(value, ctx)))
        self._encode_layout: Callable[[Any, SerDesContext], tuple[int, bytes, bool]] = getattr(
            format, "encode_layout", None
        ) or (lambda value, ctx: (*self._encode_format(value, ctx), True))
        self._format_headers = tuple(frame(format.wire, v, b"") for v in range(format.version + 1))
        # Hot path: a payload that is a bare frame of this pipeline's format, by its header.
        self._format_versions = {h: v for v, h in enumerate(self._format_headers)}
        self._format_header_size = len(self._format_headers[0])
        self._decode_whole: Callable[[bytes, int, SerDesContext], Any] = getattr(
            format, "decode_whole", None) or format.decode
        self._simple = not self.codecs and offload is None and fields is None
        #: the format alone under the default limits: serialize's short path
        self._bare = self._simple and self.limits == DEFAULT_LIMITS
        #: ids of the codec frames that are binary by construction (compressed, encrypted)
        self._opaque_wires = frozenset(
            c.wire for c in self.codecs if getattr(c, "opaque", False) is True)
        # Compression may be left out when it does not shorten the string; encryption and
        # offload may not. A pipeline that reads plain JSON may write it (see shortest),
        # when its format says JSON carries its values exactly (not a signed format).
        self._skippable = offload is None and all(
            getattr(c, "skippable", False) is True for c in self.codecs
        )
        # Never with fields: the JSON would be the value as given, protected fields and all.
        self._json_ok = (self._skippable and accept_foreign and fields is None
                         and getattr(format, "json_exact", False) is True)
        #: the layout whose bodies are compact ASCII JSON of the value, written unframed
        self._plain_layout: int | None = getattr(format, "plain_json_layout", None)
        self._plain_json = self._plain_layout is not None and self._simple
        # The fast path decodes a bare format frame with the default limits and no budget
        # object, for strings small enough that their bytes bound what they decode to
        # (COUNTED_BODY_BYTES); larger strings and other limits go through the slow path,
        # which makes the payload's budget current.
        self._fast_max = COUNTED_BODY_BYTES if self.limits == DEFAULT_LIMITS else -1

    def __repr__(self) -> str:
        return f"Pipeline({self._spec_text()!r})"

    def _spec_text(self) -> str:
        names = [self.format.name, *([self.fields.name] if self.fields is not None else []),
                 *(c.name for c in self.codecs)]
        if self.offload is not None:
            names.append(self.offload.name)
        return "+".join(names)

    # -- SDK SerDes -----------------------------------------------------------------

    def serialize(self, value: Any, serdes_context: SerDesContext, _observe: bool = True) -> str:
        """Encode ``value`` into the checkpoint string.

        A payload that would decode to more than ``limits.max_bytes`` is refused here, so
        the pipeline never stores what it would refuse to read.
        """
        # An observer runs this again inside its span, unobserved (one frame less on the
        # hot path than a separate unobserved method: a Python call is a good part of a
        # small payload's cost).
        if _observe and OBSERVERS and (
            obs := observed(serdes_context.durable_execution_arn)
        ) is not None:
            text: str = self._observed(obs, "serialize", value, serdes_context)
            return text
        if self._bare:
            version, body, maybe_json = self._encode_layout(value, serdes_context)
            layered = data = self._format_headers[version] + body
            produced = len(data)
            if not maybe_json and produced <= self._max_bytes:
                return armor(data, type(value) is bytes)  # no JSON carries it: one armor
        else:
            version, body, maybe_json, data, layered, produced = self._encode_chain(
                value, serdes_context)
        if produced > self._max_bytes:
            raise SerializationError(
                f"operation {serdes_context.operation_id!r}: the payload decodes through "
                f"{produced} bytes, over the decode limit of {self.limits.max_bytes} bytes "
                "(max_bytes); raise it with limits={'max_bytes': N} on every pipeline "
                "that reads it"
            )
        if not (self._json_ok and maybe_json):
            if layered is data:
                return armor(data, type(value) is bytes)
            return self._armor(data, layered)
        if self._plain_json and version == self._plain_layout and not _envelope_like(value):
            plain = body.decode("ascii")
            if self._readable_json(plain):
                return plain  # JSON text every reader reads as this value, unframed
        if type(value) in _JSON_SCALARS:
            return self._scalar_as_json(value, self._armor(data, layered))
        # A short body is counted at once (a search costs more than the few bytes it saves
        # on); a long one is searched first (memchr; counting goes byte by byte), then its
        # floats are counted by the text test, in the bytes it keeps.
        if produced <= MEASURED_MAX:
            floats = body.count(FLOAT64)
            if not floats:
                return self._armor(data, layered)
            if layered is data:
                short = armor_within_bound(body, data, floats)
                if short is not None:
                    return short
            text = self._armor(data, layered)
        elif _FLOAT64_BYTE not in body:  # an int: a bytes needle costs a caught TypeError
            return self._armor(data, layered)
        elif layered is data:
            # the frame's header holds no float marker: counted in the frame, as in the body
            text, floats = armor_counting(data, FLOAT64)
        else:
            floats = body.count(FLOAT64)
            text = self._armor(data, layered)
        chosen = shorter_as_json(value, version, body, text, data, self._encode_format,
                                 serdes_context, floats)
        if chosen is not text and not self._readable_json(chosen):
            return text
        return chosen

    def _armor(self, data: bytes, layered: bytes) -> str:
        # Compression may be dropped where it does not shorten the string; nothing else may.
        if layered is data:
            return armor(data)
        # A chain ending in a compressed or encrypted frame is binary: no text test.
        opaque = layered[2:2 + layered[1]] in self._opaque_wires
        if self._skippable:
            return shorter_armor(data, layered, opaque)
        return armor(layered, opaque)

    def _encode_chain(
        self, value: Any, ctx: SerDesContext
    ) -> tuple[int, bytes, bool, bytes, bytes, int]:
        # The format's layout, body and JSON hint; the format frame (inside a fields frame
        # if any); the whole chain; the bytes decoding it produces.
        sealed: bytes | None = None
        unsealed = 0
        if self.fields is not None:
            value, sealed, unsealed = self.fields.protect(value, ctx, self.format)
        if self._fast_max < 0:
            with decoding(DecodeBudget(self.limits)):
                version, body, maybe_json = self._encode_layout(value, ctx)
        else:
            version, body, maybe_json = self._encode_layout(value, ctx)
        data = self._format_headers[version] + body
        if sealed is not None:
            data = frame(self.fields.wire, self.fields.version, sealed + data)
            data_produced = len(data) + unsealed
        else:
            data_produced = len(data)
        if self._simple:
            return version, body, maybe_json, data, data, data_produced
        layered, produced = self._encode_layers(data, ctx)
        return version, body, maybe_json, data, layered, produced + data_produced - len(data)

    def _observed(self, obs: Any, direction: str, value: Any, ctx: SerDesContext) -> Any:
        # Apart from serialize and deserialize, whose lambdas would make their arguments
        # closure cells on every call, observed or not. The size is the checkpoint's.
        run = getattr(self, direction)
        if direction == "serialize":
            size: Callable[[Any], int] = len
        else:
            given = len(value) if isinstance(value, str) else 0
            size = lambda _: given  # noqa: E731
        return obs.serializer(direction, self._spec_text(), ctx.operation_id,
                              lambda: run(value, ctx, False), size)

    def _scalar_as_json(self, value: Any, text: str) -> str:
        # A bare string, number, bool or None reads back from JSON as itself: written as
        # JSON when no longer, it is what a reader expecting the SDK's JSON sees
        # (json.loads of a step's result), and shorter besides.
        if type(value) is str and len(text) < string_json_floor(value, len(text)):
            return text  # the armor is shorter than any JSON of the string: not encoded
        try:
            candidate = SDK_SPACED(value)
        except ValueError:
            return text  # NaN and Infinity are not JSON
        if len(candidate) <= len(text) and self._readable_json(candidate):
            return candidate
        return text

    def _readable_json(self, text: str) -> bool:
        # JSON text is read within the limits by its brackets (strings' included): JSON a
        # reader would refuse is never written in place of the armored payload.
        if len(text) <= COUNTED_BODY_BYTES:
            return True  # its length bounds it (check_json_text counts nothing shorter)
        try:
            with decoding(DecodeBudget(self.limits)):
                check_json_text(text)
        except SerializationError:
            return False
        return True

    def _encode_layers(self, data: bytes, ctx: SerDesContext) -> tuple[bytes, int]:
        # Returns the frame chain and the bytes decoding it will produce: every frame in
        # the chain, as the decoder charges them to the payload's budget.
        produced = len(data)
        for codec in self.codecs:
            body = codec.encode(data, ctx)
            if body is not None:
                data = frame(codec.wire, codec.version, body)
                produced += len(data)
        if self.offload is not None:
            body = self.offload.store(data, ctx)
            if body is not None:
                data = frame(self.offload.wire, self.offload.version, body)
                produced += len(data)
        return data, produced

    def deserialize(self, data: str, serdes_context: SerDesContext, _observe: bool = True) -> Any:
        """Decode a checkpoint string written by any pipeline, or by the SDK's JSON."""
        if _observe and OBSERVERS and (
            obs := observed(serdes_context.durable_execution_arn)
        ) is not None:
            return self._observed(obs, "deserialize", data, serdes_context)
        if type(data) is str and len(data) <= self._fast_max:
            first = data[:1]
            try:
                if first == ARMOR_PREFIX:
                    raw = _a2b(data + PADDING[len(data) & 3], strict_mode=True)
                elif first == TEXT_PREFIX:
                    raw = data.encode("latin-1")
                else:
                    raw = b""
            except ValueError:  # binascii.Error and UnicodeEncodeError are ValueErrors
                raw = b""  # not the armor it looks like after all: the slow path says why
            n = self._format_header_size
            version = self._format_versions.get(raw[:n])
            if version is not None:
                return self._decode_whole(raw[n:], version, serdes_context)
            # A chain of frames: its bytes are not unarmored a second time.
            return self._deserialize_slow(data, serdes_context, raw or None)
        return self._deserialize_slow(data, serdes_context)

    def _deserialize_slow(self, data: str, ctx: SerDesContext, raw: bytes | None = None) -> Any:
        # ``raw`` is the payload unarmored, when the fast path did it already.
        where = f"operation {ctx.operation_id!r}"
        if not isinstance(data, str):
            raise SerializationError(f"{where}: expected a str payload, got {type(data).__name__}")
        budget = DecodeBudget(self.limits, where)
        # A str of n characters is at least n bytes of text, and 3n/4 bytes of base64.
        armored = is_armored(data)
        budget.charge(
            len(data) * 3 // 4 if data[:1] == ARMOR_PREFIX else len(data),
            "the armored payload" if armored else "the payload",
        )
        with decoding(budget):
            if not armored:
                return self._foreign(data, where)
            return self._decode_frames(unarmor(data, where) if raw is None else raw, budget, ctx)

    def _decode_frames(self, raw: bytes, budget: DecodeBudget, ctx: SerDesContext) -> Any:
        where = budget.where
        seen: dict[bytes, int] = {}
        for _ in range(_MAX_FRAMES):
            wire, version, body = read_frame(raw, where)
            seen[wire] = seen.get(wire, 0) + 1
            if seen[wire] > self._repeats.get(wire, 1):
                raise DisallowedContentError(
                    f"{where}: payload nests stage id {wire[:32]!r} {seen[wire]} times; this "
                    f"pipeline writes it at most {self._repeats.get(wire, 1)} times"
                )
            stage = self._stage_for(wire, where)
            try:
                if stage.role == "format":
                    return stage.decode(body, version, ctx)  # type: ignore[attr-defined]
                if stage.role == "fields":
                    return stage.open(body, version, ctx,  # type: ignore[attr-defined]
                                      self._stage_for)
                if stage.role == "offload":
                    raw = stage.load(body, version, ctx)  # type: ignore[attr-defined]
                else:
                    raw = stage.decode(body, version, ctx)  # type: ignore[attr-defined]
            except (SerDesError, RetryableSerDesError):
                raise
            except RecursionError:
                raise budget.too_deep(f"stage {stage.name!r}") from None
            except Exception as exc:
                raise SerializationError(
                    f"{where}: stage {stage.name!r} failed to decode ({type(exc).__name__}: {exc})"
                ) from exc
            budget.charge(len(raw), f"the output of stage {stage.name!r}")
        raise SerializationError(f"{where}: more than {_MAX_FRAMES} nested frames")

    # -- helpers --------------------------------------------------------------------

    def _stage_for(self, wire: bytes, where: str) -> Stage:
        """Return the stage that decodes frames of id ``wire``; the one place deciding which may.

        A stage this pipeline is configured with (in its spec or its ``options``) decodes
        its frames; any other stage only if it is self-contained (acts on nothing outside
        the payload). An id must be the stage's one canonical id: a built-in stage spelled
        by its name (``s3`` for ``s``) is as unknown as a made-up id.
        """
        stage = self._by_wire.get(wire)
        if stage is not None:
            return stage
        name = stage_name_of(wire)
        if name is None:
            raise SerializationError(f"{where}: payload uses unknown stage id {wire[:32]!r}")
        if name in self._forbidden or (self._allowed is not None and name not in self._allowed):
            raise self._not_configured(name, where)
        cls = self._load_stage(name, where)
        if getattr(cls, "wire", None) != wire:
            raise SerializationError(f"{where}: payload uses unknown stage id {wire[:32]!r}")
        self_contained = (
            name in _SELF_CONTAINED
            if name in BUILTIN_NAMES
            else getattr(cls, "self_contained", False) is True
        )
        if not self_contained and name not in self._options:
            raise self._not_configured(name, where)
        try:
            stage = cls.from_spec(None, **self._options.get(name, {}))
            if getattr(stage, "role", None) not in ("format", "fields", "codec", "offload"):
                raise TypeError(f"{cls!r} is not a serializer stage")
        except Exception as exc:
            raise SerializationError(
                f"{where}: payload uses stage {name!r}, which cannot be built here ({exc})"
            ) from exc
        self._by_wire[wire] = stage
        return stage  # type: ignore[no-any-return]

    @staticmethod
    def _load_stage(name: str, where: str) -> Any:
        try:
            return SERIALIZERS.load(name)
        except MissingDependencyError as exc:
            raise SerializationError(f"{where}: cannot decode stage {name!r}: {exc}") from exc
        except Exception as exc:
            raise SerializationError(
                f"{where}: payload uses unknown or unusable stage {name!r} ({exc})"
            ) from exc

    @staticmethod
    def _not_configured(name: str, where: str) -> DisallowedContentError:
        return DisallowedContentError(
            f"{where}: payload uses stage {name!r}, which this pipeline is not configured "
            f"for; add it to the spec or pass options={{{name!r}: {{...}}}}"
        )

    def _foreign(self, data: str, where: str) -> Any:
        if not self.accept_foreign:
            raise SerializationError(f"{where}: payload was not written by durable_ext")
        obj = load_json(data, where)
        if obj is NOT_JSON:
            raise SerializationError(
                f"{where}: payload is neither a durable_ext payload nor JSON; "
                f"it starts with {data[:20]!r}"
            )
        if isinstance(obj, dict) and len(obj) == 2 and "t" in obj and "v" in obj:
            return self._sdk_envelope(obj, where)
        return obj

    def _sdk_envelope(self, obj: dict[str, Any], where: str) -> Any:
        # Decoded from the object already parsed (and bounded by load_json), not re-read
        # from the text: the SDK's own decoder would parse it again without those bounds.
        try:
            tag = TypeTag(obj["t"])
        except (ValueError, TypeError):
            return obj  # plain JSON that merely looks like the SDK's envelope
        try:
            return TYPE_CODEC.decode(tag, obj["v"])
        except RecursionError:
            raise DecodeBudget(self.limits, where).too_deep("the JSON envelope") from None
        except Exception as exc:
            raise SerializationError(
                f"{where}: malformed SDK JSON envelope of type {tag.value!r}: {exc}"
            ) from exc


def _envelope_like(value: Any) -> bool:
    # A two-key {"t", "v"} object reads back as the SDK's type envelope.
    return type(value) is dict and len(value) == 2 and "t" in value and "v" in value


def _check_role(stage: Any, role: str, index: int) -> None:
    actual = getattr(stage, "role", None)
    if actual != role:
        name = getattr(stage, "name", type(stage).__name__)
        where = "first" if index == 0 else f"at position {index}"
        raise SpecError(
            f"stage {name!r} ({actual}) cannot be {where} of a pipeline: expected a {role}; "
            "a pipeline is one format, an optional fields stage, then codecs, then at most "
            "one offload"
        )


def build_pipeline(
    spec: str | PipelineSpec,
    *,
    types: TypeRegistry | Iterable[type] | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    limits: DecodeLimits | Mapping[str, int] | None = None,
) -> Pipeline:
    """Build a :class:`Pipeline` from a spec such as ``"msgpack+zstd+kms:alias/x"``.

    ``options`` maps a stage name to keyword arguments for it (clients, levels,
    thresholds); ``types`` are classes the format may carry; ``limits`` bound what one
    payload may cost to decode (:class:`~durable_ext.serializers.limits.DecodeLimits`).

    Example:
        >>> build_pipeline("msgpack+zstd:9", options={"zstd": {"threshold": 64}})
        Pipeline('msgpack+zstd')

    """
    parsed = parse_pipeline(spec)
    options = {k: dict(v) for k, v in (options or {}).items()}
    unknown = set(options) - {s.name for s in parsed.stages} - set(SERIALIZERS.names())
    if unknown:
        raise ConfigError(f"options given for stages not in {str(parsed)!r}: {sorted(unknown)}")
    stages: list[Any] = []
    for i, st in enumerate(parsed.stages):
        cls = SERIALIZERS.load(st.name)
        opts = dict(options.get(st.name, {}))
        if types is not None and i == 0:
            opts.setdefault("types", types)
        try:
            stages.append(cls.from_spec(st.arg, **opts))
        except TypeError as exc:
            raise ConfigError(f"stage {st.name!r}: {exc}") from None
    fmt, rest = stages[0], stages[1:]
    fields = rest.pop(0) if rest and getattr(rest[0], "role", None) == "fields" else None
    offload = rest.pop() if rest and getattr(rest[-1], "role", None) == "offload" else None
    return Pipeline(fmt, rest, offload, options=options, limits=limits, fields=fields)


def serdes(
    spec: str | PipelineSpec = "msgpack",
    *,
    types: TypeRegistry | Iterable[type] | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    limits: DecodeLimits | Mapping[str, int] | None = None,
) -> Pipeline:
    """Return an SDK ``SerDes`` for ``spec``; pass it as ``serdes=`` to any operation.

    Example:
        >>> from aws_durable_execution_sdk_python.config import StepConfig
        >>> StepConfig(serdes=serdes("msgpack+zstd")).serdes
        Pipeline('msgpack+zstd')

    """
    return build_pipeline(spec, types=types, options=options, limits=limits)
