"""Content-addressed blob files: `blobs/<2 hex>/<2 hex>/<64 hex blake3>`.

The BlobStore owns payload bytes on disk and nothing else: it never touches SQLite. A
blob's path is derived from its hash only, never from a stored string, so no id can
escape the blob tree. Writes are crash-safe: bytes go to a temp file in the target
directory (an anonymous O_TMPFILE inode where the file system has them, else a named
`<final>.tmp-<hex>` file), the file system is synced, the temp file gets its final name
atomically (linkat, or rename) and the file system is synced again, so a final name only
ever holds complete, durable bytes. A group of blobs shares those two syncs (`BlobBatch`
in io.py drives these primitives), which is what makes group commit cheap. An existing
good blob is reused; an existing corrupt one is moved to quarantine/ and replaced.

`BlobFiles` here knows nothing of the I/O engines; `BlobStore` (store.py) adds them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import secrets
import time
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import blake3

from ..errors import CorruptBlobError
from ..private import FILE_MODE, make_private_dirs
from .canonical import BLOB_ID_RE

TEMP_MARK = ".tmp-"

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_syncfs = getattr(_libc, "syncfs", None)
_linkat = getattr(_libc, "linkat", None)
_AT_FDCWD, _AT_SYMLINK_FOLLOW, _AT_EMPTY_PATH = -100, 0x400, 0x1000


class Staged(NamedTuple):
    """A blob written but not yet visible: a named temp file, or an anonymous inode (fd)."""

    final: str
    temp: str | None
    fd: int | None

    def close(self) -> None:
        """After publishing: the anonymous inode has its name now."""
        if self.fd is not None:
            os.close(self.fd)

    def discard(self) -> None:
        """Instead of publishing: an anonymous inode vanishes when closed, a named temp file is removed."""
        if self.fd is not None:
            self.close()
        elif self.temp is not None:
            try:
                os.unlink(self.temp)
            except FileNotFoundError:
                pass


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def sync_filesystem(fd: int) -> None:
    """Make every file and directory change on fd's file system durable, in one call.

    Linux's syncfs(2) is one flush of the journal for a whole group of new files, instead of
    an fsync per file and per directory. Elsewhere fall back to a global sync."""
    if _syncfs is not None:
        if _syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"syncfs failed: {os.strerror(err)}")
    else:  # pragma: no cover - non-Linux
        os.sync()


def _read(path: str) -> bytes:
    with open(path, "rb", buffering=0) as f:
        return f.readall()


class BlobFiles:
    """The blob tree on disk: paths, reads, staging and publishing one file, quarantine."""

    def __init__(self, root: str | os.PathLike[str], *, readonly: bool = False) -> None:
        self.root = Path(root)
        self.dir = self.root / "blobs"
        self.quarantine_dir = self.root / "quarantine"
        if not readonly:  # a read-only store creates nothing; a missing blobs/ reads as missing blobs
            make_private_dirs(self.dir)
        self._dirstr = str(self.dir)
        self._dirfd = os.open(self.dir, os.O_RDONLY) if self.dir.is_dir() else -1
        self._anonymous_ok = _linkat is not None and os.path.exists(f"/proc/self/fd/{self._dirfd}")
        self._empty_path_ok = True  # linkat(fd, "") needs CAP_DAC_READ_SEARCH; else via /proc/self/fd

    def close(self) -> None:
        if self._dirfd >= 0:
            os.close(self._dirfd)
            self._dirfd = -1

    # -- paths ---------------------------------------------------------------------------
    def path(self, blob_id: str) -> Path:
        return Path(self._path(blob_id))

    def _path(self, blob_id: str) -> str:
        if not BLOB_ID_RE.match(blob_id):
            raise ValueError(f"not a blob id: {blob_id!r}")
        hexdigest = blob_id[7:]
        return f"{self._dirstr}/{hexdigest[:2]}/{hexdigest[2:4]}/{hexdigest}"

    # -- reading -------------------------------------------------------------------------
    def get(self, blob_id: str, *, verify: bool = True) -> bytes:
        try:
            data = _read(self._path(blob_id))
        except FileNotFoundError:
            raise CorruptBlobError(blob_id, "missing: no file in the blob store") from None
        if verify and "blake3:" + blake3.blake3(data).hexdigest() != blob_id:
            raise CorruptBlobError(blob_id, "hash mismatch: the file's bytes changed")
        return data

    def is_good(self, blob_id: str) -> bool | None:
        """True: present and intact; False: present but corrupt; None: absent."""
        try:
            data = _read(self._path(blob_id))
        except FileNotFoundError:
            return None
        return "blake3:" + blake3.blake3(data).hexdigest() == blob_id

    # -- writing (the primitives a blob I/O engine drives) ---------------------------------
    def _stage(self, blob_id: str, data: bytes, check: bool = True) -> Staged | None:
        """Write one blob to a temp file in its final directory (None: a good copy exists).

        Preferably an anonymous O_TMPFILE inode, later linked to its final name (one
        directory operation, and a crash leaves no temp file behind); otherwise a named
        temp file, later renamed."""
        final = self._path(blob_id)
        # `check=False`: the caller knows no row references this blob, so a file at its name
        # can only be a leftover; publishing replaces it (linkat's EEXIST path checks it)
        state = self.is_good(blob_id) if check else None
        if state:
            return None
        if state is False:
            self.quarantine(blob_id)
        parent = final[:-65]
        try:
            return self._write_temp(final, parent, data)
        except FileNotFoundError:  # the first blob of its directory (cheaper than looking first)
            make_private_dirs(parent)
            return self._write_temp(final, parent, data)

    def _write_temp(self, final: str, parent: str, data: bytes) -> Staged:
        if self._anonymous_ok:
            try:
                fd = os.open(parent, os.O_TMPFILE | os.O_WRONLY, FILE_MODE)
            except FileNotFoundError:
                raise
            except OSError:  # the file system has no O_TMPFILE: named temp files from now on
                self._anonymous_ok = False
            else:
                try:
                    _write_all(fd, data)
                except BaseException:
                    os.close(fd)
                    raise
                return Staged(final, None, fd)
        temp = f"{final}{TEMP_MARK}{secrets.token_hex(4)}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        try:
            _write_all(fd, data)
        finally:
            os.close(fd)
        return Staged(final, temp, None)

    def _publish(self, staged: Staged) -> None:
        """Give a durable temp file its final name, atomically."""
        if staged.fd is None:
            os.rename(staged.temp, staged.final)  # type: ignore[arg-type]
            return
        for attempt in (1, 2):
            if self._link_fd(staged.fd, staged.final.encode()) == 0:
                return
            err = ctypes.get_errno()
            blob_id = "blake3:" + os.path.basename(staged.final)
            if err == errno.EEXIST and attempt == 1:
                if self.is_good(blob_id):
                    return  # someone wrote the same bytes meanwhile
                self.quarantine(blob_id)
                continue
            raise OSError(err, f"linkat {staged.final}: {os.strerror(err)}")

    def _link_fd(self, fd: int, final: bytes) -> int:
        """linkat(2) an anonymous inode to its name: straight from the descriptor where this
        process may (half the kernel time of a lookup through /proc), else through /proc."""
        if self._empty_path_ok:
            if _linkat(fd, b"", _AT_FDCWD, final, _AT_EMPTY_PATH) == 0:
                return 0
            if ctypes.get_errno() not in (errno.ENOENT, errno.EPERM, errno.EINVAL):
                return -1  # EEXIST and real failures are the caller's
        linked = _linkat(_AT_FDCWD, f"/proc/self/fd/{fd}".encode(), _AT_FDCWD, final, _AT_SYMLINK_FOLLOW)
        if linked == 0:
            self._empty_path_ok = False  # not allowed here: through /proc from now on
        return linked

    def quarantine(self, blob_id: str) -> Path | None:
        """Move a (corrupt) blob file out of the blob tree; never deletes it."""
        source = self.path(blob_id)
        make_private_dirs(self.quarantine_dir)
        target = self.quarantine_dir / f"{source.name}.{time.time_ns()}"
        try:
            os.rename(source, target)
        except FileNotFoundError:
            return None
        return target

    def iter_files(self) -> Iterable[Path]:
        for first in sorted(self.dir.iterdir()):
            if first.is_dir():
                for second in sorted(first.iterdir()):
                    if second.is_dir():
                        yield from sorted(second.iterdir())
