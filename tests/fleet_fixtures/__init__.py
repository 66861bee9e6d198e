"""Fixtures for the fleet tests: a REAL redis-server on a free port, real Celery workers
in subprocesses, real store roots. Never the machine's Redis, never a mocked broker.

Imported by the conftest.py of tests/tasks, tests/workers and tests/ops.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery

from sessiondb.ops.redis_server import EmbeddedRedis
from sessiondb.store import Settings, Store
from sessiondb.store.writer_lock import holder_pid
from sessiondb.tasks import make_app

PRODUCER = str(Path(__file__).with_name("producer.py"))


def wait_until(predicate: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


class Fleet:
    """Worker subprocesses of one test, all killed at teardown."""

    def __init__(self, root: Path, broker_url: str, logs: Path) -> None:
        self.root, self.broker_url, self.logs = root, broker_url, logs
        self.procs: list[subprocess.Popen[bytes]] = []
        self.redis = redis.Redis.from_url(broker_url)
        self._n = 0
        self._app: Celery | None = None
        self.extra_env: dict[str, str] = {}

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONDB_")}
        env.update(SESSIONDB_ROOT=str(self.root), SESSIONDB_BROKER_URL=self.broker_url,
                   SESSIONDB_GROUP_COMMIT_WAIT_MS="5")
        env.update(self.extra_env)
        return env

    @property
    def settings(self) -> Settings:
        return Settings.from_env(self.env)

    @property
    def app(self) -> Celery:
        """A Celery app on THIS test's Redis (never the module-level one, which reads the environment)."""
        if self._app is None:
            self._app = make_app(self.settings)
            self._app.loader.import_default_modules()
        return self._app

    def spawn(self, argv: list[str], name: str, **kw: Any) -> subprocess.Popen[bytes]:
        self._n += 1
        log = open(self.logs / f"{self._n:02d}-{name}.log", "wb")  # noqa: SIM115
        stdout = kw.pop("stdout", None)
        proc = subprocess.Popen(argv, env=kw.pop("env", self.env), stdout=log if stdout is None else stdout,
                                stderr=subprocess.STDOUT if stdout is None else log, start_new_session=True, **kw)
        proc.log_path = log.name  # type: ignore[attr-defined]
        log.close()
        self.procs.append(proc)
        return proc

    def worker(self, role: str) -> subprocess.Popen[bytes]:
        return self.spawn([sys.executable, "-m", "sessiondb.ops.cli", "worker", role], role)

    def writer(self, wait_active: bool = True) -> subprocess.Popen[bytes]:
        proc = self.worker("writer")
        if wait_active:
            self.wait_writer(proc)
        return proc

    def wait_writer(self, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
        wait_until(lambda: holder_pid(self.root) == proc.pid and b"ready." in self.log(proc), timeout,
                   f"writer {proc.pid} to take the lock")

    def log(self, proc: subprocess.Popen[bytes]) -> bytes:
        return Path(proc.log_path).read_bytes()  # type: ignore[attr-defined]

    def producer(self, prefix: str, count: int, *extra: str) -> subprocess.Popen[bytes]:
        return self.spawn([sys.executable, PRODUCER, prefix, str(count), *extra], f"producer-{prefix}",
                          stdout=subprocess.PIPE)

    def producer_result(self, proc: subprocess.Popen[bytes], timeout: float = 120.0) -> dict[str, Any]:
        out, _ = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, self.log(proc).decode(errors="replace")[-3000:]
        return json.loads(out.decode().strip().splitlines()[-1])

    def kill9(self, proc: subprocess.Popen[bytes]) -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()

    def held(self) -> int:
        """`writes` messages out of the queue and not acknowledged: in `writes.inflight` (or kombu's `unacked`)."""
        return self.redis.llen("writes.inflight") + self.redis.hlen("unacked")

    def stats(self) -> dict[str, str]:
        from sessiondb.workers import stats

        return stats.read(self.redis)

    def store(self) -> Store:
        return Store.open(self.root, Settings.from_env(self.env))

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                self.kill9(proc)
        self.redis.close()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def fleet(tmp_path: Path, redis_server: EmbeddedRedis) -> Iterator[Fleet]:
    client = redis.Redis(host="127.0.0.1", port=redis_server.port)
    client.flushall()
    client.close()
    logs = tmp_path / "logs"
    logs.mkdir()
    f = Fleet(tmp_path / "store", redis_server.url, logs)
    yield f
    f.close()


def messages_of(store: Store, session: str) -> list[str]:
    return [m["content"] for m in store.message_records(session, include_content=True, all_branches=True)]


def expected_contents(prefix: str, count: int) -> list[str]:
    return [f"{prefix}:{k}" for k in range(count)]
