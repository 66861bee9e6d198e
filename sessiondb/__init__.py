"""sessiondb: the durable store for AI-agent sessions.

    from sessiondb import Store           # the storage library, in one process
    from sessiondb import SessionClient   # a producer: writes through the fleet (Celery on Redis)

The parts are sub-packages: `sessiondb.store` (storage; never imports Celery),
`sessiondb.tasks` (the Celery app, routing, the producer client), `sessiondb.workers`
(the writer and the other worker roles) and `sessiondb.ops` (the `sessiondb` CLI and the
fleet launcher). `SessionClient` is imported on first use, so `from sessiondb import Store`
does not load Celery.
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from .store import (
    AliasConflictError,
    ConflictError,
    CorruptBlobError,
    DependantsError,
    HeadConflictError,
    IdConflictError,
    InternalError,
    NoStoreError,
    NotAStoreError,
    NotFoundError,
    ReadOnlyStoreError,
    SchemaVersionError,
    SessionDeletedError,
    Settings,
    Store,
    StoreError,
    ValidationError,
    WriteFailedError,
    WriterLockHeldError,
)
from .store.errors import DatabaseUrlError, WriterFencedError

if TYPE_CHECKING or "pdoc" in sys.modules:
    # pdoc documents the names it finds in a module: building the API reference (docs/api.md)
    # imports SessionClient at once instead of on first use
    from .tasks import SessionClient

try:
    __version__ = version("sessiondb")
except PackageNotFoundError:  # pragma: no cover - running from a source tree that was never installed
    __version__ = "0.0.0+unknown"


def __getattr__(name: str) -> Any:
    if name == "SessionClient":
        from .tasks import SessionClient

        return SessionClient
    raise AttributeError(f"module 'sessiondb' has no attribute {name!r}")


__all__ = [
    "AliasConflictError",
    "ConflictError",
    "CorruptBlobError",
    "DependantsError",
    "HeadConflictError",
    "IdConflictError",
    "InternalError",
    "NoStoreError",
    "NotAStoreError",
    "NotFoundError",
    "ReadOnlyStoreError",
    "SchemaVersionError",
    "SessionClient",
    "SessionDeletedError",
    "Settings",
    "Store",
    "StoreError",
    "ValidationError",
    "WriteFailedError",
    "WriterLockHeldError",
    "DatabaseUrlError",
    "WriterFencedError",
    "__version__",
]
