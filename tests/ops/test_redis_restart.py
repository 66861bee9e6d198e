"""`sessiondb up` keeps its private redis-server alive: killed (-9) ten times under load, it
is restarted on the same port with its AOF, the writer goes on committing, and the store
ends with every acknowledged write exactly once.

Real `sessiondb up`, its real redis-server and workers, a real producer process; the
test only kills and watches.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from fleet_fixtures import wait_until
from fleet_fixtures.processes import clean_env, descendants
from fleet_fixtures.up import Up

from sessiondb.ops.redis_server import free_port
from sessiondb.store import Store

KILLS = 10

#: one session, one write at a time, each awaited; a write whose receipt does not come (the
#: broker went away) is sent again with the SAME write id until it does. Prints each write
#: id once its receipt is in hand: those are the acknowledged writes.
PRODUCER = r"""
import sys, time
from sessiondb import SessionClient
from sessiondb.store import Settings

settings = Settings.from_env()
client = None
n = 0
while True:
    write_id = f"r-{n}"
    events = [{"type": "message/added", "role": "user", "content": f"m{n}"}]
    if n == 0:
        events.insert(0, {"type": "session/started"})
    try:
        if client is None:
            client = SessionClient(settings, resend_after_s=3)
        receipt = client.write("redis-kills", events, write_id=write_id).receipt(timeout=20)
    except Exception as exc:  # the broker is down: a new client, the same write id
        print("retry", write_id, type(exc).__name__, flush=True, file=sys.stderr)
        try:
            client.close(timeout=1)
        except Exception:
            pass
        client = None
        time.sleep(0.2)
        continue
    assert receipt["status"] == "committed", receipt
    print(write_id, flush=True)
    n += 1
"""


def redis_pid(up_pid: int) -> int | None:
    for pid in descendants(up_pid):
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()  # redis-server rewrites its cmdline
        except OSError:
            continue
        if name == "redis-server":
            return pid
    return None


def test_up_restarts_its_redis_killed_ten_times_under_load_and_nothing_is_lost_or_doubled(tmp_path, ups):
    root = tmp_path / "store"
    env = clean_env(SESSIONDB_ROOT=str(root), SESSIONDB_FLOWER_PORT=str(free_port()))
    up = Up(tmp_path, env)
    ups.append(up)
    up.wait_running()
    port = (root / "fleet" / "broker_url").read_text().strip().rsplit(":", 1)[1].split("/")[0]

    acked_path = tmp_path / "acked.txt"
    with open(acked_path, "wb") as acked, open(tmp_path / "producer.err", "wb") as err:
        producer = subprocess.Popen([sys.executable, "-c", PRODUCER], env=clean_env(SESSIONDB_ROOT=str(root)),
                                    stdout=acked, stderr=err)
    try:
        def acknowledged() -> list[str]:
            return acked_path.read_text().split()

        wait_until(lambda: len(acknowledged()) >= 20, 120, "the producer's first 20 receipts")
        for kill in range(1, KILLS + 1):
            victim = redis_pid(up.proc.pid)
            assert victim is not None, up.output
            before = len(acknowledged())
            os.kill(victim, signal.SIGKILL)
            wait_until(lambda: up.output.count("restarting it on port") >= kill, 60,  # noqa: B023
                       f"up to report redis-server's exit #{kill}")
            wait_until(lambda: (pid := redis_pid(up.proc.pid)) is not None and pid != victim, 60,  # noqa: B023
                       f"a new redis-server after kill #{kill}")
            # the writer goes on committing through the restarted broker
            wait_until(lambda: len(acknowledged()) >= before + 5, 120,  # noqa: B023
                       f"5 more receipts after kill #{kill}: {(tmp_path / 'producer.err').read_text()[-800:]}")
        assert up.proc.poll() is None, up.output
        assert "; restarting it\n" not in up.output, up.output  # every worker outlives Redis (none was restarted)
        assert f"restarting it on port {port} with its AOF" in up.output
    finally:
        producer.kill()
        producer.wait()

    acked = acknowledged()
    assert len(acked) == len(set(acked))
    up.proc.send_signal(signal.SIGINT)
    assert up.proc.wait(90) == 0, up.output
    with Store.open(root, readonly=True) as store:
        contents = [m["content"] for m in store.message_records("redis-kills", include_content=True)]
    # every acknowledged write is there; none is there twice (a resend is answered, not re-applied);
    # at most the one write in flight when the producer was stopped is there unacknowledged
    assert len(contents) == len(set(contents)), "a write was applied twice"
    assert set(contents) >= {f"m{w.split('-')[1]}" for w in acked}
    assert len(contents) - len(acked) <= 1
    assert contents == [f"m{n}" for n in range(len(contents))], "out of order"
