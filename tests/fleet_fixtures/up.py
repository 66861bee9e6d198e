"""`sessiondb up` as a test runs it: a real process in the background, its output in a file.

`Up(tmp_path, env)` starts one; `ups` (a fixture) kills every one a test started, whatever
the test did. Waits are for conditions, with generous timeouts (a loaded 2-core machine).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from . import wait_until

CLI = [sys.executable, "-m", "sessiondb.ops.cli"]


class Up:
    """One `sessiondb up` in the background (umask 022, as a user's shell), output in a file."""

    def __init__(self, tmp_path: Path, env: dict[str, str], name: str = "up") -> None:
        self.log_path = tmp_path / f"{name}.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([*CLI, "up"], env=env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True, umask=0o022)

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_running(self, timeout: float = 240) -> None:
        wait_until(lambda: "fleet: running" in self.output or self.proc.poll() is not None, timeout,
                   "`sessiondb up` to say it runs")
        assert self.proc.poll() is None and "fleet: running" in self.output, self.output

    def stop(self) -> None:
        """Ctrl-C, and a clean exit."""
        self.proc.send_signal(signal.SIGINT)
        assert self.proc.wait(120) == 0, self.output

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@pytest.fixture
def ups():
    """A list to put each `Up` in; every one is killed (its whole process group) at the end."""
    started: list[Up] = []
    yield started
    for up in started:
        up.kill()
