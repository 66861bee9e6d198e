"""`BlobStore`: the blob tree (`BlobFiles`) plus the I/O engines that write groups of blobs.

Callers hold a `BlobStore`: they read through `BlobFiles`' methods and write with `put`,
`put_many` or `batch`, which hand the bytes to an I/O engine (io.py) and wait for them to be
durable. The engines are started on first use and kept for the store's life. This module
never touches SQLite and never decides what to write.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

import blake3

from .disk import BlobFiles
from .io import BlobBatch, BlobIO, ProcessIO, ThreadIO


class BlobStore(BlobFiles):
    def __init__(self, root: str | os.PathLike[str], *, readonly: bool = False) -> None:
        super().__init__(root, readonly=readonly)
        self._io: dict[int, BlobIO] = {}  # started on first use: the I/O thread (-1), the I/O processes (0, 1 ...)

    def close(self) -> None:
        for io in self._io.values():
            io.close()
        self._io.clear()
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

    def batch(self, *, processes: int = 0, known: Callable[[list[str]], Mapping[str, bool]] | None = None) -> BlobBatch:
        """A group of blobs written in the background and made durable together.

        `processes=N`: written by N blob I/O processes (each started on first use, and again
        if it died), which overlap the caller's CPU work and each other: for large groups;
        `0`: by the I/O thread. `known(ids)`: which of these ids have rows already (only those
        can have a good copy on disk, so only those are looked for before writing), each
        mapped to True when its bytes are stored inline (then no file is written at all);
        default: look for every one."""
        ios = []
        for slot in range(processes) if processes > 0 else (-1,):
            io = self._io.get(slot)
            if io is None or not io.alive():
                if io is not None:
                    io.close()
                io = self._io[slot] = ProcessIO(self.root) if slot >= 0 else ThreadIO(self)
            ios.append(io)
        return BlobBatch(ios, stream=processes > 0, known=known)
