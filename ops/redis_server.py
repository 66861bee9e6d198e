"""An embedded, private `redis-server`: 127.0.0.1 only, a free port, AOF inside a directory.

Used by `sessiondb up` when no broker is configured (data in `<root>/redis/`) and by the
test suite (a temp dir). Owns starting, waiting for and stopping that one process; it
must never touch a Redis it did not start (never the machine's 6379).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

INSTALL_HINT = "redis-server not found: run ./dev up (it installs it) or apt-get install redis-server"


class RedisNotFound(RuntimeError):
    def __init__(self) -> None:
        super().__init__(INSTALL_HINT)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EmbeddedRedis:
    def __init__(self, directory: str | Path, port: int | None = None, appendfsync: str = "everysec") -> None:
        self.dir = Path(directory).resolve()
        self._pick_port = not port  # a port we chose may be taken before redis-server binds it
        self.port = port or free_port()
        self.appendfsync = appendfsync
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0, **popen: object) -> EmbeddedRedis:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisNotFound()
        self.dir.mkdir(parents=True, exist_ok=True)
        logfile = self.dir / "redis.log"
        retries = 4
        while True:
            logged = logfile.stat().st_size if logfile.exists() else 0
            args = [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.dir),
                    "--appendonly", "yes", "--appendfsync", self.appendfsync, "--save", "",
                    "--protected-mode", "yes", "--daemonize", "no", "--logfile", str(logfile)]
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, **popen)  # type: ignore[call-overload]
            try:
                self.wait_ready(timeout)
            except RuntimeError:
                # Between free_port() and redis-server's bind another process may take the port: if we
                # chose it (and no client knows it yet, i.e. before the first start), choose another.
                lost_port = self.proc.poll() is not None and logfile.exists() and \
                    b"Address already in use" in logfile.read_bytes()[logged:]
                if not (self._pick_port and lost_port and retries):
                    raise
                retries -= 1
                self.port = free_port()
                continue
            self._pick_port = False  # started: clients know this port now, a restart must keep it
            return self

    def wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.5)
        try:
            while True:
                if self.proc is not None and self.proc.poll() is not None:
                    logfile = self.dir / "redis.log"
                    log = logfile.read_text(errors="replace")[-500:] if logfile.exists() else ""
                    raise RuntimeError(f"redis-server exited with {self.proc.returncode}: {log}")
                try:
                    if client.ping():
                        return
                except redis.RedisError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on port {self.port} did not answer within {timeout}s")
                time.sleep(0.05)
        finally:
            client.close()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM: Redis flushes the AOF and exits; SIGKILL if it does not within `timeout`."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
