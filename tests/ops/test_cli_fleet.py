"""The `sessiondb` CLI on the fleet: `up` (smoke), `write`, `worker`, and the read commands."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from fleet_fixtures import messages_of, wait_until
from fleet_fixtures.processes import alive, clean_env, descendants, http

from sessiondb.ops.redis_server import free_port
from sessiondb.store import Store

CLI = [sys.executable, "-m", "sessiondb.ops.cli"]


def test_up_runs_the_fleet_demo_writes_arrive_flower_answers_and_sigint_leaves_nothing(tmp_path):
    root, port = tmp_path / "store", free_port()
    env = clean_env(SESSIONDB_ROOT=str(root), SESSIONDB_FLOWER_PORT=str(port),
                    SESSIONDB_FLOWER_BASIC_AUTH="ops:secret")
    log = open(tmp_path / "up.log", "wb")  # noqa: SIM115
    up = subprocess.Popen([*CLI, "up", "--demo", "--agents", "2", "--turns", "2"], env=env, stdout=log,
                          stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until(lambda: b"fleet: running" in (tmp_path / "up.log").read_bytes() or up.poll() is not None, 120,
                   "the fleet and the demo")
        output = (tmp_path / "up.log").read_text()
        assert up.poll() is None, output
        assert f"http://127.0.0.1:{port}/" in output and "2 producer processes" in output
        with Store.open(root) as store:
            assert len(messages_of(store, "agent-1")) >= 5
            assert store.view("agent-0-child")["head"] == "agent-0-child-h1"
        assert http(f"http://127.0.0.1:{port}/")[0] == 401
        assert http(f"http://127.0.0.1:{port}/workers", "ops:secret")[0] == 200
        status, metrics = http(f"http://127.0.0.1:{port}/metrics", "ops:secret")
        assert status == 200 and b"sessiondb_writer_committed_total" in metrics
        assert b"sessiondb_queue_depth" in metrics
        wait_until(lambda: b"sessiondb_index_lag 0.0" in http(f"http://127.0.0.1:{port}/metrics", "ops:secret")[1],
                   60, "the indexer to catch up (index lag 0 in Flower's metrics)")
        family = descendants(up.pid)
        assert len(family) >= 7  # redis, writer, indexer, scanner, reader, beat, flower
        up.send_signal(signal.SIGINT)
        assert up.wait(60) == 0
        wait_until(lambda: not any(alive(pid) for pid in family), 60, "every fleet process to exit")
        assert not (root / "fleet" / "broker_url").exists()
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait()
        log.close()


def test_write_enqueues_a_jsonl_file_and_waits_for_receipts(fleet, tmp_path):
    fleet.writer()
    path = tmp_path / "writes.jsonl"
    lines = [{"write_id": "f-start", "session": "f", "events": [{"type": "session/started"}]},
             {"write_id": "f-1", "session": "f", "events": [{"type": "message/added", "role": "user", "content": "a"}]},
             {"write_id": "f-2", "session": "f", "events": [{"type": "message/added", "role": "nobody"}]}]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    done = subprocess.run([*CLI, "write", str(path), "--wait", "--json"], env=fleet.env, capture_output=True,
                          timeout=180)
    assert done.returncode == 1  # one write was rejected
    receipts = json.loads(done.stdout)
    assert [r["status"] for r in receipts] == ["committed", "committed", "rejected"]
    assert done.stderr.decode().strip().startswith("rejected f-2:")
    with fleet.store() as store:
        assert messages_of(store, "f") == ["a"]


def test_write_without_a_broker_is_one_line_on_stderr(tmp_path):
    path = tmp_path / "w.jsonl"
    path.write_text('{"write_id": "x", "session": "x", "events": []}\n')
    done = subprocess.run([*CLI, "write", str(path)], env=clean_env(SESSIONDB_ROOT=str(tmp_path / "none")),
                          capture_output=True, timeout=60)
    assert done.returncode != 0 and "no broker configured" in done.stderr.decode()
    assert len(done.stderr.decode().strip().splitlines()) == 1 and b"Traceback" not in done.stderr


def test_write_of_a_file_that_is_not_jsonl_is_one_line_on_stderr(fleet, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text("{not json\n")
    done = subprocess.run([*CLI, "write", str(path)], env=fleet.env, capture_output=True, timeout=60)
    assert done.returncode == 1 and "not JSON" in done.stderr.decode() and b"Traceback" not in done.stderr


def test_unknown_worker_role_is_a_user_mistake(tmp_path):
    done = subprocess.run([*CLI, "worker", "painter"], env=clean_env(), capture_output=True, timeout=60)
    assert done.returncode == 2 and "unknown worker role" in done.stderr.decode()


def test_read_commands_still_read_the_store_directly(tmp_path):
    root = tmp_path / "store"
    with Store.open(root) as store:
        store.commit({"write_id": "v1", "session": "v", "events": [
            {"type": "session/started", "title": "direct"}, {"type": "message/added", "role": "user", "content": "x"}]})
    env = clean_env()
    view = subprocess.run([*CLI, "view", "v", "--root", str(root), "--json"], env=env, capture_output=True, timeout=60)
    assert view.returncode == 0 and json.loads(view.stdout)["session"]["title"] == "direct"
    missing = subprocess.run([*CLI, "view", "nope", "--root", str(root)], env=env, capture_output=True, timeout=60)
    assert missing.returncode == 1 and "not found" in missing.stderr.decode() and b"Traceback" not in missing.stderr


def test_worker_role_runs_as_the_standard_celery_worker_form(fleet):
    # `celery -A sessiondb.tasks worker -Q writes -P solo` is the writer too: it takes the lock and commits.
    proc = fleet.spawn([sys.executable, "-m", "celery", "-A", "sessiondb.tasks", "worker", "-Q", "writes", "-P", "solo",
                        "--without-mingle", "--without-gossip", "-l", "info"], "celery-writer")
    fleet.wait_writer(proc)
    from sessiondb.tasks import SessionClient

    with SessionClient(fleet.settings) as client:
        assert client.write("c", [{"type": "session/started"}]).receipt(timeout=60)["status"] == "committed"

