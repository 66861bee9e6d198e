"""Payload bytes: canonical encoding and blob ids (canonical.py), the blob tree on disk
(disk.py), the I/O engines that write groups of blobs (io.py) and the `BlobStore` that
callers hold (store.py). Nothing here touches SQLite."""

from .canonical import BLOB_ID_RE, PayloadError, blob_id, canonical_json, payload_bytes
from .store import BlobStore

__all__ = ["BLOB_ID_RE", "BlobStore", "PayloadError", "blob_id", "canonical_json", "payload_bytes"]
