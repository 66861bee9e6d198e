"""The writer lock: an exclusive `flock` on `<root>/writer.lock`.

Whoever holds it is THE writer; anyone else waits (hot standby). The kernel drops the
lock when the holder dies, however it dies (`kill -9` included), so the standby takes
over without any lease or heartbeat. The file holds the holder's pid, for operators and
tests. Owns only the lock; it must never touch the store or the broker.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable
from pathlib import Path

LOCK_FILE = "writer.lock"


class WriterLock:
    def __init__(self, root: str | Path) -> None:
        self.path = Path(root) / LOCK_FILE
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return True

    def acquire(self, poll_s: float = 0.2, on_wait: Callable[[int | None], None] | None = None) -> None:
        """Block until the lock is ours; `on_wait(holder_pid)` is called once if we have to wait."""
        waited = False
        while not self.try_acquire():
            if not waited and on_wait is not None:
                on_wait(holder_pid(self.path.parent))
            waited = True
            time.sleep(poll_s)

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def holder_pid(root: str | Path) -> int | None:
    """The pid written by the current (or last) holder, or None."""
    try:
        text = (Path(root) / LOCK_FILE).read_text().strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None
