"""Payload bytes: canonical encoding and blob ids (canonical.py), the two tiers a blob lives
in — inline in store.sqlite (inline.py) or a file in the blob tree (disk.py) — the I/O
thread that writes groups of blob files (io.py), the `BlobStore` that callers hold
(store.py), moving small files inline (pack.py) and collecting unreferenced payloads
(gc.py). Only inline.py, pack.py and gc.py touch SQLite."""

from . import inline
from .canonical import BLOB_ID_RE, PayloadError, blob_id, canonical_json, payload_bytes
from .store import BlobStore

__all__ = ["BLOB_ID_RE", "BlobStore", "PayloadError", "blob_id", "canonical_json", "inline", "payload_bytes"]
