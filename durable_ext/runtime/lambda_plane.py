"""The control plane over AWS Lambda: the :class:`ControlPlane` of executions in Lambda.

``lambda://FUNCTION[:QUALIFIER]?region=...&endpoint_url=...`` names a durable function.
:class:`LambdaControlPlane` starts executions by invoking it with an execution name, and
describes, pages history, lists, completes callbacks, stops, pauses, resumes and deletes
through boto3, so the same
commands work on executions in a local store and in Lambda (or in anything that speaks the
Lambda API, such as ``durable-ext serve``).

Errors are translated in one place (:func:`translate_errors`): throttling, 5xx and
connection failures are retried with capped exponential backoff and full jitter, then
raised as :class:`~durable_ext.errors.StoreUnavailableError`; unknown executions,
functions or callbacks become :class:`~durable_ext.errors.NotFoundError`; a taken
execution name :class:`~durable_ext.runtime.ExecutionAlreadyStartedError`; bad input
:class:`~durable_ext.engine.validation.InvalidParameterValueError`; access problems
:class:`~durable_ext.errors.StoreError`. The botocore error is always chained.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote

from durable_ext._aws import classify, make_client
from durable_ext.backends.store import TERMINAL_STATUSES
from durable_ext.engine.validation import normalize_input
from durable_ext.errors import (
    ConfigError,
    SpecError,
    StoreError,
    StoreUnavailableError,
    error_for_code,
)

__all__ = ["LambdaControlPlane", "LambdaTarget", "parse_lambda_url", "translate_errors"]

T = TypeVar("T")

_OPTIONS = ("region", "endpoint_url", "profile", "max_attempts", "base_delay", "invocation_type")


@dataclass(frozen=True, slots=True, kw_only=True)
class LambdaTarget:
    """A parsed ``lambda://`` URL."""

    function: str
    qualifier: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    profile: str | None = None
    max_attempts: int = 8
    base_delay: float = 0.1
    invocation_type: str = "Event"

    def __post_init__(self) -> None:
        if self.invocation_type not in ("Event", "RequestResponse"):
            raise SpecError("lambda:// invocation_type must be Event or RequestResponse, got "
                            f"{self.invocation_type!r}")
        if not self.function:
            raise SpecError("lambda:// URL names no function: expected lambda://FUNCTION")
        if self.max_attempts < 1:
            raise SpecError(f"lambda:// max_attempts must be at least 1, got {self.max_attempts}")
        if self.base_delay < 0:
            raise SpecError(f"lambda:// base_delay must not be negative, got {self.base_delay}")


def parse_lambda_url(url: str) -> LambdaTarget:
    """Parse ``lambda://FUNCTION[:QUALIFIER]?region=...&endpoint_url=...``.

    The function part is kept verbatim (case included); it may be a name or a function
    ARN, with a qualifier after the last ``:`` for names.

    Example:
        >>> parse_lambda_url("lambda://orders:live?region=eu-west-1").qualifier
        'live'

    """
    if not url.startswith("lambda://"):
        raise SpecError(f"invalid Lambda backend URL {url!r}: expected lambda://FUNCTION")
    rest = url[len("lambda://"):]
    target, _, query = rest.partition("?")
    target = unquote(target.rstrip("/"))
    options = dict(parse_qsl(query, keep_blank_values=True))
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise SpecError(f"invalid Lambda backend URL {url!r}: unknown option(s) {unknown}; "
                        f"known: {list(_OPTIONS)}")
    qualifier: str | None = None
    if target.startswith("arn:"):
        parts = target.split(":")
        if len(parts) == 8:
            qualifier = parts[7]
            target = ":".join(parts[:7])
        elif len(parts) != 7:
            raise SpecError(f"invalid Lambda backend URL {url!r}: malformed function ARN")
    elif ":" in target:
        target, qualifier = target.rsplit(":", 1)
    try:
        attempts = int(options.get("max_attempts", 8))
        base = float(options.get("base_delay", 0.1))
    except ValueError as exc:
        raise SpecError(f"invalid Lambda backend URL {url!r}: {exc}") from None
    return LambdaTarget(function=target, qualifier=qualifier or None,
                        region=options.get("region") or None,
                        endpoint_url=options.get("endpoint_url") or None,
                        profile=options.get("profile") or None,
                        max_attempts=attempts, base_delay=base,
                        invocation_type=options.get("invocation_type") or "Event")


def translate_errors(what: str, call: Callable[[], T], *, max_attempts: int = 8,
                     base_delay: float = 0.1, max_delay: float = 5.0,
                     sleep: Callable[[float], None] = time.sleep) -> T:
    """Run ``call``; retry transient failures with backoff; map the rest to our errors.

    Transient is what :func:`durable_ext._aws.classify` says; a service error becomes
    the class :func:`durable_ext.errors.error_for_code` gives its code.

    Args:
        what: The operation and target, for messages (``"GetDurableExecution arn:..."``).
        call: The boto3 call.
        max_attempts: Attempts in all, the first included.
        base_delay: First backoff ceiling in seconds (doubled per attempt, full jitter).
        max_delay: Largest backoff ceiling.
        sleep: How to wait (injectable so callers can bound waiting).

    """
    attempt = 0
    while True:
        attempt += 1
        try:
            return call()
        except Exception as exc:
            failure = classify(exc)
            if failure is None:
                raise
            if failure.kind == "credentials":
                raise StoreError(f"{what}: no AWS credentials found") from exc
            if not failure.retryable:
                if failure.kind == "service":
                    message = f"{what}: {failure.code}: {failure.message}"
                    raise error_for_code(failure.code, message) from exc
                raise StoreError(f"{what}: {failure.message}") from exc
            if attempt >= max_attempts:
                if failure.kind == "network":
                    raise StoreUnavailableError(
                        f"{what}: endpoint unreachable after {attempt} attempts: "
                        f"{failure.message}") from exc
                raise StoreUnavailableError(
                    f"{what}: still failing after {attempt} attempts ({failure.label}: "
                    f"{failure.message})") from exc
        sleep(random.uniform(0, min(max_delay, base_delay * 2 ** (attempt - 1))))


def _clean(response: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in response.items() if k != "ResponseMetadata"}


class LambdaControlPlane:
    """The control plane of executions in AWS Lambda (or anything speaking its API).

    Args:
        target: The function (a :class:`LambdaTarget`, or a ``lambda://`` URL).
        client: A boto3 ``lambda`` client to use instead of building one.

    Example:
        >>> be = LambdaControlPlane("lambda://orders?region=us-east-1")  # doctest: +SKIP
        >>> arn = be.start(input={"id": 7}, name="order-7")         # doctest: +SKIP
        >>> be.describe(arn)["Status"]                               # doctest: +SKIP
        'RUNNING'

    """

    name = "lambda"

    def __init__(self, target: LambdaTarget | str, *, client: Any = None) -> None:
        self.target = parse_lambda_url(target) if isinstance(target, str) else target
        self._client = client
        self._owns_client = client is None


    @property
    def client(self) -> Any:
        """The boto3 ``lambda`` client (built on first use)."""
        if self._client is None:
            # Retries are ours (translate_errors), so they are bounded and observable.
            self._client = make_client(
                "lambda", region=self.target.region, endpoint_url=self.target.endpoint_url,
                profile=self.target.profile, max_attempts=1, read_timeout=60,
            )
        return self._client

    def _call(self, what: str, method: str, **params: Any) -> dict[str, Any]:
        fn = getattr(self.client, method)
        response: dict[str, Any] = translate_errors(
            what, lambda: fn(**params), max_attempts=self.target.max_attempts,
            base_delay=self.target.base_delay)
        return response

    def _function(self, function_name: str | None) -> tuple[str, str | None]:
        if function_name is None or function_name == self.target.function:
            return self.target.function, self.target.qualifier
        if ":" in function_name and not function_name.startswith("arn:"):
            name, qualifier = function_name.rsplit(":", 1)
            return name, qualifier
        return function_name, None

    # ------------------------------------------------------------------ control plane

    def start(self, function_name: str | None = None, input: Any = None,
              name: str | None = None, execution_timeout: int | None = None) -> str:
        """Start an execution by invoking the function; its ARN.

        The invocation is asynchronous (``Event``) unless the URL says
        ``invocation_type=RequestResponse`` (for emulators that return the execution ARN
        only on synchronous invokes; on Lambda that waits for the execution to end). Same
        name and input returns the existing execution; a different input raises
        :class:`~durable_ext.runtime.ExecutionAlreadyStartedError`.
        """
        if execution_timeout is not None:
            raise ConfigError(
                "execution_timeout is set on the Lambda function (DurableConfig."
                "ExecutionTimeout), not per execution")
        fn, qualifier = self._function(function_name)
        # The runtime's normalisation: JSON text is kept, other strings are encoded.
        payload = normalize_input(input)
        params: dict[str, Any] = {"FunctionName": fn,
                                  "InvocationType": self.target.invocation_type,
                                  "Payload": payload}
        if qualifier:
            params["Qualifier"] = qualifier
        if name:
            params["DurableExecutionName"] = name
        response = self._call(f"Invoke {fn}", "invoke", **params)
        body = response.get("Payload")
        if body is not None:
            body.read()  # release the connection
        arn = response.get("DurableExecutionArn") or (
            response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
            .get("x-amz-durable-execution-arn"))
        if arn:
            return str(arn)
        if name:
            # Some endpoints answer an Event invoke without the ARN header; the name
            # identifies the execution, so look it up.
            found = self.list_executions(fn, name=name, max_items=1)["DurableExecutions"]
            if found:
                return str(found[0]["DurableExecutionArn"])
        raise StoreError(
            f"Invoke {fn}: the response carried no X-Amz-Durable-Execution-Arn; is the "
            "function durable (DurableConfig set)? Pass name= to find the execution by name, "
            "or use invocation_type=RequestResponse in the URL")

    def run(self, function_name: str | None = None, input: Any = None,
            name: str | None = None, timeout: float = 60) -> dict[str, Any]:
        """Start, wait until the execution ends (at most ``timeout`` s), and describe."""
        arn = self.start(function_name, input, name)
        return self.wait(arn, timeout)

    def wait(self, arn: str, timeout: float = 60, poll: float = 0.5) -> dict[str, Any]:
        """Poll until the execution is terminal or ``timeout`` passes; its description."""
        deadline = time.monotonic() + timeout
        delay = min(0.05, poll)
        while True:
            desc = self.describe(arn)
            if desc["Status"] in TERMINAL_STATUSES or time.monotonic() >= deadline:
                return desc
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, poll)

    def settle(self, arn: str, timeout: float = 60) -> dict[str, Any]:
        """Wait until the execution ends or waits on a callback; its description."""
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            desc = self.describe(arn)
            if desc["Status"] in TERMINAL_STATUSES or time.monotonic() >= deadline:
                return desc
            events = self.history(arn, include_execution_data=False)["Events"]
            open_callbacks = {e.get("Id") for e in events if e["EventType"] == "CallbackStarted"}
            open_callbacks -= {e.get("Id") for e in events if e["EventType"].startswith(
                ("CallbackSucceeded", "CallbackFailed", "CallbackTimedOut"))}
            if open_callbacks:
                return desc
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 1.0)

    def execution_of_callback(self, callback_id: str) -> str | None:
        """Return None: Lambda's callback ids are opaque."""
        return None

    def register(self, function_name: str, handler: Any, *, durable: bool = True) -> None:
        """Refuse: functions are deployed to Lambda, not registered."""
        raise ConfigError(
            f"cannot register {function_name!r} on {self}: deploy it to Lambda, or serve it "
            "locally with `durable-ext serve` and point endpoint_url at that server")

    def describe(self, arn: str) -> dict[str, Any]:
        """GetDurableExecution."""
        return _clean(self._call(f"GetDurableExecution {arn}", "get_durable_execution",
                                 DurableExecutionArn=arn))

    def history(self, arn: str, include_execution_data: bool = True,
                max_items: int | None = None, marker: str | None = None,
                reverse_order: bool = False) -> dict[str, Any]:
        """GetDurableExecutionHistory; without ``max_items`` every page is fetched."""
        params: dict[str, Any] = {"DurableExecutionArn": arn,
                                  "IncludeExecutionData": include_execution_data,
                                  "ReverseOrder": reverse_order}
        if max_items:
            params["MaxItems"] = int(max_items)
        if marker:
            params["Marker"] = marker
        what = f"GetDurableExecutionHistory {arn}"
        page = _clean(self._call(what, "get_durable_execution_history", **params))
        if max_items:
            return page
        events = list(page.get("Events", []))
        seen: set[str] = set()
        while page.get("NextMarker"):
            next_marker = str(page["NextMarker"])
            if next_marker in seen:
                raise StoreError(f"{what}: the service repeated marker {next_marker!r}")
            seen.add(next_marker)
            params["Marker"] = next_marker
            page = _clean(self._call(what, "get_durable_execution_history", **params))
            events.extend(page.get("Events", []))
        return {"Events": events}

    def list_executions(self, function_name: str | None = None, status: str | None = None,
                        max_items: int | None = None, marker: str | None = None, *,
                        name: str | None = None) -> dict[str, Any]:
        """ListDurableExecutionsByFunction (of the URL's function by default)."""
        fn, qualifier = self._function(function_name)
        params: dict[str, Any] = {"FunctionName": fn}
        if qualifier:
            params["Qualifier"] = qualifier
        if status:
            params["Statuses"] = [status]
        if max_items:
            params["MaxItems"] = int(max_items)
        if marker:
            params["Marker"] = marker
        if name:
            params["DurableExecutionName"] = name
        return _clean(self._call(f"ListDurableExecutionsByFunction {fn}",
                                 "list_durable_executions_by_function", **params))

    def send_callback_success(self, callback_id: str, result: bytes | str | None = None) -> None:
        """SendDurableExecutionCallbackSuccess (the result is sent verbatim)."""
        params: dict[str, Any] = {"CallbackId": callback_id}
        if result is not None:
            params["Result"] = result.encode() if isinstance(result, str) else result
        self._call(f"SendDurableExecutionCallbackSuccess {callback_id}",
                   "send_durable_execution_callback_success", **params)

    def send_callback_failure(self, callback_id: str,
                              error: Mapping[str, Any] | None = None) -> None:
        """SendDurableExecutionCallbackFailure."""
        params: dict[str, Any] = {"CallbackId": callback_id}
        if error:
            params["Error"] = dict(error)
        self._call(f"SendDurableExecutionCallbackFailure {callback_id}",
                   "send_durable_execution_callback_failure", **params)

    def send_callback_heartbeat(self, callback_id: str) -> None:
        """SendDurableExecutionCallbackHeartbeat."""
        self._call(f"SendDurableExecutionCallbackHeartbeat {callback_id}",
                   "send_durable_execution_callback_heartbeat", CallbackId=callback_id)

    def stop(self, arn: str, error: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """StopDurableExecution (the error is recorded as the execution's error)."""
        params: dict[str, Any] = {"DurableExecutionArn": arn}
        if error:
            params["Error"] = dict(error)
        return _clean(self._call(f"StopDurableExecution {arn}", "stop_durable_execution",
                                 **params))

    def pause(self, arn: str, reason: str | None = None, client_token: str | None = None,
              execution_timeout_paused: bool = True) -> None:
        """PauseDurableExecution."""
        params: dict[str, Any] = {"DurableExecutionArn": arn,
                                  "ExecutionTimeoutPaused": execution_timeout_paused}
        if reason is not None:
            params["Reason"] = reason
        if client_token is not None:
            params["ClientToken"] = client_token
        self._call(f"PauseDurableExecution {arn}", "pause_durable_execution", **params)

    def resume(self, arn: str, reason: str | None = None,
               client_token: str | None = None) -> None:
        """ResumeDurableExecution."""
        params: dict[str, Any] = {"DurableExecutionArn": arn}
        if reason is not None:
            params["Reason"] = reason
        if client_token is not None:
            params["ClientToken"] = client_token
        self._call(f"ResumeDurableExecution {arn}", "resume_durable_execution", **params)

    def delete(self, arn: str) -> dict[str, Any]:
        """DeleteDurableExecution."""
        return _clean(self._call(f"DeleteDurableExecution {arn}", "delete_durable_execution",
                                 DurableExecutionArn=arn))

    # ------------------------------------------------------------------ lifecycle

    def __str__(self) -> str:
        q = f":{self.target.qualifier}" if self.target.qualifier else ""
        return f"lambda://{self.target.function}{q}"

    def close(self) -> None:
        """Close the client's connections if this backend built it."""
        if self._owns_client and self._client is not None and hasattr(self._client, "close"):
            self._client.close()
            self._client = None

    def __enter__(self) -> LambdaControlPlane:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
