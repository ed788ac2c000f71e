"""Parsing of serializer specs and store URLs into immutable values.

Serializer pipelines are stages joined by ``+``::

    msgpack                      one format
    msgpack+zstd                 a format, then a codec
    msgpack+kms:alias/orders     a stage argument follows the first colon (ARNs survive)
    msgpack+kms+s3://bucket/pfx  a ``name://`` stage takes the rest of the spec and is last
    msgpack+fields:kms=alias/pii;paths=a.b,c[*].d
                                 a stage reads its own argument (here ``;``-separated options)

Store URLs are ordinary URLs: ``memory://``, ``file://.durable``,
``redis://127.0.0.1:6379/0``, ``dynamodb://table?region=eu-west-1``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, urlsplit

from durable_ext.errors import SpecError

__all__ = ["PipelineSpec", "StageSpec", "StoreSpec", "parse_pipeline", "parse_store"]

_NAME = re.compile(r"[a-z][a-z0-9_-]*")
#: schemes whose location is not a host: everything after "://" is kept as written
_VERBATIM_SCHEMES = frozenset({"file", "lambda"})


@dataclass(frozen=True, slots=True)
class StageSpec:
    """One stage of a pipeline: a registry name and an optional argument."""

    name: str
    arg: str | None = None
    url: bool = False

    def __str__(self) -> str:
        if self.arg is None:
            return self.name
        return f"{self.name}://{self.arg}" if self.url else f"{self.name}:{self.arg}"


@dataclass(frozen=True, slots=True)
class PipelineSpec:
    """A parsed serializer spec: the stages in the order they are applied."""

    stages: tuple[StageSpec, ...]

    def __str__(self) -> str:
        return "+".join(str(s) for s in self.stages)


def _fail(spec: str, pos: int, why: str) -> SpecError:
    caret = " " * pos + "^"
    return SpecError(f"invalid serializer spec: {why} at position {pos}\n  {spec}\n  {caret}")


def parse_pipeline(spec: str | PipelineSpec) -> PipelineSpec:
    """Parse ``"msgpack+zstd+kms:alias/x"`` into a :class:`PipelineSpec`.

    Example:
        >>> str(parse_pipeline("msgpack+kms:arn:aws:kms:eu-west-1:1:key/k+s3://b/p"))
        'msgpack+kms:arn:aws:kms:eu-west-1:1:key/k+s3://b/p'

    """
    if isinstance(spec, PipelineSpec):
        return spec
    if not isinstance(spec, str):
        raise SpecError(f"a serializer spec must be a string, got {type(spec).__name__}")
    if not spec.strip():
        raise SpecError("invalid serializer spec: it is empty; try 'msgpack'")
    stages: list[StageSpec] = []
    pos = 0
    n = len(spec)
    while True:
        m = _NAME.match(spec, pos)
        if m is None:
            what = "empty stage" if pos >= n or spec[pos] == "+" else f"bad character {spec[pos]!r}"
            raise _fail(spec, pos, f"{what} (stage names are lowercase letters, digits, - and _)")
        name = m.group()
        pos = m.end()
        if spec.startswith("://", pos):
            arg = spec[pos + 3 :]
            if not arg:
                raise _fail(spec, pos + 3, f"stage {name!r} needs a location after '://'")
            stages.append(StageSpec(name, arg, url=True))
            break
        stage_arg: str | None = None
        if pos < n and spec[pos] == ":":
            end = spec.find("+", pos + 1)
            end = n if end < 0 else end
            stage_arg = spec[pos + 1 : end]
            if not stage_arg:
                raise _fail(spec, pos + 1, f"stage {name!r} has an empty argument after ':'")
            pos = end
        stages.append(StageSpec(name, stage_arg))
        if pos >= n:
            break
        if spec[pos] != "+":
            raise _fail(spec, pos, f"expected '+' between stages, found {spec[pos]!r}")
        pos += 1
    seen: set[str] = set()
    for st in stages:
        if st.name in seen:
            raise SpecError(f"invalid serializer spec {spec!r}: stage {st.name!r} appears twice")
        seen.add(st.name)
    return PipelineSpec(tuple(stages))


@dataclass(frozen=True, slots=True)
class StoreSpec:
    """A parsed store URL. ``str()`` masks the password."""

    scheme: str
    host: str | None = None
    port: int | None = None
    path: str = ""
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    query: tuple[tuple[str, str], ...] = ()
    raw: str = field(default="", repr=False, compare=False)

    @property
    def options(self) -> dict[str, str]:
        """Query parameters as a dict (the last value of a repeated key wins)."""
        return dict(self.query)

    @property
    def location(self) -> str:
        """Host and path joined, as file:// and table names use them."""
        return f"{self.host or ''}{self.path}"

    def __str__(self) -> str:
        auth = ""
        if self.username or self.password:
            auth = quote(self.username or "", safe="")
            if self.password:
                auth += ":***"
            auth += "@"
        netloc = auth + (self.host or "")
        if self.port is not None:
            netloc += f":{self.port}"
        q = "&".join(f"{k}={v}" for k, v in self.query)
        return f"{self.scheme}://{netloc}{self.path}" + (f"?{q}" if q else "")


def parse_store(url: str | StoreSpec) -> StoreSpec:
    """Parse a store URL such as ``redis://:pw@127.0.0.1:6379/0``.

    Example:
        >>> str(parse_store("redis://:secret@127.0.0.1:6379/0"))
        'redis://:***@127.0.0.1:6379/0'

    """
    if isinstance(url, StoreSpec):
        return url
    if not isinstance(url, str) or "://" not in url:
        raise SpecError(
            f"invalid backend URL {url!r}: expected scheme://..., e.g. 'file://.durable', "
            "'memory://', 'redis://127.0.0.1:6379/0'"
        )
    scheme = url.split("://", 1)[0]
    if not _NAME.fullmatch(scheme):
        raise SpecError(f"invalid backend URL {url!r}: bad scheme {scheme!r}")
    if scheme in _VERBATIM_SCHEMES:
        # file://relative/dir keeps the relative path (file:///abs is absolute), and
        # lambda://MyFunction:alias keeps the function's case and its qualifier.
        rest = url[len(scheme) + 3 :]
        path, _, qs = rest.partition("?")
        return StoreSpec(scheme=scheme, path=path, query=tuple(parse_qsl(qs)), raw=url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise SpecError(f"invalid backend URL {url!r}: {exc}") from None
    return StoreSpec(
        scheme=scheme,
        host=parts.hostname,
        port=port,
        path=parts.path,
        username=parts.username,
        password=parts.password,
        query=tuple(parse_qsl(parts.query, keep_blank_values=True)),
        raw=url,
    )
