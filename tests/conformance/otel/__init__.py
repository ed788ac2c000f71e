"""The official OpenTelemetry conformance suite on the local runtime (see suite.py).

The suite's package declares Python 3.14 and imports ``compression.zstd`` (3.14's standard
library) for its S3 collector backend, which is not used here; on older Pythons the name
is given a stand-in backed by ``zstandard`` so the package imports.
"""

from __future__ import annotations

import sys
import types


def _zstd_stand_in() -> None:
    try:
        import compression.zstd  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        import zstandard

        package = types.ModuleType("compression")
        zstd = types.ModuleType("compression.zstd")
        zstd.decompress = lambda data: zstandard.ZstdDecompressor().decompressobj().decompress(
            data)  # type: ignore[attr-defined]
        zstd.ZstdError = zstandard.ZstdError  # type: ignore[attr-defined]
        package.zstd = zstd  # type: ignore[attr-defined]
        sys.modules.setdefault("compression", package)
        sys.modules.setdefault("compression.zstd", zstd)


_zstd_stand_in()
