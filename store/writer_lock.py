"""The writer lock: an exclusive `flock` on `<root>/writer.lock`, and the file lock it is made of.

Whoever holds the writer lock is THE writer of a store root: the fleet's writer holds it
for as long as it runs (anyone else waits as a hot standby), and `Store.commit_many` in
any other process takes it for the length of one commit or refuses to write
(`WriterLockHeldError`). The kernel drops a `flock` when its holder dies, however it dies
(`kill -9` included), so a standby takes over without any lease or heartbeat. The file
holds the holder's pid, for operators, tests and error messages.

It lives in `store/` (not `workers/`) so the storage library can check it without
importing Celery; the fleet's writer uses the same class. Owns only the locks; it must
never touch the store's data or the broker.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable
from pathlib import Path

from .private import FILE_MODE, make_private_dirs

LOCK_FILE = "writer.lock"

#: the FileLock objects of THIS process that hold their lock, by resolved path. flock locks
#: belong to an open file, not to a process: a second open of the same file in the same
#: process would conflict with the first, so code that needs to know "do we hold it?" asks here.
_held: dict[Path, FileLock] = {}


class FileLock:
    """An exclusive, non-blocking `flock` on one file, which then holds a line of text (the pid)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._key = self.path.resolve()  # the key of `_held`, resolved once (a resolve is a stat per part)
        self._fd: int | None = None
        self._pid = 0  # the process that took it: a forked child inherits the fd, not the role

    @property
    def held(self) -> bool:
        return self._fd is not None and self._pid == os.getpid()

    def held_in_process(self) -> bool:
        """Does this process hold this file's lock, through this or any other FileLock object?
        (No file-system call: cheap enough to ask before every commit.)"""
        lock = _held.get(self._key)
        return lock is not None and lock.held

    def try_acquire(self, content: str | None = None) -> bool:
        if self.held:
            return True
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        except FileNotFoundError:  # the directory first (not on every try: a commit takes the lock each time)
            make_private_dirs(self.path.parent)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd, self._pid = fd, os.getpid()
        self.write(f"{os.getpid()}\n" if content is None else content)
        _held[self._key] = self
        return True

    def write(self, content: str) -> None:
        """Replace the file's content (only while the lock is ours).

        Content that is already there is not written again: a process that takes the lock
        for each commit finds its own pid there, and a truncate costs ~0.5 ms on some file
        systems (it changes the inode), more than the rest of a small commit."""
        assert self._fd is not None
        data = content.encode()
        if os.pread(self._fd, len(data) + 1, 0) == data:
            return
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)

    def release(self) -> None:
        if self._fd is not None:
            if self.held:
                _held.pop(self._key, None)
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def is_locked(path: str | Path) -> bool:
    """Does any process hold an exclusive flock on `path` right now?

    Probes with a shared, non-blocking flock that is dropped at once: it can only succeed
    when nobody holds the exclusive one. A writer that tries to take the lock during the
    probe fails that one try and takes it on its next poll."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also drops the shared lock, if we got it
    return False


class WriterLock(FileLock):
    """The writer lock of the store root `root`."""

    def __init__(self, root: str | Path) -> None:
        super().__init__(Path(root) / LOCK_FILE)

    def acquire(self, poll_s: float = 0.2, on_wait: Callable[[int | None], None] | None = None) -> None:
        """Block until the lock is ours; `on_wait(holder_pid)` is called once if we have to wait."""
        waited = False
        while not self.try_acquire():
            if not waited and on_wait is not None:
                on_wait(holder_pid(self.path.parent))
            waited = True
            time.sleep(poll_s)


def held_here(root: str | Path) -> bool:
    """Does this process hold the writer lock of `root` (through any WriterLock object)?"""
    lock = _held.get((Path(root) / LOCK_FILE).resolve())
    return lock is not None and lock.held


def held_elsewhere(root: str | Path) -> bool:
    """Does another process hold the writer lock of `root` right now?"""
    return not held_here(root) and is_locked(Path(root) / LOCK_FILE)


def holder_pid(root: str | Path) -> int | None:
    """The pid written by the current (or last) holder, or None."""
    try:
        text = (Path(root) / LOCK_FILE).read_text().strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None
