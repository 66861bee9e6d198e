"""The launcher lock of `sessiondb up`: one fleet per store root, and where to find it.

`<root>/fleet/launcher.lock` is flocked (`store.writer_lock.FileLock`) by the running
`sessiondb up` for as long as it runs, and holds a JSON line saying where that fleet is:
the launcher's pid, its broker URL and Flower URL. A second `up` on the same root cannot
take the lock and refuses at once, naming the running fleet, before it starts anything
(a second Redis on the same AOF directory, or a `broker_url` file overwritten and later
deleted under the first fleet). The kernel drops the lock when the launcher dies, so a
stale file never blocks a new fleet. Owns only this lock and its record.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from sessiondb.store.writer_lock import FileLock
from sessiondb.tasks.broker import printable_url
from sessiondb.tasks.errors import FleetAlreadyRunningError

LAUNCHER_FILE = "fleet/launcher.lock"


class LauncherLock:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.lock = FileLock(root / LAUNCHER_FILE)

    def acquire(self) -> None:
        """Take the lock or raise `FleetAlreadyRunningError` naming the fleet that holds it."""
        if not self.lock.try_acquire(self._record(broker_url="", flower_url="")):
            info = read_record(self.root)
            raise FleetAlreadyRunningError(str(self.root), info.get("pid"),
                                           printable_url(info.get("broker_url", "")), info.get("flower_url", ""))

    def record(self, broker_url: str, flower_url: str) -> None:
        """Say where this fleet is, once its broker and Flower ports are known."""
        self.lock.write(self._record(broker_url, flower_url))

    def release(self) -> None:
        if self.lock.held:
            self.lock.write("")  # the file stays (unlinking a lock file races with a new launcher)
        self.lock.release()

    @staticmethod
    def _record(broker_url: str, flower_url: str) -> str:
        return json.dumps({"pid": os.getpid(), "broker_url": broker_url, "flower_url": flower_url}) + "\n"


def read_record(root: Path) -> dict[str, Any]:
    """What the running (or last) launcher recorded; {} when nothing readable is there."""
    try:
        record = json.loads((root / LAUNCHER_FILE).read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}
