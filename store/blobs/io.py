"""The file I/O of blob writes: stage to temp files, then make durable and named, in groups.

`BlobWriter` is the engine: `stage` writes a batch's blobs to temp files, `publish` makes
every staged file durable and gives it its final name (syncfs, linkat/rename, syncfs),
`finish` publishes what is left of a batch and reports it. `ThreadIO` runs it on one
thread of this process, so the files are written while the caller inserts the group's rows
(SQLite releases the GIL); `BlobBatch` is what callers hold: one group's blob files on
their way through it.

Only payloads above the inline threshold are files (small ones are inline in store.sqlite),
so a group has few, large files: copying their bytes and writing them back is kernel work
that a thread overlaps as well as the child processes this module used to run for groups
of many small files (docs/benchmarks.md, "The inline threshold"). This module never
touches SQLite and never decides what to write.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

from .disk import BlobFiles, Staged, sync_filesystem

_batch_ids = itertools.count(1)

Item = tuple[str, bytes, bool]  # blob id, bytes, whether to look for an existing copy first


class Result(Protocol):
    def result(self) -> list[str]: ...


class BlobWriter:
    """Stages and publishes blobs; every file the writes create is created here."""

    MAX_OPEN = 512  # staged anonymous temp files (one descriptor each) before publishing early:
                    # stays under the common 1,024-descriptor limit

    def __init__(self, blobs: BlobFiles) -> None:
        self.blobs = blobs
        self.staged: list[tuple[int, Staged]] = []
        self.written: dict[int, list[str]] = {}
        self.failed: dict[int, BaseException] = {}

    def stage(self, batch: int, items: Sequence[Item]) -> None:
        if batch in self.failed:
            return
        written = self.written.setdefault(batch, [])
        try:
            for blob_id, data, check in items:
                staged = self.blobs._stage(blob_id, data, check)
                if staged is not None:
                    self.staged.append((batch, staged))
                    written.append(blob_id)
                    if len(self.staged) >= self.MAX_OPEN:
                        self.publish()
        except Exception as exc:  # noqa: BLE001 - reported by finish(); the engine lives on
            self.failed[batch] = exc
            keep = []
            for owner, item in self.staged:
                if owner == batch:
                    item.discard()
                else:
                    keep.append((owner, item))
            self.staged = keep

    def publish(self) -> None:
        """Every file staged so far durable and named when this returns."""
        staged, self.staged = self.staged, []
        self._publish(staged)

    def close(self) -> None:
        for _, item in self.staged:
            item.discard()
        self.staged = []

    def _publish(self, staged: list[tuple[int, Staged]]) -> None:
        """Every file of the lot durable, then named, then the names durable."""
        if not staged:
            return
        done = 0
        try:
            sync_filesystem(self.blobs._dirfd)  # every temp file's bytes are durable ...
            for _, item in staged:
                self.blobs._publish(item)  # ... before any gets its final name
                done += 1
            sync_filesystem(self.blobs._dirfd)  # and the names are durable before rows commit
        except Exception as exc:  # noqa: BLE001 - every batch with a file in this lot fails
            for owner, _ in staged:
                self.failed.setdefault(owner, exc)
        finally:
            for _, item in staged[:done]:
                item.close()
            for _, item in staged[done:]:
                item.discard()

    def finish(self, batch: int) -> list[str]:
        """Publish what is staged; the ids of the batch whose files were (re)written."""
        self.publish()
        written = self.written.pop(batch, [])
        failure = self.failed.pop(batch, None)
        if failure is not None:
            raise failure
        return written


class ThreadIO:
    """A BlobWriter on one thread of this process, in submission order."""

    def __init__(self, blobs: BlobFiles) -> None:
        self.writer = BlobWriter(blobs)
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="blob-io")

    def stage(self, batch: int, items: Sequence[Item]) -> None:
        self.pool.submit(self.writer.stage, batch, items)

    def finish(self, batch: int) -> Future[list[str]]:
        return self.pool.submit(self.writer.finish, batch)

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.writer.close()


class BlobBatch:
    """The blob files of one group commit on their way to durable files.

    `add` queues a blob; `durable()` hands the batch to the I/O thread and returns what the
    caller waits on (`.result()`: the ids written) before it commits rows that reference
    the blobs."""

    def __init__(self, io: ThreadIO, *, known: Callable[[list[str]], Mapping[str, bool]] | None) -> None:
        self.io, self.known = io, known
        self.id = next(_batch_ids)
        self.pending: list[tuple[str, bytes]] = []

    def add(self, blob_id: str, data: bytes) -> None:
        self.pending.append((blob_id, data))

    def durable(self) -> Result:
        chunk, self.pending = self.pending, []
        # only a blob that has a row can already have a good copy: look for those alone
        known = self.known([blob_id for blob_id, _ in chunk]) if self.known and chunk else None
        if known:  # stored inline already (intact): no file for the same content
            chunk = [(blob_id, data) for blob_id, data in chunk if not known.get(blob_id)]
        self.io.stage(self.id, [(blob_id, data, known is None or blob_id in known) for blob_id, data in chunk])
        return self.io.finish(self.id)
