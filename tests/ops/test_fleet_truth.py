"""`sessiondb up` tells the truth: "running" only when the fleet runs, a child that dies at
start-up is named (role, exit code, log, error line), one fleet per root, no WARNING on a
normal start, each queue on its own exchange.

Real `sessiondb up` processes with their private redis-server, real workers, real store
roots; every wait is for a condition, with generous timeouts (a loaded 2-core machine).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis
from fleet_fixtures import wait_until
from fleet_fixtures.processes import alive, clean_env, descendants
from fleet_fixtures.up import CLI, Up

from sessiondb.ops.redis_server import free_port
from sessiondb.store import Store, WriterLockHeldError
from sessiondb.store.writer_lock import WriterLock, holder_pid
from sessiondb.tasks.broker import printable_url


def redis_answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def test_a_writer_that_dies_at_start_up_fails_up_naming_role_log_and_error(tmp_path, ups):
    # A bad value that only the children read: the launcher never opens the store, the writer does.
    root = tmp_path / "store"
    env = clean_env(SESSIONDB_ROOT=str(root), SESSIONDB_FLOWER_PORT=str(free_port()),
                    SESSIONDB_SQLITE_SYNCHRONOUS="SOMETIMES")
    up = Up(tmp_path, env)
    ups.append(up)
    assert up.proc.wait(240) != 0
    output = up.output
    assert "fleet: running" not in output, output
    writer_log = root / "fleet" / "logs" / "writer.log"
    failure = next(line for line in output.splitlines() if line.startswith("error:"))
    assert "writer exited with code 1" in failure, output
    assert str(writer_log) in failure
    assert "sqlite_synchronous must be FULL, NORMAL or EXTRA, not 'SOMETIMES'" in failure
    assert "Traceback" not in output
    # Everything was stopped: the private Redis no longer answers, its URL is no longer advertised.
    broker = re.search(r"redis-server on (redis://\S+)", output).group(1)
    assert "sessiondb:***@" in broker  # printed masked; the password is in the credentials file
    broker = broker.replace("***", json.loads((root / "fleet" / "credentials").read_text())["redis_password"])
    assert not redis_answers(broker)
    assert not (root / "fleet" / "broker_url").exists()


def test_a_fleet_that_is_not_ready_in_time_is_stopped_and_up_exits_non_zero(tmp_path, ups):
    root = tmp_path / "store"
    env = clean_env(SESSIONDB_ROOT=str(root), SESSIONDB_FLOWER_PORT=str(free_port()),
                    SESSIONDB_FLEET_START_TIMEOUT_S="0.5")  # no Celery worker imports that fast
    up = Up(tmp_path, env)
    ups.append(up)
    assert up.proc.wait(240) != 0
    output = up.output
    assert "fleet: running" not in output and "did not start within 0.5s and was stopped" in output, output
    assert re.search(r"the writer \(pid \d+, log: \S+writer.log\) has not taken", output) and "fleet: stopped" in output
    broker = re.search(r"redis-server on (redis://\S+)", output).group(1)
    assert "sessiondb:***@" in broker  # printed masked; the password is in the credentials file
    broker = broker.replace("***", json.loads((root / "fleet" / "credentials").read_text())["redis_password"])
    assert not redis_answers(broker)


def test_up_refuses_at_once_when_a_writer_outside_the_fleet_holds_the_lock(tmp_path):
    root = tmp_path / "store"
    lock = WriterLock(root)
    assert lock.try_acquire()
    try:
        done = subprocess.run([*CLI, "up"], env=clean_env(SESSIONDB_ROOT=str(root)), capture_output=True,
                              timeout=120)
    finally:
        lock.release()
    assert done.returncode == 1
    assert f"held by pid {os.getpid()}" in done.stderr.decode() and b"running" not in done.stdout
    assert not (root / "redis").exists()  # refused before starting anything


def test_up_on_a_configured_broker_nobody_listens_on_says_so_and_starts_nothing(tmp_path):
    url = f"redis://127.0.0.1:{free_port()}/0"
    done = subprocess.run([*CLI, "up"], env=clean_env(SESSIONDB_ROOT=str(tmp_path / "store"), SESSIONDB_BROKER_URL=url),
                          capture_output=True, timeout=120)
    assert done.returncode == 1 and f"cannot reach the broker at {url}" in done.stderr.decode()
    assert b"fleet: running" not in done.stdout and b"started" not in done.stdout


def test_a_running_fleet_is_found_refuses_a_second_up_and_bars_direct_writes(tmp_path, ups):
    root, port = tmp_path / "store", free_port()
    env = clean_env(SESSIONDB_ROOT=str(root), SESSIONDB_FLOWER_PORT=str(port))
    first = Up(tmp_path, env, "first")
    ups.append(first)
    first.wait_running()
    broker_url = (root / "fleet" / "worker_broker_url").read_text().strip()  # the fleet's own user
    producer_url = (root / "fleet" / "broker_url").read_text().strip()  # the producers'
    shown_url = printable_url(broker_url)  # the password is never printed
    assert f"broker {shown_url}" in first.output and broker_url not in first.output

    # A second `up` on the same root refuses at once, naming the running fleet; it changes nothing.
    started = time.monotonic()
    second = subprocess.run([*CLI, "up"], env=env, capture_output=True, timeout=120)
    assert second.returncode == 1 and time.monotonic() - started < 60
    refusal = second.stderr.decode()
    assert "a fleet is already running" in refusal and f"pid {first.proc.pid}" in refusal, refusal
    assert shown_url in refusal and broker_url not in refusal and f"http://127.0.0.1:{port}/" in refusal
    assert b"redis-server" not in second.stdout
    assert (root / "fleet" / "broker_url").read_text().strip() == producer_url
    assert (root / "fleet" / "worker_broker_url").read_text().strip() == broker_url
    record = json.loads((root / "fleet" / "launcher.lock").read_text())
    assert record["pid"] == first.proc.pid and record["broker_url"] == shown_url

    # The first fleet still works and is found through the root: a write through it commits.
    path = tmp_path / "w.jsonl"
    path.write_text(json.dumps({"write_id": "t-1", "session": "t", "events": [
        {"type": "session/started"}, {"type": "message/added", "role": "user", "content": "via the fleet"}]}) + "\n")
    write = subprocess.run([*CLI, "write", str(path), "--wait", "--json"], env=clean_env(SESSIONDB_ROOT=str(root)),
                           capture_output=True, timeout=180)
    assert write.returncode == 0 and json.loads(write.stdout)[0]["status"] == "committed", write.stderr

    # Store.open() on the fleet's root from another process: reads work, writes are refused naming the writer.
    writer_pid = holder_pid(root)
    with Store.open(root) as store:
        assert [m["content"] for m in store.message_records("t", include_content=True)] == ["via the fleet"]
        with pytest.raises(WriterLockHeldError) as refused:
            store.commit({"write_id": "t-2", "session": "t", "events": [
                {"type": "message/added", "role": "user", "content": "behind the writer's back"}]})
        assert refused.value.holder_pid == writer_pid
        assert len(store.message_records("t")) == 1
    alias = subprocess.run([*CLI, "alias", "tee", "t", "--root", str(root)], env=clean_env(), capture_output=True,
                           timeout=60)
    assert alias.returncode == 1 and f"held by pid {writer_pid}" in alias.stderr.decode()
    assert b"Traceback" not in alias.stderr

    # A normal start logs nothing at WARNING, and each queue's banner names its own exchange.
    logs = root / "fleet" / "logs"
    for log in logs.glob("*.log"):  # Celery's format, and Tornado's (Flower)
        assert not re.search(r"WARNING/|^\[W ", log.read_text(errors="replace"), re.M), log
    assert "WARNING" not in first.output
    for role, queue in (("writer", "writes"), ("indexer", "index"), ("scanner", "integrity"), ("reader", "reads")):
        assert f".> {queue}" in (text := (logs / f"{role}.log").read_text()) and \
            re.search(rf"\.> {queue}\s+exchange={queue}\(direct\) key={queue}\b", text), text

    # A child that exits once the fleet runs is named (role, how it ended, its log) and restarted.
    scanner = next(pid for pid in descendants(first.proc.pid)
                   if b"worker\0scanner" in Path(f"/proc/{pid}/cmdline").read_bytes())
    os.kill(scanner, signal.SIGKILL)
    wait_until(lambda: "fleet: scanner was killed by SIGKILL" in first.output, 60, "up to report the scanner's exit")
    assert f"(log: {logs / 'scanner.log'})" in first.output and "restarting it" in first.output

    # Ctrl-C: the first fleet stops cleanly and only then gives up its broker file.
    family = descendants(first.proc.pid)
    first.proc.send_signal(signal.SIGINT)
    assert first.proc.wait(90) == 0
    wait_until(lambda: not any(alive(pid) for pid in family), 60, "every fleet process to exit")
    assert not (root / "fleet" / "broker_url").exists() and not (root / "fleet" / "worker_broker_url").exists()
