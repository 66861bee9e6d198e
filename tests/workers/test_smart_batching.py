"""Smart batching: a lone write is committed at once; writes that pile up during a commit form the next group.

Real redis-server, real `sessiondb worker writer` subprocesses, real store roots. Behaviour,
not timing: the bounds are generous (a loaded machine must pass them).
"""

from __future__ import annotations

import sqlite3
import time

from fleet_fixtures import expected_contents, messages_of, wait_until

from sessiondb.tasks import SessionClient
from sessiondb.tasks.routing import COMMIT, WRITES
from sessiondb.tasks.transport import INFLIGHT


def test_a_lone_write_is_committed_without_waiting_for_group_commit_wait_ms(fleet):
    fleet.extra_env["SESSIONDB_GROUP_COMMIT_WAIT_MS"] = "2000"  # a writer that waited for company would take 2 s
    fleet.writer()
    with SessionClient(fleet.settings) as client:
        assert client.write("lone", [{"type": "session/started"}]).receipt(timeout=60)["status"] == "committed"
        for k in range(3):
            started = time.monotonic()
            receipt = client.write("lone", [{"type": "message/added", "role": "user", "content": str(k)}]).receipt(60)
            assert receipt["status"] == "committed"
            assert time.monotonic() - started < 1.5


def test_writes_piled_up_while_a_commit_runs_form_one_group(fleet):
    # The commit of p-1 is held by an outside lock on store.sqlite; four messages queue up behind
    # it meanwhile. Once it is done, the four are the next group: one commit, not four.
    fleet.extra_env["SESSIONDB_GROUP_COMMIT_WAIT_MS"] = "2000"  # an upper bound only: nothing waits for it here
    writer = fleet.writer()
    app = fleet.app

    def send(k: int) -> None:
        events = [{"type": "session/started"}] if k == 0 else []
        events.append({"type": "message/added", "role": "user", "content": f"p:{k}"})
        app.send_task(COMMIT, args=[[{"write_id": f"p-{k}", "session": "p", "events": events}]], ignore_result=True)

    send(0)
    wait_until(lambda: fleet.stats().get("writes") == "1", 60, "the first write")
    outside = sqlite3.connect(fleet.root / "store.sqlite", timeout=60)
    outside.execute("BEGIN IMMEDIATE")
    try:
        send(1)
        wait_until(lambda: fleet.redis.llen(WRITES) == 0 and fleet.held() == 1, 60,
                   "the writer to take p-1")
        time.sleep(0.3)  # its commit waits for the outside lock now
        for k in range(2, 6):
            send(k)
        # p-1 is held in `writes.inflight`; the four wait behind it (one of them maybe moved there too)
        wait_until(lambda: fleet.redis.llen(WRITES) + fleet.redis.llen(INFLIGHT) == 5, 60, "four messages queued")
        groups = int(fleet.stats()["groups"])
    finally:
        outside.rollback()
        outside.close()
    wait_until(lambda: fleet.stats().get("writes") == "6", 60, "every write committed")
    stats = fleet.stats()
    assert int(stats["groups"]) - groups == 2  # p-1 alone, then the four together
    assert (stats["last_group_size"], stats["last_group_messages"]) == ("4", "4")
    with fleet.store() as store:
        assert messages_of(store, "p") == expected_contents("p", 6) and writer.poll() is None
