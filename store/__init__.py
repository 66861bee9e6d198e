"""sessiondb's storage library: blobs, canonical rows, transaction batches, heads and views.

Pure storage: it never imports Celery or anything from tasks/, workers/ or ops/.
"""

from .errors import (
    AliasConflictError,
    ConflictError,
    CorruptBlobError,
    DatabaseUrlError,
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
    StoreError,
    ValidationError,
    WriteFailedError,
    WriterFencedError,
    WriterLockHeldError,
)
from .settings import Settings
from .store import Store, raise_for, receipt_counts

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
    "SessionDeletedError",
    "Settings",
    "Store",
    "StoreError",
    "ValidationError",
    "WriteFailedError",
    "WriterLockHeldError",
    "DatabaseUrlError",
    "WriterFencedError",
    "raise_for",
    "receipt_counts",
]
