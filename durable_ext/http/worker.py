"""A warm handler process: runs invocations like a Lambda sandbox, checkpointing over HTTP.

Started by :class:`durable_ext.http.invokers.WorkerPool` as ``python -m
durable_ext.http.worker RFD WFD``. It reads one JSON request per line from file
descriptor RFD (``{"handler", "event", "context"}``), calls the handler with the plain
Lambda event, and writes ``{"output"}`` or ``{"error"}`` as one line to WFD. The handler's
stdout and stderr stay the server's, as a Lambda function's logs are its own.

The handler gets no injected client: the SDK builds its ``LambdaClient`` from the
environment (``AWS_ENDPOINT_URL_LAMBDA`` points at the server), so every checkpoint and
state read goes through the SDK's real HTTP path.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from durable_ext.http.invokers import IMPORT_PATH, LAMBDA_KEY_ID, LAMBDA_SECRET
from durable_ext.runtime.handlers import HandlerRef
from durable_ext.runtime.invoker import LambdaContextStub, error_of


def _signing_client() -> None:
    """Give the SDK a Lambda client signed with the server's key, when the server gave one.

    The SDK builds its client once per process from the environment
    (``LambdaClient.initialize_client``); a client set there first is the one it uses, so
    the handler's own boto3 clients keep the process's ordinary credentials.
    """
    # Taken out of the environment: handler code and the processes it starts never see them.
    key_id, secret = os.environ.pop(LAMBDA_KEY_ID, None), os.environ.pop(LAMBDA_SECRET, None)
    if not key_id or not secret:
        return
    from aws_durable_execution_sdk_python.lambda_service import LambdaClient

    from durable_ext._aws import make_client

    LambdaClient._cached_boto_client = make_client(
        "lambda", endpoint_url=os.environ.get("AWS_ENDPOINT_URL_LAMBDA"),
        region=os.environ.get("AWS_DEFAULT_REGION"), read_timeout=50,
        aws_access_key_id=key_id, aws_secret_access_key=secret,
    )


def _import_path() -> None:
    for entry in os.environ.pop(IMPORT_PATH, "").split(os.pathsep):
        if entry and entry not in sys.path:
            sys.path.append(entry)


def _serve(rfd: int, wfd: int) -> None:
    _import_path()
    _signing_client()
    handlers: dict[str, Any] = {}
    with os.fdopen(rfd, "r", encoding="utf-8") as inp, \
            os.fdopen(wfd, "w", encoding="utf-8") as out:
        for line in inp:
            request = json.loads(line)
            path = request["handler"]
            try:
                handler = handlers.get(path) or handlers.setdefault(
                    path, HandlerRef(path, request.get("root")).load()
                )
                result = handler(request["event"], LambdaContextStub(**request["context"]))
                reply: dict[str, Any] = {"output": dict(result)}
            except Exception as exc:
                reply = {"error": error_of(exc)}
            out.write(json.dumps(reply, default=str) + "\n")
            out.flush()


def main(argv: list[str]) -> int:
    """Entry point: ``worker RFD WFD``."""
    if len(argv) != 2:
        print("usage: python -m durable_ext.http.worker RFD WFD", file=sys.stderr)
        return 2
    _serve(int(argv[0]), int(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
