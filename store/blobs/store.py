"""`BlobStore`: the blob tree (`BlobFiles`) plus the I/O thread that writes groups of blob files.

Callers hold a `BlobStore`: they read through `BlobFiles`' methods and write with `put`,
`put_many` or `batch`, which hand the bytes to the I/O thread (io.py) and wait for them to
be durable. The thread is started on first use and kept for the store's life. This module
never touches SQLite and never decides what to write (nor which payloads are files: the
write path keeps small ones inline, `inline.py`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

import blake3

from .disk import BlobFiles
from .io import BlobBatch, ThreadIO


class BlobStore(BlobFiles):
    def __init__(self, root: str | os.PathLike[str], *, readonly: bool = False) -> None:
        super().__init__(root, readonly=readonly)
        self._io: ThreadIO | None = None  # started on first use

    def close(self) -> None:
        if self._io is not None:
            self._io.close()
            self._io = None
        super().close()

    def put(self, data: bytes) -> str:
        blob_id = "blake3:" + blake3.blake3(data).hexdigest()
        self.put_many({blob_id: data})
        return blob_id

    def put_many(self, blobs: Mapping[str, bytes]) -> list[str]:
        """Make every blob durable at its final name; returns the ids whose file was (re)written."""
        batch = self.batch()
        for blob_id, data in blobs.items():
            batch.add(blob_id, data)
        return batch.durable().result()

    def batch(self, *, known: Callable[[list[str]], Mapping[str, bool]] | None = None) -> BlobBatch:
        """A group of blob files written on the I/O thread and made durable together.

        `known(ids)`: which of these ids have rows already (only those can have a good copy
        on disk, so only those are looked for before writing), each mapped to True when its
        bytes are stored inline (then no file is written at all); default: look for every one."""
        if self._io is None:
            self._io = ThreadIO(self)
        return BlobBatch(self._io, known=known)
