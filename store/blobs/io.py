"""The file I/O of blob writes: stage to temp files, then make durable and named, in groups.

`BlobWriter` is the engine. `stage` writes a batch's blobs to temp files; `publish` makes
every staged file durable and gives it its final name (syncfs, linkat/rename, syncfs),
`publish_soon` does that on a publisher thread while staging goes on;
`finish` publishes what is left of a batch and reports it. The engine runs in one of two
places, behind the same two calls (`stage`, `finish`):

- `ThreadIO`: a thread of this process. Cheap to start, right for small groups; but a
  thread gets the GIL back only slowly while the caller runs Python code, so its work
  overlaps only the caller's SQLite inserts, not its planning.
- `ProcessIO`: a child process (running `serve`) that writes the blobs of a
  large group while the writer plans the rest of it, and publishes them in lots on its
  publisher thread as it goes, so little is left to do when the group's rows are ready to
  commit. It speaks length-prefixed msgpack on its stdin/stdout (never pickle), ignores
  Ctrl-C and exits when its parent goes away (EOF on stdin); a crash of either side loses
  nothing that was committed, because rows commit only after `finish` reported their blobs
  durable.

`BlobBatch` is what callers hold: one group's blobs on their way through an engine. This
module never touches SQLite and never decides what to write.
"""

from __future__ import annotations

import itertools
import os
import signal
import struct
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

import msgspec

from .disk import BlobFiles, Staged, _write_all, sync_filesystem

_LENGTH = struct.Struct(">I")
_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder().decode
_batch_ids = itertools.count(1)
_CHILD = "import sys; from sessiondb.store.blobs.io import serve; serve(sys.argv[1])"

Item = tuple[str, bytes, bool]  # blob id, bytes, whether to look for an existing copy first


class BlobIOError(OSError):
    """The blob I/O process failed or went away; the batch's blobs are not durable."""


class Result(Protocol):
    def result(self) -> list[str]: ...


class BlobWriter:
    """Stages and publishes blobs; every file the writes create is created here.

    With `background=True` (the blob I/O process) `publish_soon` hands what is staged to a
    publisher thread, so the two syncs and the links of one lot overlap the staging of the
    next (syncfs blocks on the disk for ~20 us per file); at most one lot is in flight."""

    MAX_OPEN = 512  # staged anonymous temp files (one descriptor each) before publishing early; with one
                    # lot in flight that stays under the common 1,024-descriptor limit
    EAGER_MIN = 128  # ProcessIO publishes early only once this many wait (each publish = 2 syncs)

    def __init__(self, blobs: BlobFiles, *, background: bool = False) -> None:
        self.blobs = blobs
        self.staged: list[tuple[int, Staged]] = []
        self.written: dict[int, list[str]] = {}
        self.failed: dict[int, BaseException] = {}
        self.publisher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="blob-publish") if background else None
        self.publishing: Future[None] | None = None

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
                        self.publish_soon()
        except Exception as exc:  # noqa: BLE001 - reported by finish(); the engine lives on
            self.failed[batch] = exc
            keep = []
            for owner, item in self.staged:
                if owner == batch:
                    item.discard()
                else:
                    keep.append((owner, item))
            self.staged = keep

    def busy(self) -> bool:
        """Is a lot being published in the background right now?"""
        return self.publishing is not None and not self.publishing.done()

    def publish(self) -> None:
        """Every file staged so far durable and named when this returns."""
        self._drain()
        self._publish(self._take())

    def publish_soon(self) -> None:
        """Start publishing what is staged (in the background when there is a publisher)."""
        if self.publisher is None:
            self.publish()
            return
        self._drain()  # one lot in flight at a time: bounded descriptors, names in staging order
        self.publishing = self.publisher.submit(self._publish, self._take())

    def close(self) -> None:
        self._drain()
        if self.publisher is not None:
            self.publisher.shutdown(wait=True)

    def _take(self) -> list[tuple[int, Staged]]:
        staged, self.staged = self.staged, []
        return staged

    def _drain(self) -> None:
        if self.publishing is not None:
            self.publishing.result()  # _publish records failures per batch; it does not raise
            self.publishing = None

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

    def finish(self, batch: int) -> Result:
        return self.pool.submit(self.writer.finish, batch)

    def alive(self) -> bool:
        return True

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.writer.close()


class ProcessIO:
    """A BlobWriter in a child process, fed through a pipe."""

    PIPE_BYTES = 1 << 20  # room for ~1,000 KiB-sized blobs in flight

    def __init__(self, root: str | os.PathLike[str]) -> None:
        # the child imports this code from the installed `sessiondb` package
        self.proc = subprocess.Popen([sys.executable, "-c", _CHILD, os.path.abspath(root)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.failure: BlobIOError | None = None
        self.buffer = bytearray()
        try:
            import fcntl

            fcntl.fcntl(self.proc.stdin.fileno(), fcntl.F_SETPIPE_SZ, self.PIPE_BYTES)  # type: ignore[union-attr]
        except (ImportError, AttributeError, OSError):
            pass  # a smaller pipe only means the writer waits on the child more often

    def stage(self, batch: int, items: Sequence[Item]) -> None:
        self._send(["stage", batch, items])

    def finish(self, batch: int) -> Result:
        self._send(["finish", batch])
        return _Reply(self, batch)

    def alive(self) -> bool:
        return self.failure is None and self.proc.poll() is None

    def close(self) -> None:
        try:
            self.proc.stdin.close()  # type: ignore[union-attr]
        except OSError:
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()  # type: ignore[union-attr]

    def _send(self, message: list[Any]) -> None:
        if self.failure is not None:
            return  # reported by the batch's finish
        frame = _encode(message)
        try:
            _write_all(self.proc.stdin.fileno(), _LENGTH.pack(len(frame)) + frame)  # type: ignore[union-attr]
        except OSError as exc:
            self.failure = BlobIOError(exc.errno, f"the blob I/O process went away: {exc.strerror or exc}")

    def _receive(self, batch: int) -> list[str]:
        if self.failure is None:
            message = _read_frame(self.proc.stdout.fileno(), self.buffer)  # type: ignore[union-attr]
            if message is None:
                self.failure = BlobIOError(0, f"the blob I/O process exited (code {self.proc.wait()})")
            elif message[0] != batch:
                self.failure = BlobIOError(0, f"blob I/O out of step: reply for batch {message[0]}, not {batch}")
            elif not message[1]:
                errno, text = message[2]
                raise OSError(errno, text)
            else:
                return message[2]
        raise self.failure


class _Reply:
    def __init__(self, io: ProcessIO, batch: int) -> None:
        self.io, self.batch = io, batch

    def result(self) -> list[str]:
        return self.io._receive(self.batch)


BlobIO = ThreadIO | ProcessIO


class BlobBatch:
    """The blobs of one group commit on their way to durable files.

    `add` queues a blob; a streaming batch (ProcessIO) hands each full chunk to an engine at
    once, so the files are written while the caller goes on planning; otherwise the whole
    batch goes when `durable()` is called. With several engines (blob I/O processes) the
    chunks are dealt out in turn. `durable()` returns what the caller waits on (`.result()`:
    the ids written) before it commits rows that reference the blobs."""

    CHUNK = 64  # blobs per hand-over: one message (or one task) per chunk, not per blob

    def __init__(self, ios: Sequence[BlobIO], *, stream: bool,
                 known: Callable[[list[str]], Mapping[str, bool]] | None) -> None:
        self.ios, self.stream, self.known = ios, stream, known
        self.id = next(_batch_ids)
        self.pending: list[tuple[str, bytes]] = []
        self.turn = 0

    def add(self, blob_id: str, data: bytes) -> None:
        self.pending.append((blob_id, data))
        if self.stream and len(self.pending) >= self.CHUNK:
            self._hand_over()

    def durable(self) -> Result:
        self._hand_over()
        return _Every([io.finish(self.id) for io in self.ios])

    def _hand_over(self) -> None:
        if not self.pending:
            return
        chunk, self.pending = self.pending, []
        # only a blob that has a row can already have a good copy: look for those alone
        known = self.known([blob_id for blob_id, _ in chunk]) if self.known else None
        if known:  # stored inline already (intact): no file for the same content
            chunk = [(blob_id, data) for blob_id, data in chunk if not known.get(blob_id)]
        io = self.ios[self.turn % len(self.ios)]
        self.turn += 1
        io.stage(self.id, [(blob_id, data, known is None or blob_id in known) for blob_id, data in chunk])


class _Every:
    """The results of one batch from every engine: all are read (each engine's replies stay in
    step), then the first failure is raised."""

    def __init__(self, results: list[Result]) -> None:
        self.results = results

    def result(self) -> list[str]:
        written: list[str] = []
        failure: BaseException | None = None
        for result in self.results:
            try:
                written += result.result()
            except Exception as exc:  # noqa: BLE001 - the others must still be read
                failure = failure or exc
        if failure is not None:
            raise failure
        return written


# -- the blob I/O process ---------------------------------------------------------------------
def _take_frame(buffer: bytearray) -> list[Any] | None:
    if len(buffer) < 4:
        return None
    (size,) = _LENGTH.unpack_from(buffer)
    if len(buffer) < 4 + size:
        return None
    message = _decode(buffer[4 : 4 + size])  # one copy of the frame, not two
    del buffer[: 4 + size]
    return message


def _read_frame(fd: int, buffer: bytearray) -> list[Any] | None:
    """The next message from fd (None at EOF)."""
    while (message := _take_frame(buffer)) is None:
        data = os.read(fd, 1 << 20)
        if not data:
            return None
        buffer += data
    return message


def serve(root: str, inp: int = 0, out: int = 1) -> None:
    """The child's loop: stage, finish, and publish in the background while staging goes on."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the writer; the writer stops us
    blobs = BlobFiles(root)
    writer = BlobWriter(blobs, background=True)
    buffer = bytearray()
    while True:
        message = _take_frame(buffer)
        if message is None:
            data = os.read(inp, 1 << 20)
            if not data:
                break  # the writer is gone: staged anonymous files vanish with us
            buffer += data
            continue
        op, batch = message[0], message[1]
        if op == "stage":
            writer.stage(batch, message[2])
            if len(writer.staged) >= writer.EAGER_MIN and not writer.busy():
                writer.publish_soon()
            continue
        try:
            reply = [batch, True, writer.finish(batch)]
        except OSError as exc:
            reply = [batch, False, [exc.errno or 0, str(exc)]]
        except Exception as exc:  # noqa: BLE001 - the writer gets it as the batch's failure
            reply = [batch, False, [0, repr(exc)]]
        frame = _encode(reply)
        _write_all(out, _LENGTH.pack(len(frame)) + frame)
    writer.close()
    blobs.close()
