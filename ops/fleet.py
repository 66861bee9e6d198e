"""`sessiondb up`: the whole fleet on one machine, supervised, stopped cleanly on Ctrl-C.

Starts (when no broker is configured) a private `redis-server` on 127.0.0.1 with AOF in
`<root>/redis/`, records its URL in `<root>/fleet/broker_url` for later commands, then
the writer, indexer, scanner, reader, beat and Flower as child processes (logs in
`<root>/fleet/logs/`). A child that dies is restarted. SIGINT/SIGTERM stops the children
(SIGTERM = Celery's warm shutdown, then SIGKILL of the child's process group after a
grace period) and finally Redis, leaving no process behind; children also get SIGTERM
from the kernel if the launcher itself is killed. Owns process supervision only; it must
never commit or read the store.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from sessiondb.store import Settings
from sessiondb.tasks.celery_app import BROKER_FILE

from .redis_server import EmbeddedRedis, free_port

ROLES = ("writer", "indexer", "scanner", "reader")
STOP_GRACE_S = 15.0


def die_with_parent() -> None:
    """preexec_fn: the kernel sends the child SIGTERM when its parent dies (Linux)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class Child:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name, self.argv, self.env, self.log_path = name, argv, env, log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(self.argv, env=self.env, stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent)
        log.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal_group(self, sig: int) -> None:
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass


class Fleet:
    def __init__(self, settings: Settings, say: Callable[[str], None] = print, flower: bool = True,
                 beat: bool = True, roles: tuple[str, ...] = ROLES) -> None:
        self.settings, self.say = settings, say
        self.root = Path(settings.root).resolve()
        self.redis: EmbeddedRedis | None = None
        self.children: list[Child] = []
        self.with_flower, self.with_beat, self.roles = flower, beat, roles
        self.broker_url = settings.broker_url
        self.flower_port = settings.flower_port

    @property
    def flower_url(self) -> str:
        return f"http://127.0.0.1:{self.flower_port}/"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(SESSIONDB_ROOT=str(self.root), SESSIONDB_BROKER_URL=self.broker_url,
                   SESSIONDB_FLOWER_PORT=str(self.flower_port))
        return env

    def start(self) -> None:
        (self.root / "fleet" / "logs").mkdir(parents=True, exist_ok=True)
        if not self.broker_url:
            redis_server = EmbeddedRedis(self.root / "redis", appendfsync=self.settings.redis_appendfsync)
            self.redis = redis_server.start(start_new_session=True, preexec_fn=die_with_parent)
            self.broker_url = self.redis.url
            self.say(f"redis: private redis-server on {self.broker_url} (AOF in {self.redis.dir})")
        (self.root / BROKER_FILE).write_text(self.broker_url + "\n")
        if self.with_flower and not port_free(self.flower_port):
            self.flower_port = free_port()
        cli = [sys.executable, "-m", "sessiondb.ops.cli"]
        specs = [(role, [*cli, "worker", role]) for role in self.roles]
        if self.with_beat:
            specs.append(("beat", [*cli, "beat"]))
        if self.with_flower:
            specs.append(("flower", [*cli, "flower", "--port", str(self.flower_port)]))
        env, log_dir = self.env(), self.root / "fleet" / "logs"
        for name, argv in specs:
            child = Child(name, argv, env, log_dir)
            child.start()
            self.children.append(child)
        self.say(f"fleet: {', '.join(c.name for c in self.children)} started (logs in {log_dir})")

    def wait_flower(self, timeout: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.flower_url + "healthcheck", timeout=1).close()
                return True
            except urllib.error.HTTPError:
                return True  # it answers (e.g. 401 with basic auth)
            except OSError:
                time.sleep(0.2)
        return False

    def supervise_once(self) -> None:
        """Restart children that died (with a short back-off)."""
        for child in self.children:
            if not child.alive():
                child.restarts += 1
                self.say(f"fleet: {child.name} exited ({child.proc.returncode if child.proc else '?'}); restarting")
                time.sleep(min(5.0, 0.5 * child.restarts))
                child.start()

    def stop(self) -> None:
        for child in self.children:
            if child.alive():
                child.signal_group(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for child in self.children:
            while child.alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            child.signal_group(signal.SIGKILL)  # anything left in its group (pool processes)
            if child.proc is not None:
                child.proc.wait()
        if self.redis is not None:
            self.redis.stop()
            (self.root / BROKER_FILE).unlink(missing_ok=True)
        self.say("fleet: stopped")


def run_until_signal(fleet: Fleet, after_start: Callable[[], None] | None = None) -> None:
    """Start the fleet, run `after_start`, supervise until SIGINT/SIGTERM, then stop everything."""
    stopping: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        stopping.append(signum)
        if len(stopping) == 1:
            raise KeyboardInterrupt  # leave whatever we are waiting for; `finally` stops the fleet

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        fleet.start()
        if fleet.with_flower and fleet.wait_flower():
            auth = " (basic auth)" if fleet.settings.flower_basic_auth else ""
            fleet.say(f"flower: {fleet.flower_url}{auth}  metrics: {fleet.flower_url}metrics")
        if after_start is not None:
            after_start()
        fleet.say("fleet: running; Ctrl-C stops everything")
        while True:
            fleet.supervise_once()
            time.sleep(0.2)
    except KeyboardInterrupt:
        fleet.say("fleet: stopping")
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean stop short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        fleet.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
