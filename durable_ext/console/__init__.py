"""A local web console for durable executions: list, timeline, payloads, actions.

``durable-ext console --backend URL`` serves it on its own; ``durable-ext serve --console``
serves it beside the HTTP API under ``/console/``. It reads and acts through a
:class:`~durable_ext.runtime.ControlPlane` only, so it works on every store and on
``lambda://``. Pages are rendered on the server (Jinja2, autoescaped) and kept live by a
little JavaScript that polls; nothing is fetched from the network.

Needs the ``console`` extra: ``pip install 'durable-ext[console]'``.
"""

from __future__ import annotations

__all__: list[str] = []
