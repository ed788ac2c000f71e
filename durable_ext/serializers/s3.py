"""S3 offload (``s3``): large payloads go to S3 and the checkpoint keeps a pointer.

The stage runs last in a pipeline. When the checkpoint string would be longer than
``threshold`` characters (default: the SDK's 256 KiB checkpoint limit less 1 KiB of
headroom), the bytes are written to S3 and the checkpoint keeps a small pointer:
bucket, key, size, SHA-256 and an optional preview. Below the threshold the stage
makes no S3 request at all.

Object keys are deterministic and content-addressed::

    <prefix><sha256(execution ARN)>/<sha256(operation id)>/<sha256(bytes)>

so a retried invocation that writes the same result again finds the object already
there (a conditional ``PUT`` with ``If-None-Match: *``, or a ``HEAD`` first) and
creates no duplicate. An object found at the key is verified, never trusted: its size
and the SHA-256 S3 stored with it (else its bytes, hashed) must be the payload's, or the
write fails with :class:`~durable_ext.errors.IntegrityError`; a key this process wrote
before is checked with a ``HEAD`` before a write is skipped, as the object may have been
deleted since. Every object read is checked against the payload's decode budget before it is
fetched, read with a bound and checked against the pointer's size and SHA-256. Objects
read or written are cached (bounded by bytes), so a replay makes at most one ``GET`` per
pointer.

When ``kms`` (or ``localkey``) runs before ``s3`` in the pipeline, S3 only ever stores
ciphertext, and the pointer holds no plaintext (no preview is made of encrypted
payloads). Server-side encryption settings (SSE-S3, SSE-KMS) are passed through.

Cleanup: objects of one execution share the prefix :func:`execution_prefix`;
:func:`delete_execution_objects` removes them, and :func:`lifecycle_rule` returns an
S3 lifecycle rule that expires everything under the stage prefix after some days.

Frame body (version 1): a msgpack array ``[bucket, key, size, sha256, preview?]``.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import parse_qsl

from aws_durable_execution_sdk_python.constants import CHECKPOINT_SIZE_LIMIT_BYTES
from botocore.exceptions import ClientError

from durable_ext._aws import classify
from durable_ext._deps import require
from durable_ext.errors import (
    ConfigError,
    DisallowedContentError,
    IntegrityError,
    RetryableSerializationError,
    SerializationError,
    SpecError,
)
from durable_ext.registry import SERIALIZERS
from durable_ext.serializers._aws import BoundedCache, LazyClient, aws_errors
from durable_ext.serializers.base import Role, SerDesContext
from durable_ext.serializers.frames import BUILTIN_WIRES, is_armored, read_frame, unarmor
from durable_ext.serializers.limits import current_budget

msgpack = require("msgpack", extra="s3", feature="the s3 offload")

__all__ = [
    "DEFAULT_PREFIX",
    "DEFAULT_THRESHOLD",
    "MAX_PREVIEW_BYTES",
    "S3Offload",
    "S3Pointer",
    "delete_execution_objects",
    "execution_prefix",
    "lifecycle_rule",
    "object_key",
    "read_pointer",
]

log = logging.getLogger(__name__)

#: longest checkpoint string kept inline: the SDK's limit less 1 KiB, like its FileSystemSerDes
DEFAULT_THRESHOLD = CHECKPOINT_SIZE_LIMIT_BYTES - 1024
#: key prefix used when the spec names none
DEFAULT_PREFIX = "durable-ext/"
#: a preview larger than this (packed) is left out
MAX_PREVIEW_BYTES = 4096
_SSE = frozenset({"AES256", "aws:kms", "aws:kms:dsse"})
_PUT_ARGS = frozenset({"StorageClass", "Tagging", "Metadata", "ExpectedBucketOwner",
                       "SSEKMSEncryptionContext", "ACL", "ContentType"})
#: stages whose frames a preview may look through: no keys, no code execution
_PLAIN_STAGES = frozenset({"msgpack", "json", "zstd", "zlib"})
_DELETE_BATCH = 1000
_MAX_PAGES = 100_000


# -- keys and pointers ------------------------------------------------------------------


def _hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _norm_prefix(prefix: str) -> str:
    prefix = prefix.strip("/")
    return f"{prefix}/" if prefix else ""


def execution_prefix(execution_arn: str, prefix: str = DEFAULT_PREFIX) -> str:
    """Return the key prefix every object of one execution shares.

    Example:
        >>> execution_prefix("arn:x", "p")[:10]
        'p/37a06272'

    """
    return f"{_norm_prefix(prefix)}{_hex(execution_arn)}/"


def object_key(execution_arn: str, operation_id: str, digest: bytes,
               prefix: str = DEFAULT_PREFIX) -> str:
    """Return the object key of bytes with SHA-256 ``digest`` written by one operation."""
    return f"{execution_prefix(execution_arn, prefix)}{_hex(operation_id)}/{digest.hex()}"


@dataclass(frozen=True, slots=True)
class S3Pointer:
    """What a checkpoint keeps of an offloaded payload."""

    bucket: str
    key: str
    size: int
    sha256: bytes = field(repr=False)
    preview: Any = None

    @property
    def url(self) -> str:
        """``s3://bucket/key``."""
        return f"s3://{self.bucket}/{self.key}"

    def pack(self) -> bytes:
        """Return the frame body."""
        fields: list[Any] = [self.bucket, self.key, self.size, self.sha256]
        if self.preview is not None:
            fields.append(self.preview)
        return msgpack.packb(fields, use_bin_type=True)  # type: ignore[no-any-return]

    @classmethod
    def unpack(cls, body: bytes, where: str) -> S3Pointer:
        """Parse a frame body; a truncated or malformed one raises :class:`IntegrityError`."""
        try:
            fields = msgpack.unpackb(body, raw=False, use_list=True, strict_map_key=False)
        except Exception as exc:
            raise IntegrityError(
                f"{where}: s3 pointer is truncated or corrupt ({type(exc).__name__})"
            ) from None
        if (
            not isinstance(fields, list) or len(fields) not in (4, 5)
            or not isinstance(fields[0], str) or not fields[0]
            or not isinstance(fields[1], str) or not fields[1]
            or not isinstance(fields[2], int) or fields[2] < 0
            or not isinstance(fields[3], bytes) or len(fields[3]) != 32
        ):
            raise IntegrityError(f"{where}: s3 pointer is malformed")
        return cls(fields[0], fields[1], fields[2], fields[3],
                   fields[4] if len(fields) == 5 else None)


def read_pointer(payload: str) -> S3Pointer | None:
    """Return the pointer of a checkpoint string written with ``s3``, without fetching it.

    Returns ``None`` when the payload was kept inline. Tools use it to show where a
    payload lives and its preview.
    """
    if not is_armored(payload):
        return None
    wire, _, body = read_frame(unarmor(payload, "payload"), "payload")
    if wire != S3Offload.wire:
        return None
    return S3Pointer.unpack(body, "payload")


# -- the stage --------------------------------------------------------------------------


class S3Offload:
    """Offload large payloads to S3; keep a verified pointer in the checkpoint.

    Args:
        bucket: the bucket objects are written to; ``None`` makes a read-only stage.
        prefix: key prefix (default ``durable-ext/``).
        client: a boto3 S3 client (else one is built on first use).
        threshold: longest checkpoint string (characters) kept inline; 0 offloads
            everything. The default leaves 1 KiB below the SDK's 256 KiB limit.
        conditional: write with ``If-None-Match: *`` (default); ``False`` does a
            ``HEAD`` first instead, for S3-compatible stores without conditional writes.
        sse: server-side encryption: ``"AES256"``, ``"aws:kms"`` or ``"aws:kms:dsse"``.
        sse_kms_key_id: the KMS key of SSE-KMS (implies ``sse="aws:kms"``).
        bucket_key_enabled: use an S3 Bucket Key for SSE-KMS.
        put_args: further ``PutObject`` arguments (``StorageClass``, ``Tagging``, ...).
        preview: ``value -> dict | None`` (e.g. the SDK's ``build_preview`` with a
            ``PreviewConfig``), stored in the pointer; never made for encrypted payloads.
        cache_bytes: bytes of objects kept in memory for replay.
        allowed_buckets: buckets a pointer may refer to (default: ``bucket`` when it
            is set, else any); a forged pointer cannot make the stage read elsewhere.
        region_name, endpoint_url, config: for a client built here.

    Example:
        >>> import durable_ext
        >>> durable_ext.serdes("msgpack+kms:alias/orders+s3://my-bucket/checkpoints")
        Pipeline('msgpack+kms+s3')

    """

    name: ClassVar[str] = "s3"
    role: ClassVar[Role] = "offload"
    wire: ClassVar[bytes] = b"s"
    version: ClassVar[int] = 1

    def __init__(self, bucket: str | None = None, prefix: str = DEFAULT_PREFIX, *,
                 client: Any = None, threshold: int = DEFAULT_THRESHOLD,
                 conditional: bool = True, sse: str | None = None,
                 sse_kms_key_id: str | None = None, bucket_key_enabled: bool | None = None,
                 put_args: Mapping[str, Any] | None = None,
                 preview: Callable[[Any], Any] | None = None, cache_bytes: int = 64 << 20,
                 allowed_buckets: Iterable[str] | None = None, region_name: str | None = None,
                 endpoint_url: str | None = None, config: Any = None) -> None:
        if bucket is not None and (not isinstance(bucket, str) or not bucket or "/" in bucket):
            raise ConfigError(f"s3: bucket must be a bucket name, got {bucket!r}")
        if not isinstance(threshold, int) or isinstance(threshold, bool) or threshold < 0:
            raise ConfigError(f"s3: threshold must be an int >= 0, got {threshold!r}")
        if sse_kms_key_id is not None and sse is None:
            sse = "aws:kms"
        if sse is not None and sse not in _SSE:
            raise ConfigError(f"s3: sse must be one of {sorted(_SSE)}, got {sse!r}")
        extra = dict(put_args or {})
        if set(extra) - _PUT_ARGS:
            raise ConfigError(f"s3: put_args may only hold {sorted(_PUT_ARGS)}, "
                              f"got {sorted(set(extra) - _PUT_ARGS)}")
        if preview is not None and not callable(preview):
            raise ConfigError("s3: preview must be a callable taking the value")
        if not isinstance(cache_bytes, int) or cache_bytes < 0:
            raise ConfigError(f"s3: cache_bytes must be an int >= 0, got {cache_bytes!r}")
        self.bucket = bucket
        self.prefix = _norm_prefix(prefix)
        self.threshold = threshold
        self.conditional = bool(conditional)
        self.preview = preview
        self.client = LazyClient("s3", client, config, region_name=region_name,
                                 endpoint_url=endpoint_url)
        if sse is not None:
            extra["ServerSideEncryption"] = sse
        if sse_kms_key_id is not None:
            extra["SSEKMSKeyId"] = sse_kms_key_id
        if bucket_key_enabled is not None:
            extra["BucketKeyEnabled"] = bool(bucket_key_enabled)
        extra.setdefault("ContentType", "application/octet-stream")
        self._put_args = extra
        if allowed_buckets is not None:
            self.allowed_buckets: frozenset[str] | None = frozenset(allowed_buckets)
        else:
            self.allowed_buckets = frozenset({bucket}) if bucket else None
        self._blobs: BoundedCache[tuple[str, str, bytes], bytes] = BoundedCache(
            max_entries=100_000, max_bytes=cache_bytes)
        # Keys this process has written or read: a write of one is checked with a HEAD
        # (no body sent) instead of a PUT, since the object may have been deleted since.
        self._written: BoundedCache[tuple[str, str], bool] = BoundedCache(
            max_entries=100_000, max_bytes=100_000)
        self._plain_stages: dict[bytes, Any] = {}

    def __repr__(self) -> str:
        return (f"S3Offload(bucket={self.bucket!r}, prefix={self.prefix!r}, "
                f"threshold={self.threshold})")

    @classmethod
    def from_spec(cls, arg: str | None, /, **options: Any) -> S3Offload:
        """``s3://BUCKET[/PREFIX][?threshold=N&sse=aws:kms&sse_kms_key_id=K&conditional=0]``."""
        if arg is None:
            return cls(**options)
        location, _, query = arg.partition("?")
        bucket, _, prefix = location.partition("/")
        if not bucket:
            raise SpecError(f"s3: the spec needs a bucket, as in s3://bucket/prefix (got {arg!r})")
        parsed: dict[str, Any] = {"bucket": bucket}
        if prefix:
            parsed["prefix"] = prefix
        for k, v in parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)):
            if k == "threshold":
                try:
                    parsed[k] = int(v)
                except ValueError:
                    raise SpecError(f"s3: threshold must be an integer, got {v!r}") from None
            elif k in ("sse", "sse_kms_key_id"):
                parsed[k] = v
            elif k == "conditional":
                parsed[k] = v.lower() not in ("0", "false", "no")
            else:
                raise SpecError(f"s3: unknown spec option {k!r}; known: threshold, sse, "
                                "sse_kms_key_id, conditional")
        clash = set(parsed) & set(options)
        if clash:
            raise ConfigError(f"s3: {sorted(clash)} given both in the spec and as options")
        return cls(**parsed, **options)

    # -- write ------------------------------------------------------------------------

    def store(self, data: bytes, ctx: SerDesContext) -> bytes | None:
        """Keep ``data`` inline when it fits; else write it once and return a pointer."""
        # The pipeline armors what we return with base64: 4 characters per 3 bytes.
        if 4 * ((len(data) + 2) // 3) <= self.threshold:
            return None
        bucket = self.bucket
        if bucket is None:
            raise SerializationError(
                f"operation {ctx.operation_id!r}: payload of {len(data)} bytes is over the "
                "s3 threshold but no bucket is configured (spec s3://bucket/prefix)"
            )
        digest = hashlib.sha256(data).digest()
        key = object_key(ctx.durable_execution_arn, ctx.operation_id, digest, self.prefix)
        where = f"operation {ctx.operation_id!r}, s3://{bucket}/{key}"
        self._put(bucket, key, data, digest, where,
                  known=self._written.get((bucket, key)) is not None)
        self._written.put((bucket, key), True, 1)
        self._blobs.put((bucket, key, digest), data, len(data))
        return S3Pointer(bucket, key, len(data), digest, self._preview(data, ctx)).pack()

    def _put(self, bucket: str, key: str, data: bytes, digest: bytes, where: str, *,
             known: bool) -> None:
        client = self.client.get()
        checksum = base64.b64encode(digest).decode("ascii")
        if (known or not self.conditional) and self._holds(client, bucket, key, data, digest,
                                                           where):
            return
        args = dict(self._put_args)
        if self.conditional:
            args["IfNoneMatch"] = "*"
        with aws_errors("s3", "PutObject", where):
            try:
                # ChecksumAlgorithm makes S3 keep the SHA-256 it verified, which is
                # what a later HEAD compares against.
                client.put_object(Bucket=bucket, Key=key, Body=data, ChecksumAlgorithm="SHA256",
                                  ChecksumSHA256=checksum, **args)
                return
            except ClientError as exc:
                failure = classify(exc)
                if failure is None or (failure.code != "PreconditionFailed"
                                       and failure.status != 412):
                    raise
        # Something is at the key already: most likely a retried invocation's write of
        # these bytes, but the key's name proves nothing about what is stored there.
        if not self._holds(client, bucket, key, data, digest, where):
            raise RetryableSerializationError(
                f"{where}: an object refused the conditional write and was gone when "
                "checked (deleted meanwhile); the invocation will be retried"
            )

    def _holds(self, client: Any, bucket: str, key: str, data: bytes, digest: bytes,
               where: str) -> bool:
        """Whether the object at ``key`` holds ``data``: False when there is none."""
        owner = {k: v for k, v in self._put_args.items() if k == "ExpectedBucketOwner"}
        with aws_errors("s3", "HeadObject", where):
            try:
                head = client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED",
                                          **owner)
            except ClientError as exc:
                failure = classify(exc)
                if failure is not None and (failure.status == 404
                                            or failure.code in ("404", "NoSuchKey", "NotFound")):
                    return False
                raise
        size = head.get("ContentLength")
        if size != len(data):
            raise self._not_ours(where, f"it is {size} bytes, the payload {len(data)}")
        stored = head.get("ChecksumSHA256")
        # S3 verifies a SHA-256 sent with the body before storing it, so a stored
        # whole-object one (a multipart upload's has a "-N" part count) is proof.
        if stored and "-" not in stored and head.get("ChecksumType", "FULL_OBJECT") == \
                "FULL_OBJECT":
            if stored != base64.b64encode(digest).decode("ascii"):
                raise self._not_ours(where, "the SHA-256 stored with it differs")
            return True
        # Written without a SHA-256 (another tool, another client): read it and hash.
        with aws_errors("s3", "GetObject", where):
            got, length = self._download(client, bucket, key, len(data), owner)
        if length != len(data) or hashlib.sha256(got).digest() != digest:
            raise self._not_ours(where, "its SHA-256 differs")
        return True

    @staticmethod
    def _not_ours(where: str, why: str) -> IntegrityError:
        return IntegrityError(
            f"{where}: the object already at this key is not the payload its name says "
            f"({why}); an object planted at the stage's key is refused, never taken as written"
        )

    @staticmethod
    def _download(client: Any, bucket: str, key: str, size: int,
                  extra: Mapping[str, Any]) -> tuple[bytes, int]:
        """GET an object expected to be ``size`` bytes; return its bytes and its length.

        No byte is read when the length already differs, and never more than ``size + 1``.
        """
        resp = client.get_object(Bucket=bucket, Key=key, **extra)
        body = resp["Body"]
        try:
            length = resp.get("ContentLength")
            if isinstance(length, int) and length != size:
                return b"", length
            data: bytes = body.read(size + 1)
            return data, len(data)
        finally:
            body.close()

    def _preview(self, data: bytes, ctx: SerDesContext) -> Any:
        if self.preview is None:
            return None
        try:
            value = self._plain_value(data, ctx)
        except SerializationError as exc:
            log.debug("s3: no preview for operation %r: %s", ctx.operation_id, exc)
            return None
        preview = self.preview(value)
        if not preview:
            return None
        try:
            packed = msgpack.packb(preview, use_bin_type=True)
        except (TypeError, ValueError) as exc:
            raise SerializationError(
                f"operation {ctx.operation_id!r}: the s3 preview is not packable ({exc})"
            ) from None
        if len(packed) > MAX_PREVIEW_BYTES:
            log.debug("s3: preview of operation %r left out (%d bytes)", ctx.operation_id,
                      len(packed))
            return None
        return preview

    def _plain_value(self, data: bytes, ctx: SerDesContext) -> Any:
        """Decode our own input back to the value, unless a stage hides it (encryption)."""
        for _ in range(16):
            wire, version, body = read_frame(data, "preview")
            name = BUILTIN_WIRES.get(wire)
            if name not in _PLAIN_STAGES:
                raise SerializationError(f"stage {name or wire!r} is not shown in previews")
            stage = self._plain_stages.get(wire)
            if stage is None:
                stage = self._plain_stages[wire] = SERIALIZERS.load(name).from_spec(None)
            if stage.role == "format":
                return stage.decode(body, version, ctx)
            data = stage.decode(body, version, ctx)
        raise SerializationError("too many frames")

    # -- read -------------------------------------------------------------------------

    def load(self, body: bytes, version: int, ctx: SerDesContext) -> bytes:
        """Fetch (once) and verify the bytes a pointer refers to, within the decode budget."""
        where = f"operation {ctx.operation_id!r}"
        if version != self.version:
            raise SerializationError(
                f"{where}: s3 pointer version {version} is not one this library reads "
                f"({self.version}); upgrade durable-ext"
            )
        ptr = S3Pointer.unpack(body, where)
        where = f"{where}, {ptr.url}"
        if self.allowed_buckets is not None and ptr.bucket not in self.allowed_buckets:
            raise DisallowedContentError(
                f"{where}: the pointer refers to bucket {ptr.bucket!r}, which is not in "
                f"allowed_buckets {sorted(self.allowed_buckets)}"
            )
        # Checked whether fetched or cached, so whether a payload decodes does not depend
        # on what this process happens to hold; the pipeline charges what load returns.
        current_budget().check(ptr.size, f"s3 object {ptr.url} ({ptr.size} bytes)")
        return self._blobs.get_or_load((ptr.bucket, ptr.key, ptr.sha256),
                                       lambda: (self._get(ptr, where), ptr.size))

    def _get(self, ptr: S3Pointer, where: str) -> bytes:
        with aws_errors("s3", "GetObject", where):
            # A replaced, larger object is caught by its length, or by reading one
            # byte more than expected, without loading all of it.
            data, length = self._download(self.client.get(), ptr.bucket, ptr.key, ptr.size,
                                          {})
        if length != ptr.size:
            size = f"over {ptr.size}" if data and length > ptr.size else str(length)
            raise IntegrityError(
                f"{where}: object is {size} bytes, the pointer says {ptr.size}; "
                "it was replaced or truncated"
            )
        if hashlib.sha256(data).digest() != ptr.sha256:
            raise IntegrityError(f"{where}: object SHA-256 does not match the pointer; "
                                 "it was replaced or corrupted")
        self._written.put((ptr.bucket, ptr.key), True, 1)
        return data

    def clear_cache(self) -> None:
        """Forget cached objects (the next read of each pointer fetches it again)."""
        self._blobs.clear()
        self._written.clear()


# -- cleanup ----------------------------------------------------------------------------


def delete_execution_objects(bucket: str, execution_arn: str, *,
                             prefix: str = DEFAULT_PREFIX, client: Any = None) -> int:
    """Delete every object the ``s3`` stage wrote for one execution; return how many.

    Call it once an execution has finished and its history is no longer needed
    (a CLI command can wrap it). Transient failures raise
    :class:`~durable_ext.errors.RetryableSerializationError`; calling it again is safe.

    Example:
        >>> delete_execution_objects("my-bucket", arn, client=s3)  # doctest: +SKIP
        3

    """
    s3 = LazyClient("s3", client).get()
    where = f"s3://{bucket}/{execution_prefix(execution_arn, prefix)}"
    deleted = 0
    token: str | None = None
    for _ in range(_MAX_PAGES):
        args: dict[str, Any] = {"Bucket": bucket, "Prefix": execution_prefix(execution_arn, prefix),
                                "MaxKeys": _DELETE_BATCH}
        if token:
            args["ContinuationToken"] = token
        with aws_errors("s3", "ListObjectsV2", where):
            page = s3.list_objects_v2(**args)
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            with aws_errors("s3", "DeleteObjects", where):
                resp = s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
            errors = resp.get("Errors") or []
            if errors:
                raise SerializationError(
                    f"{where}: {len(errors)} objects could not be deleted "
                    f"(first: {errors[0].get('Key')}: {errors[0].get('Code')})"
                )
            deleted += len(keys)
        token = page.get("NextContinuationToken")
        if not page.get("IsTruncated") or not token:
            return deleted
    raise SerializationError(f"{where}: more than {_MAX_PAGES} pages of objects")


def lifecycle_rule(days: int, prefix: str = DEFAULT_PREFIX) -> dict[str, Any]:
    """Return a lifecycle rule expiring the stage's objects ``days`` after they are written.

    Pick ``days`` longer than the longest execution plus its retention period, so no
    object of a live or still-inspectable execution disappears.

    Example:
        >>> lifecycle_rule(30)["Expiration"]
        {'Days': 30}

    """
    if not isinstance(days, int) or days < 1:
        raise ConfigError(f"lifecycle days must be an int >= 1, got {days!r}")
    return {
        "ID": f"durable-ext-expire-{_norm_prefix(prefix).rstrip('/') or 'all'}"[:255],
        "Filter": {"Prefix": _norm_prefix(prefix)},
        "Status": "Enabled",
        "Expiration": {"Days": days},
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
    }

