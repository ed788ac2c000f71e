"""Field-level protection (``fields``): encrypt or redact chosen fields, keep the rest readable.

The stage sits right after the format::

    msgpack+fields:kms=alias/pii;paths=customer.email,cards[*].number;redact=customer.ssn

and selects fields by path (grammar in :mod:`durable_ext.serializers._field_paths`), by a
predicate, or by markers on model and dataclass fields (:data:`ENCRYPT`, :data:`REDACT`,
``Field(json_schema_extra={"durable_ext": "encrypt"})``,
``field(metadata={"durable_ext": "redact"})``). Everything else stays plain: the console,
the history and the CLI show it as the format wrote it.

**Encrypted fields** are taken out of the value and sealed together, as one list encoded by
the format (so every type the format keeps is kept), with the ``kms`` or ``localkey``
envelope codec: the same data keys and cache, one AES-256-GCM message per payload. Each
field's place holds ``None``, or inside an object a mark the format tells apart from any
value (it builds the object once the field is back). The associated data binds the
execution ARN, the operation id, the selecting patterns and the concrete path of every
sealed field, as the decoder finds them in the payload: a field moved to another path (a
key renamed, an item moved, one added or removed), another operation or another execution
does not decrypt, and a plain value where a field should be, or a mark the patterns do not
select, is refused.

**Redacted fields** are replaced by :class:`Redacted`, ``redacted:KEYID:HEX``: the
HMAC-SHA256 under a configured key of the value's encoding. Equal values give equal hashes
(:meth:`FieldsStage.redact_value` computes one to compare with); nothing gives the value
back, and decoding one never fails or needs a key.

Frame body (version 1)::

    codec id length (1) | codec id | patterns length (4) | patterns (msgpack)
    | envelope length (4) | envelope (the codec's frame body) | the format's frame

The envelope holds a format frame of the list of sealed values. Decoding checks, before
anything is decrypted, that the patterns select exactly the marks the payload holds.
"""

from __future__ import annotations

import datetime as dt
import hmac
import os
import struct
import threading
import uuid
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any, ClassVar, Final

from durable_ext._deps import require
from durable_ext.errors import (
    ConfigError,
    DisallowedContentError,
    IntegrityError,
    SerializationError,
    SpecError,
)
from durable_ext.serializers._field_marks import (
    OPEN,
    SEALED,
    VIEWING,
    Deferred,
    EncryptedField,
    OpenFields,
    RawObject,
    Redacted,
)
from durable_ext.serializers._field_models import METADATA_KEY, FieldMark, Mode, marks_of
from durable_ext.serializers._field_paths import (
    STEPS,
    Container,
    Finder,
    Path,
    Pattern,
    Sealer,
    Steps,
    compile_patterns,
    format_path,
    pack_patterns,
    parse_paths,
    unpack_patterns,
    walk,
)
from durable_ext.serializers._signing import SigningKey, parse_keys
from durable_ext.serializers.base import Role, SerDesContext
from durable_ext.serializers.frames import frame, read_frame
from durable_ext.serializers.limits import current_budget

msgpack = require("msgpack", extra="msgpack", feature="the fields stage")

__all__ = [
    "ENCRYPT",
    "METADATA_KEY",
    "REDACT",
    "REDACT_KEY_ENV",
    "EncryptedField",
    "FieldMark",
    "FieldsStage",
    "Redacted",
]

#: environment variable holding the redaction key (``[ID:]BASE64``)
REDACT_KEY_ENV = "DURABLE_EXT_REDACT_KEY"
_REDACT_DOMAIN = b"durable-ext/redact/1\x00"
_MAX_PATTERNS = 4096
_U32 = struct.Struct(">I")
_FIELDS_PREFIX = frame(b"F", 1, b"")


#: ``Annotated[str, ENCRYPT]``: encrypt this field wherever the model is stored
ENCRYPT: Final = FieldMark("encrypt")
#: ``Annotated[str, REDACT]``: store only a keyed hash of this field
REDACT: Final = FieldMark("redact")


class FieldsStage:
    """Encrypt or redact selected fields of each value; leave the others plain.

    Args:
        paths: fields to encrypt: ``"a.b,c[*].d"`` or a list of such paths.
        redact: fields to redact (keyed hash), same forms.
        predicate: ``(path, value) -> "encrypt" | "redact" | None`` for every node not
            selected otherwise (``path`` is a tuple of keys and positions).
        models: honour :data:`ENCRYPT` / :data:`REDACT` marks (and the ``durable_ext``
            key of ``json_schema_extra`` / dataclass ``metadata``) on the fields of
            registered models and dataclasses.
        kms: a KMS key (id, ARN, alias) to encrypt with, or ``True`` for
            ``DURABLE_EXT_KMS_KEY_ID`` / decrypt only.
        localkey: ``True`` or a key id: a local development key (see ``localkey``).
        codec: an envelope codec to use instead (a ``KmsCodec`` or ``LocalKeyCodec``,
            e.g. sharing a whole-payload stage's data-key cache).
        redact_key: the HMAC key of redaction: bytes (32+), ``[ID:]BASE64`` text; default
            ``DURABLE_EXT_REDACT_KEY``.
        **codec_options: options of the ``kms`` / ``localkey`` codec (``client``,
            ``cache``, ``key``, ``encryption_context``...).

    Example:
        >>> import durable_ext
        >>> durable_ext.serdes("msgpack+fields:localkey;paths=customer.email",
        ...                    options={"fields": {"key": b"k" * 32}})
        Pipeline('msgpack+fields')

    """

    name: ClassVar[str] = "fields"
    role: ClassVar[Role] = "fields"
    wire: ClassVar[bytes] = b"F"
    version: ClassVar[int] = 1

    def __init__(self, paths: str | Iterable[str] = (), *, redact: str | Iterable[str] = (),
                 predicate: Callable[[Path, Any], Mode | None] | None = None,
                 models: bool = True, kms: str | bool | None = None,
                 localkey: str | bool | None = None, codec: Any = None,
                 redact_key: bytes | str | None = None, **codec_options: Any) -> None:
        self.patterns: tuple[Pattern, ...] = parse_paths(paths, "fields paths") if paths else ()
        self.redact_patterns: tuple[Pattern, ...] = (
            parse_paths(redact, "fields redact") if redact else ())
        if predicate is not None and not callable(predicate):
            raise ConfigError("fields: predicate must be callable (path, value) -> mode")
        self.predicate = predicate
        self.models = bool(models)
        self.codec = _make_codec(kms, localkey, codec, codec_options)
        if self.patterns and self.codec is None:
            raise ConfigError(
                "fields: paths to encrypt need a key: write 'fields:kms=KEY;paths=...' or "
                "'fields:localkey;paths=...', or pass codec=..."
            )
        self._redact_key = _redact_key(redact_key, required=bool(self.redact_patterns))
        self._trie = compile_patterns(self.patterns) if self.patterns else None
        self._redact_trie = (compile_patterns(self.redact_patterns)
                             if self.redact_patterns else None)
        self._packed_patterns = _packb(pack_patterns(self.patterns)) if self.patterns else b""
        self._marks: dict[type, tuple[tuple[Pattern, Mode], ...]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (f"FieldsStage(paths={[format_path(p) for p in self.patterns]!r}, "
                f"redact={[format_path(p) for p in self.redact_patterns]!r}, "
                f"codec={self.codec!r})")

    @classmethod
    def from_spec(cls, arg: str | None, /, **options: Any) -> FieldsStage:
        """``fields:kms=KEY;paths=a.b,c[*].d;redact=e`` (``localkey[=ID]`` for local keys)."""
        spec: dict[str, Any] = {}
        for part in (arg or "").split(";") if arg else ():
            key, sep, value = part.partition("=")
            key = key.strip()
            if sep and not value.strip():
                raise SpecError(f"fields: {key}= needs a value")
            if key not in ("kms", "localkey", "paths", "redact"):
                raise SpecError(f"fields: unknown spec option {key!r}; known: kms=KEY, "
                                "localkey[=ID], paths=..., redact=...")
            if key in spec:
                raise SpecError(f"fields: {key!r} is given twice in the spec")
            if not sep:
                if key in ("paths", "redact"):
                    raise SpecError(f"fields: {key} needs a value: {key}=a.b,c[*].d")
                spec[key] = True
            else:
                spec[key] = value.strip()
        clash = set(spec) & set(options)
        if clash:
            raise ConfigError(f"fields: {sorted(clash)} given both in the spec and as options")
        return cls(**spec, **options)

    # -- encoding -------------------------------------------------------------------

    def protect(self, value: Any, ctx: SerDesContext, fmt: Any) -> tuple[Any, bytes | None, int]:
        """Redact and seal the selected fields of ``value``.

        Returns the value to encode (marks in place of sealed fields), the frame body
        prefix to write before the format's frame (``None`` when nothing was sealed: no
        frame at all) and the bytes decoding the prefix will produce.
        """
        token = STEPS.set(Steps(current_budget().limits.max_items))
        try:
            return self._protect(value, ctx, fmt)
        finally:
            STEPS.reset(token)

    def _protect(self, value: Any, ctx: SerDesContext,
                 fmt: Any) -> tuple[Any, bytes | None, int]:
        container = _encode_container(fmt)
        encrypt: list[Pattern] = list(self.patterns)
        redact: list[Pattern] = list(self.redact_patterns)
        if self.predicate is not None or (self.models and self._has_marks(fmt)):
            found_enc, found_red = self._scan(value, container, fmt)
            encrypt += [p for p in found_enc if p not in self.patterns]
            redact += [p for p in found_red if p not in self.redact_patterns]
        if redact:
            trie = self._redact_trie if len(redact) == len(self.redact_patterns) else None
            key = self._redact_key
            if key is None:
                raise SerializationError(
                    f"operation {ctx.operation_id!r}: fields marked for redaction but no "
                    f"redaction key: set {REDACT_KEY_ENV} or pass redact_key=..."
                )
            value = walk(value, [trie or compile_patterns(redact)], (),
                         lambda v, *_: self._redacted(v, ctx, fmt, key), container)
        if not encrypt:
            return value, None, 0
        if self.codec is None:
            raise SerializationError(
                f"operation {ctx.operation_id!r}: fields marked for encryption but the fields "
                "stage has no key (kms=..., localkey or codec=...)"
            )
        trie = self._trie if len(encrypt) == len(self.patterns) else compile_patterns(encrypt)
        packed = (self._packed_patterns if trie is self._trie
                  else _packb(pack_patterns(encrypt)))
        sealer = Sealer(fmt.sealed_mark)
        assert trie is not None
        value = walk(value, [trie], (), sealer, container)
        paths, values = sealer.paths, sealer.values
        if not paths:
            return value, None, 0
        version, body = fmt.encode_versioned(values, ctx)
        vault = frame(fmt.wire, version, body)
        aad = _aad(packed, paths)
        envelope = self.codec.encode(vault, ctx, aad)
        wire = self.codec.wire
        prefix = b"".join((bytes((len(wire),)), wire, _U32.pack(len(packed)), packed,
                           _U32.pack(len(envelope)), envelope))
        return value, prefix, len(vault)

    def _redacted(self, value: Any, ctx: SerDesContext, fmt: Any, key: SigningKey) -> Any:
        if type(value) is Redacted:
            return value
        return Redacted(key.key_id, self._digest(value, ctx, fmt, key))

    @staticmethod
    def _digest(value: Any, ctx: SerDesContext, fmt: Any, key: SigningKey) -> bytes:
        version, body = fmt.encode_versioned(value, ctx)
        return hmac.digest(key.secret, _REDACT_DOMAIN + frame(fmt.wire, version, body), "sha256")

    def redact_value(self, value: Any, fmt: Any = None) -> Redacted:
        """Return what ``value`` is stored as when redacted, to compare with a stored one.

        Example:
            >>> stage = FieldsStage(redact="ssn", redact_key=b"r" * 32)
            >>> stage.redact_value("123-45-6789") == stage.redact_value("123-45-6789")
            True

        """
        if self._redact_key is None:
            raise ConfigError(f"fields: no redaction key: set {REDACT_KEY_ENV} or pass "
                              "redact_key=...")
        if fmt is None:
            from durable_ext.serializers.msgpack_format import MsgpackFormat

            fmt = MsgpackFormat()
        return Redacted(self._redact_key.key_id,
                        self._digest(value, SerDesContext(), fmt, self._redact_key))

    def check_format(self, fmt: Any) -> None:
        """Refuse, when the pipeline is built, marks this stage has no key for."""
        registry = getattr(fmt, "models", None) or getattr(fmt, "types", None)
        modes = {m for c in list(registry or ()) for _, m in self._class_marks(c)} \
            if self.models else set()
        if "encrypt" in modes and self.codec is None:
            raise ConfigError("fields: registered classes mark fields for encryption but the "
                              "fields stage has no key: write 'fields:kms=KEY' or "
                              "'fields:localkey', or pass codec=...")
        if "redact" in modes and self._redact_key is None:
            raise ConfigError(f"fields: registered classes mark fields for redaction but "
                              f"there is no redaction key: set {REDACT_KEY_ENV} or pass "
                              "redact_key=...")

    # -- selection by predicate and by marks on classes -----------------------------------

    def _has_marks(self, fmt: Any) -> bool:
        registry = getattr(fmt, "models", None) or getattr(fmt, "types", None)
        if registry is None:
            return False
        return any(self._class_marks(c) for c in list(registry))

    def _class_marks(self, cls: type) -> tuple[tuple[Pattern, Mode], ...]:
        known = self._marks.get(cls)
        if known is None:
            known = tuple(marks_of(cls))
            with self._lock:
                self._marks[cls] = known
        return known

    def _scan(self, value: Any, container: Callable[[Any], Container | None],
              fmt: Any) -> tuple[list[Pattern], list[Pattern]]:
        enc: dict[Path, None] = {}
        red: dict[Path, None] = {}
        budget = [_MAX_SCAN_NODES]

        def visit(node: Any, path: Path, depth: int) -> None:
            budget[0] -= 1
            if budget[0] < 0 or depth > 64:
                raise SerializationError("fields: value too large or deep to scan for marked "
                                         "fields (use paths=...)")
            if self.predicate is not None and path:
                mode = self.predicate(path, node)
                if mode in ("encrypt", "redact"):
                    (enc if mode == "encrypt" else red)[path] = None
                    return
                if mode is not None:
                    raise ConfigError(f"fields: predicate returned {mode!r}; expected "
                                      "'encrypt', 'redact' or None")
            c = container(node)
            if c is None:
                return
            kind, items, _, _ = c
            if kind == "map" and self.models and type(node) is not dict:
                for pattern, mode in self._class_marks(type(node)):
                    target = enc if mode == "encrypt" else red

                    def hit(v: Any, p: Path, _parent: Any, _key: Any,
                            target: dict[Path, None] = target) -> Any:
                        target[p] = None
                        return v

                    walk(node, [compile_patterns([pattern])], path, hit, container)
            if kind == "batch":
                for i, item in enumerate(items.get("all") or ()):
                    if isinstance(item, dict) and "result" in item:
                        visit(item["result"], (*path, "all", i, "result"), depth + 1)
                return
            keys = items if kind == "map" else range(len(items))
            for k in keys:
                if type(k) is str or type(k) is int:
                    child = (*path, k)
                    if child not in enc and child not in red:
                        visit(items[k], child, depth + 1)

        visit(value, (), 0)
        return [tuple(p) for p in enc], [tuple(p) for p in red]

    # -- decoding -------------------------------------------------------------------

    def open(self, body: bytes, version: int, ctx: SerDesContext,
             format_for: Callable[[bytes, str], Any]) -> Any:
        """Decode a fields frame: its format's frame, then the sealed fields put back."""
        token = STEPS.set(Steps(current_budget().limits.max_items))
        try:
            return self._open(body, version, ctx, format_for)
        finally:
            STEPS.reset(token)

    def _open(self, body: bytes, version: int, ctx: SerDesContext,
              format_for: Callable[[bytes, str], Any]) -> Any:
        where = f"operation {ctx.operation_id!r} of execution {ctx.durable_execution_arn!r}"
        if version != self.version:
            raise SerializationError(f"{where}: fields payload version {version} is not one "
                                     f"this library reads ({self.version}); upgrade durable-ext")
        wire, packed, envelope, inner = _split(body, where)
        try:
            patterns = unpack_patterns(
                msgpack.unpackb(packed, max_array_len=_MAX_PATTERNS, max_map_len=0,
                                max_str_len=1024, max_bin_len=0, max_ext_len=0),
                _MAX_PATTERNS)
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            raise IntegrityError(f"{where}: fields payload has malformed paths ({exc})") from None
        fwire, fversion, fbody = read_frame(inner, where)
        fmt = format_for(fwire, where)
        if getattr(fmt, "role", None) != "format" or not hasattr(fmt, "sealed_mark"):
            raise IntegrityError(f"{where}: a fields frame must hold a msgpack or model frame")
        state = OpenFields()
        token = OPEN.set(state)
        try:
            tree = fmt.decode(fbody, fversion, ctx)
        finally:
            OPEN.reset(token)
        trie = compile_patterns(patterns)
        objects: list[bool] = []  # set when the walk met a tuple or an object
        finder = Finder(SEALED)
        walk(tree, [trie], (), finder, _decode_container(where, objects))
        if finder.bad is not None:
            raise IntegrityError(f"{where}: field {format_path(finder.bad)!r} should be "
                                 "encrypted but is a plain value")
        paths, slots = finder.paths, finder.slots
        if finder.sealed != state.count:
            raise IntegrityError(
                f"{where}: the payload holds {state.count} encrypted-field marks inside "
                f"objects, its paths select {finder.sealed}: fields were moved or copied"
            )
        values = self._open_values(wire, envelope, _aad(packed, paths), paths, fmt, ctx, where)
        if not objects and None not in slots:
            # Only dicts and lists on the way: put the values where the marks are.
            for slot, v in zip(slots, values, strict=True):
                assert slot is not None
                parent, key = slot
                parent[key] = v
            return tree
        it = iter(values)
        return walk(tree, [trie], (), lambda *_: next(it), _decode_container(where, []), True)

    def _open_values(self, wire: bytes, envelope: bytes, aad: bytes, paths: list[Path],
                     fmt: Any, ctx: SerDesContext, where: str) -> list[Any]:
        codec = self.codec
        key_id = _envelope_key_id(envelope, where)
        stage = {b"k": "kms", b"K": "localkey"}.get(wire, wire.decode("ascii", "replace"))
        problem: str | None = None
        if codec is None:
            problem = "no key configured for the fields stage"
        elif codec.wire != wire:
            problem = (f"the fields were encrypted by {stage!r}; this fields stage uses "
                       f"{codec.name!r}")
        if problem is not None:
            if VIEWING.get():
                return _shown(paths, stage, key_id, None)
            raise DisallowedContentError(f"{where}: cannot decrypt the encrypted fields: {problem}")
        try:
            vault = codec.decode(envelope, codec.version, ctx, aad)
        except IntegrityError as exc:
            if VIEWING.get():
                return _shown(paths, stage, key_id, "does not decrypt")
            raise IntegrityError(
                f"{where}: the encrypted fields do not decrypt: altered, or moved to another "
                "path, operation or execution"
            ) from exc
        except SerializationError as exc:
            if VIEWING.get():
                return _shown(paths, stage, key_id, str(exc)[:200])
            raise
        current_budget().charge(len(vault), "the encrypted fields")
        vwire, vversion, vbody = read_frame(vault, where)
        if vwire != fmt.wire:
            raise IntegrityError(f"{where}: the encrypted fields are not in the payload's format")
        values = fmt.decode(vbody, vversion, ctx)
        if type(values) is not list or len(values) != len(paths):
            raise IntegrityError(f"{where}: the encrypted fields do not match their paths")
        return values


_MAX_SCAN_NODES = 1_000_000


def _shown(paths: list[Path], stage: str, key_id: str | None,
           error: str | None) -> list[Any]:
    return [EncryptedField(format_path(p), i, stage, key_id, error) for i, p in enumerate(paths)]


def _split(body: bytes, where: str) -> tuple[bytes, bytes, bytes, bytes]:
    try:
        n = body[0]
        pos = 1 + n
        wire = bytes(body[1:pos])
        (plen,) = _U32.unpack_from(body, pos)
        pos += 4
        packed = bytes(body[pos : pos + plen])
        pos += plen
        (elen,) = _U32.unpack_from(body, pos)
        pos += 4
        envelope = bytes(body[pos : pos + elen])
        pos += elen
    except (IndexError, struct.error):
        raise IntegrityError(f"{where}: fields payload is truncated") from None
    if n == 0 or len(packed) != plen or len(envelope) != elen or pos >= len(body):
        raise IntegrityError(f"{where}: fields payload is truncated")
    return wire, packed, envelope, bytes(body[pos:])


def _envelope_key_id(envelope: bytes, where: str) -> str | None:
    from durable_ext.serializers._envelope_wire import Reader

    try:
        r = Reader(envelope, where)
        r.u8()
        r.u8()
        return r.key_id()[:256]
    except SerializationError:
        return None


def _packb(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True, unicode_errors="surrogatepass")  # type: ignore[no-any-return]


def _aad(packed_patterns: bytes, paths: list[Path]) -> bytes:
    # The fields frame id (no whole-payload envelope ends so), the patterns, and every
    # sealed field's concrete path in order, each part length-prefixed.
    packed_paths = _packb(paths)
    return (_FIELDS_PREFIX + _U32.pack(len(packed_patterns)) + packed_patterns
            + _U32.pack(len(packed_paths)) + packed_paths)


# -- containers: what the walk sees of a node -------------------------------------------


def _same(changed: Any) -> Any:
    return changed


def _encode_container(fmt: Any) -> Callable[[Any], Container | None]:
    object_data = fmt.object_data

    def container(node: Any) -> Container | None:
        t = type(node)
        if t is dict:
            return "map", node, None, _same
        if t is list:
            return "seq", node, None, _same
        if t is tuple:
            return "seq", node, None, tuple
        if t in _SCALARS:
            return None
        if t is RawObject:
            return node.kind, node.fields, node.keymap, node.rebuilt
        result: Container | None = object_data(node)
        return result

    return container


_SCALARS = frozenset({str, bytes, int, float, bool, type(None), Redacted, dt.datetime, dt.date,
                      uuid.UUID, Decimal, set, frozenset})


def _decode_container(where: str, seen: list[bool]) -> Callable[[Any], Container | None]:
    def container(node: Any) -> Container | None:
        t = type(node)
        if t is dict:
            return "map", node, None, _same
        if t is list:
            return "seq", node, None, _same
        if t is tuple:
            seen.append(True)
            return "seq", node, None, tuple
        if t is Deferred:
            seen.append(True)
            fields = node.fields
            if node.kind == "batch":
                return "batch", fields, None, _builder(node, where)
            kind = "map" if type(fields) is dict else "seq"
            return kind, fields, node.keymap, _builder(node, where)
        return None

    return container


def _builder(node: Deferred, where: str) -> Callable[[Any], Any]:
    def build(fields: Any) -> Any:
        try:
            return node.build(fields)
        except Exception as exc:
            if VIEWING.get():
                node.fields = fields
                return node  # shown by view(): not buildable without its encrypted fields
            if isinstance(exc, SerializationError):
                raise
            raise SerializationError(
                f"{where}: {node.tag!r} with its encrypted fields put back cannot be built "
                f"({type(exc).__name__}: {exc})"
            ) from exc

    return build


# -- keys ---------------------------------------------------------------------------


def _make_codec(kms: str | bool | None, localkey: str | bool | None, codec: Any,
                options: dict[str, Any]) -> Any:
    given = [x for x in (kms, localkey, codec) if x is not None and x is not False]
    if len(given) > 1:
        raise ConfigError("fields: give one of kms=..., localkey or codec=...")
    if codec is not None:
        if options:
            raise ConfigError(f"fields: codec=... takes no codec options {sorted(options)}")
        if getattr(codec, "name", None) not in ("kms", "localkey") or not hasattr(codec, "encode"):
            raise ConfigError("fields: codec must be a KmsCodec or LocalKeyCodec")
        return codec
    if kms is not None and kms is not False:
        from durable_ext.serializers.kms import KmsCodec

        return KmsCodec(None if kms is True else str(kms), **options)
    if localkey is not None and localkey is not False:
        from durable_ext.serializers.kms import LocalKeyCodec

        if localkey is not True:
            options = {**options, "key_id": str(localkey)}
        return LocalKeyCodec(**options)
    if options:
        raise ConfigError(f"fields: codec options {sorted(options)} given without kms=... "
                          "or localkey")
    return None


def _redact_key(key: bytes | str | None, *, required: bool) -> SigningKey | None:
    if key is None:
        text = os.environ.get(REDACT_KEY_ENV)
        if not text:
            if required:
                raise ConfigError(f"fields: redaction needs a key: set {REDACT_KEY_ENV} to "
                                  "[ID:]BASE64 of 32 random bytes, or pass redact_key=...")
            return None
        keys = parse_keys(text, f"environment variable {REDACT_KEY_ENV}")
    elif isinstance(key, bytes | bytearray):
        keys = [SigningKey.from_secret(bytes(key), None)]
    elif isinstance(key, str):
        keys = parse_keys(key, "fields redact_key")
    else:
        raise ConfigError("fields: redact_key is bytes or [ID:]BASE64 text")
    first = keys[0]
    if not isinstance(first, SigningKey):
        raise ConfigError("fields: redact_key must be an HMAC key")
    return first
