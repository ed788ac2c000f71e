"""A Lambda-compatible HTTP API for local durable executions.

boto3's ``lambda`` client (``endpoint_url=...``) and the SDK's own ``LambdaClient`` talk
to it as to AWS Lambda: Invoke of a served durable function, the durable-execution
control plane (get, history, list, callbacks, stop) and the checkpoint/state data plane.

Example:
    >>> from durable_ext.http import LocalService, ServerThread
    >>> svc = LocalService("memory://")   # then svc.register("fn", handler)
    >>> svc.close()

"""

from __future__ import annotations

from durable_ext.http.server import ServerThread, serve
from durable_ext.http.service import LocalService

__all__ = ["LocalService", "ServerThread", "serve"]
