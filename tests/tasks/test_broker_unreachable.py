"""A broker nobody listens on is reported as such, within the caller's timeout.

Real sockets: a free port nobody listens on, and a real redis-server that is stopped
while a producer waits for its receipt.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from sessiondb.ops.redis_server import EmbeddedRedis, free_port
from sessiondb.store import Settings
from sessiondb.tasks import SessionClient
from sessiondb.tasks.broker import check_broker, printable_url
from sessiondb.tasks.errors import BrokerUnreachableError


def test_ping_of_a_broker_nobody_listens_on_fails_within_its_timeout(tmp_path):
    url = f"redis://127.0.0.1:{free_port()}/0"
    with SessionClient(Settings(root=str(tmp_path), broker_url=url)) as client:
        started = time.monotonic()
        with pytest.raises(BrokerUnreachableError) as failed:
            client.ping(2.0)
        assert time.monotonic() - started < 4.0
    assert str(failed.value).startswith(f"cannot reach the broker at {url}")


def test_a_password_never_appears_in_the_message():
    assert printable_url("redis://:s3cret@127.0.0.1:1/0") == "redis://:***@127.0.0.1:1/0"
    with pytest.raises(BrokerUnreachableError) as failed:
        check_broker("redis://user:s3cret@127.0.0.1:1/0", 0.5)
    assert "s3cret" not in str(failed.value) and "user:***@127.0.0.1:1" in str(failed.value)


def test_cli_write_against_a_broker_nobody_listens_on_says_so_within_the_timeout(tmp_path):
    path = tmp_path / "w.jsonl"
    path.write_text('{"write_id": "x", "session": "x", "events": [{"type": "session/started"}]}\n')
    url = f"redis://127.0.0.1:{free_port()}/0"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONDB_")}
    env.update(SESSIONDB_ROOT=str(tmp_path / "store"), SESSIONDB_BROKER_URL=url)
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "sessiondb.ops.cli", "write", str(path), "--wait", "--timeout", "5"],
                          env=env, capture_output=True, timeout=120)
    elapsed = time.monotonic() - started
    stderr = done.stderr.decode()
    assert done.returncode == 1 and f"cannot reach the broker at {url}" in stderr, stderr
    assert "writer running" not in stderr and "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1
    # the 5 s given plus the interpreter's start (10-20 s on a loaded 2-core machine); kombu's own
    # retries, the bug this guards against, wait minutes
    assert elapsed < 5 + 40


def test_a_stale_broker_file_left_by_a_killed_fleet_is_named(tmp_path):
    root = tmp_path / "store"
    (root / "fleet").mkdir(parents=True)
    url = f"redis://127.0.0.1:{free_port()}/0"
    (root / "fleet" / "broker_url").write_text(url + "\n")  # what a `sessiondb up` killed with -9 leaves
    path = tmp_path / "w.jsonl"
    path.write_text('{"write_id": "x", "session": "x", "events": [{"type": "session/started"}]}\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONDB_")}
    for command in (["write", str(path), "--wait", "--timeout", "2"], ["demo"]):
        done = subprocess.run([sys.executable, "-m", "sessiondb.ops.cli", *command, "--root", str(root)], env=env,
                              capture_output=True, timeout=120)
        stderr = done.stderr.decode()
        assert done.returncode == 1 and f"cannot reach the broker at {url}" in stderr, stderr
        assert str(root / "fleet" / "broker_url") in stderr and "Traceback" not in stderr


def test_a_receipt_wait_on_a_broker_that_went_away_names_the_broker_not_the_writer(tmp_path):
    server = EmbeddedRedis(tmp_path / "redis").start()
    try:
        with SessionClient(Settings(root=str(tmp_path / "store"), broker_url=server.url)) as client:
            handle = client.write("s", [{"type": "session/started"}])  # no writer: it stays queued
            client.flush()
            server.stop()
            with pytest.raises(BrokerUnreachableError) as failed:
                handle.receipt(timeout=5)
            assert f"127.0.0.1:{server.port}" in str(failed.value)
    finally:
        server.kill()
