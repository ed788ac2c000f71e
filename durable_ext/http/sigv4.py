"""AWS Signature Version 4 verification for the HTTP API (``durable-ext serve --auth sigv4``).

boto3 and the SDK's ``LambdaClient`` sign every request. The verifier recomputes the
signature of a received request with botocore's own signer (:class:`botocore.auth.SigV4Auth`)
over exactly the headers the client says it signed, the raw path and query and the body,
with the secret of a configured access key, and compares the two in constant time. The
request date must be within five minutes of the server's clock.

Errors are the ones AWS answers: no ``Authorization`` header is
``MissingAuthenticationTokenException``, a malformed one ``IncompleteSignatureException``,
an access key the server does not have ``UnrecognizedClientException``, and a signature
that does not match (wrong secret, tampered request, stale date)
``InvalidSignatureException``. Messages never contain a secret.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from durable_ext.errors import ConfigError
from durable_ext.http.wire import ApiError

__all__ = [
    "ACCESS_KEY_ENV",
    "MAX_SKEW_SECONDS",
    "SECRET_KEY_ENV",
    "SigV4Verifier",
    "SignedRequest",
]

ACCESS_KEY_ENV = "DURABLE_EXT_AUTH_ACCESS_KEY_ID"
SECRET_KEY_ENV = "DURABLE_EXT_AUTH_SECRET_ACCESS_KEY"
MAX_SKEW_SECONDS = 300.0
"""Most seconds between a request's ``X-Amz-Date`` and the server's clock."""

_SERVICE = "lambda"
_ALGORITHM = "AWS4-HMAC-SHA256"
_AMZ_DATE = "%Y%m%dT%H%M%SZ"
_KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,128}")
_SECRET = re.compile(r"\S{1,256}")
_SIGNATURE = re.compile(r"[0-9a-f]{64}")
_REGION = re.compile(r"[a-z0-9-]{1,64}")
_UNSIGNED = "UNSIGNED-PAYLOAD"


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """What a request's ``Authorization`` and ``X-Amz-Date`` headers claim."""

    access_key: str
    region: str
    signed_headers: tuple[str, ...]
    signature: str
    amz_date: str


def _invalid(message: str) -> ApiError:
    return ApiError("InvalidSignatureException", message)


def _incomplete(message: str) -> ApiError:
    return ApiError("IncompleteSignatureException", message)


class SigV4Verifier:
    """Check AWS SigV4 signatures against a set of access keys.

    Args:
        keys: Access key id -> secret access key. The first one is the key the server
            gives its own worker processes.
        max_skew: Most seconds a request's date may be from ``clock()``.
        clock: Epoch seconds now (a test may shift it).

    Example:
        >>> verifier = SigV4Verifier({"AKIDLOCAL": "local-secret"})
        >>> verifier.worker_credentials
        ('AKIDLOCAL', 'local-secret')

    """

    def __init__(self, keys: Mapping[str, str], *, max_skew: float = MAX_SKEW_SECONDS,
                 clock: Callable[[], float] = time.time) -> None:
        if not keys:
            raise ConfigError("SigV4 authentication needs at least one access key")
        for key_id, secret in keys.items():
            _check_key(key_id, secret, "SigV4 keys")
        self._keys = dict(keys)
        self._max_skew = max_skew
        self._clock = clock

    @classmethod
    def from_sources(cls, env: Mapping[str, str], keys_file: str | None = None,
                     **kwargs: Any) -> SigV4Verifier:
        """Keys from ``DURABLE_EXT_AUTH_ACCESS_KEY_ID``/``..._SECRET_ACCESS_KEY`` and a file.

        The file holds one ``ACCESS_KEY_ID SECRET_ACCESS_KEY`` pair per line; blank lines
        and lines starting with ``#`` are skipped. The environment's key comes first.

        Raises:
            ConfigError: no key at all, half a pair in the environment, or a bad file.

        """
        keys: dict[str, str] = {}
        key_id, secret = env.get(ACCESS_KEY_ENV), env.get(SECRET_KEY_ENV)
        if bool(key_id) != bool(secret):
            raise ConfigError(f"set both {ACCESS_KEY_ENV} and {SECRET_KEY_ENV}, or neither")
        if key_id and secret:
            _check_key(key_id, secret, ACCESS_KEY_ENV)
            keys[key_id] = secret
        if keys_file is not None:
            for file_key, file_secret in _read_keys(keys_file):
                if file_key in keys:
                    raise ConfigError(f"{keys_file}: access key {file_key!r} is given twice")
                keys[file_key] = file_secret
        if not keys:
            raise ConfigError(
                f"--auth sigv4 needs credentials: set {ACCESS_KEY_ENV} and {SECRET_KEY_ENV}, "
                "or pass --auth-keys FILE")
        return cls(keys, **kwargs)

    @property
    def worker_credentials(self) -> tuple[str, str]:
        """The access key and secret the server's own worker processes sign with."""
        key_id = next(iter(self._keys))
        return key_id, self._keys[key_id]

    def check_headers(self, headers: Mapping[str, str]) -> SignedRequest:
        """Check what can be checked before the body arrives: form, key, scope and date.

        ``headers`` maps lower-case names to values. Raises :class:`ApiError`.
        """
        auth = headers.get("authorization")
        if not auth:
            raise ApiError("MissingAuthenticationTokenException",
                           "Missing Authentication Token: this server answers only requests "
                           "signed with AWS Signature Version 4")
        algorithm, _, rest = auth.strip().partition(" ")
        if algorithm != _ALGORITHM:
            raise _incomplete(f"Authorization header must use {_ALGORITHM}")
        fields: dict[str, str] = {}
        for part in rest.split(","):
            name, eq, value = part.strip().partition("=")
            if eq:
                fields[name] = value
        missing = [f for f in ("Credential", "SignedHeaders", "Signature") if not fields.get(f)]
        if missing:
            raise _incomplete(f"Authorization header lacks {', '.join(missing)}")
        scope = fields["Credential"].split("/")
        if len(scope) != 5 or not _REGION.fullmatch(scope[2]):
            raise _incomplete("Credential must be ACCESS_KEY/DATE/REGION/SERVICE/aws4_request")
        key_id, day, region, service, terminator = scope
        if key_id not in self._keys:
            raise ApiError("UnrecognizedClientException",
                           f"The access key {key_id!r} is not one this server accepts")
        if service != _SERVICE or terminator != "aws4_request":
            raise _invalid(f"Credential should be scoped to service {_SERVICE!r} and end "
                           "with 'aws4_request'")
        signature = fields["Signature"]
        if not _SIGNATURE.fullmatch(signature):
            raise _incomplete("Signature must be 64 lower-case hex digits")
        signed = tuple(fields["SignedHeaders"].split(";"))
        for required in ("host", "x-amz-date"):
            if required not in signed:
                raise _incomplete(f"{required!r} must be one of the SignedHeaders")
        amz_date = headers.get("x-amz-date", "")
        try:
            when = datetime.strptime(amz_date, _AMZ_DATE).replace(tzinfo=UTC)
        except ValueError:
            raise _incomplete("X-Amz-Date must be an ISO 8601 basic timestamp such as "
                              "20260101T000000Z") from None
        if amz_date[:8] != day:
            raise _invalid(f"Date in Credential scope ({day}) does not match X-Amz-Date "
                           f"({amz_date})")
        now = self._clock()
        if abs(now - when.timestamp()) > self._max_skew:
            server = datetime.fromtimestamp(now, UTC).strftime(_AMZ_DATE)
            raise _invalid(f"Signature expired: X-Amz-Date {amz_date} is more than "
                           f"{self._max_skew:.0f} seconds from the server's time {server}")
        return SignedRequest(key_id, region, signed, signature, amz_date)

    def verify(self, signed: SignedRequest, method: str, raw_path: str, query: str,
               headers: Iterable[tuple[str, str]], body: bytes) -> None:
        """Recompute the signature of the received request; raise unless it matches.

        ``raw_path`` and ``query`` are exactly as received (still percent-encoded);
        ``headers`` are (lower-case name, value) pairs, repeated names kept.
        """
        from botocore.compat import HTTPHeaders

        received: dict[str, list[str]] = {}
        for name, value in headers:
            received.setdefault(name, []).append(value)
        to_sign = HTTPHeaders()
        for name in signed.signed_headers:
            if name not in received:
                raise _invalid(f"signed header {name!r} is missing from the request")
            for value in received[name]:
                to_sign[name] = value  # HTTPHeaders appends: repeated headers stay repeated
        digest = hashlib.sha256(body).hexdigest()
        claimed = received.get("x-amz-content-sha256", [digest])[0]
        if claimed == _UNSIGNED:
            raise _invalid("unsigned payloads are not accepted: the body must be signed")
        if not hmac.compare_digest(claimed, digest):
            raise _invalid("X-Amz-Content-SHA256 does not match the body")
        expected = _expected_signature(self._keys[signed.access_key], signed, method,
                                       raw_path, query, to_sign, body)
        if not hmac.compare_digest(expected, signed.signature):
            raise _invalid("The request signature does not match the one computed with the "
                           "secret of its access key: check the secret, and that nothing "
                           "changed the request after it was signed")


def _expected_signature(secret: str, signed: SignedRequest, method: str, raw_path: str,
                        query: str, to_sign: Any, body: bytes) -> str:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    class _Received(SigV4Auth):  # type: ignore[misc]  # botocore is untyped
        # The client chose which headers to sign; sign exactly those, as received.
        def headers_to_sign(self, request: Any) -> Any:
            return to_sign

    signer = _Received(Credentials(signed.access_key, secret), _SERVICE, signed.region)
    url = "http://signed" + raw_path + (f"?{query}" if query else "")
    request = AWSRequest(method=method, url=url, data=body)
    request.context["timestamp"] = signed.amz_date
    canonical = signer.canonical_request(request)
    string_to_sign = signer.string_to_sign(request, canonical)
    return str(signer.signature(string_to_sign, request))


def _check_key(key_id: str, secret: str, where: str) -> None:
    if not _KEY_ID.fullmatch(key_id):
        raise ConfigError(f"{where}: an access key id must be 1-128 characters of "
                          "[A-Za-z0-9_.-]")
    if not _SECRET.fullmatch(secret):
        raise ConfigError(f"{where}: the secret of access key {key_id!r} must be 1-256 "
                          "characters without spaces")


def _read_keys(path: str) -> list[tuple[str, str]]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--auth-keys {path}: cannot read it ({exc})") from None
    pairs: list[tuple[str, str]] = []
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        parts = text.split()
        if len(parts) != 2:
            # The line holds a secret: say where it is, never what it is.
            raise ConfigError(f"{path}:{number}: expected ACCESS_KEY_ID SECRET_ACCESS_KEY")
        _check_key(parts[0], parts[1], f"{path}:{number}")
        pairs.append((parts[0], parts[1]))
    return pairs
