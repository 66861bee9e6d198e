"""The single group-committing writer: rejections, refusals, crashes, standby and takeover.

Real redis-server, real `sessiondb worker writer` subprocesses, real store roots.
"""

from __future__ import annotations

import random
import signal
import sqlite3
import time
import uuid

from fleet_fixtures import expected_contents, messages_of, wait_until

from sessiondb.store import NotFoundError
from sessiondb.store.writer_lock import holder_pid
from sessiondb.tasks import SessionClient
from sessiondb.tasks.routing import COMMIT, WRITES


def test_a_malformed_write_among_good_ones_is_rejected_alone_and_the_writer_lives(fleet):
    writer = fleet.writer()
    with SessionClient(fleet.settings) as client:
        start = client.write("m", [{"type": "session/started"}])
        good1 = client.write("m", [{"type": "message/added", "role": "user", "content": "good 1"}])
        bad = client.write("m", [{"type": "message/added", "role": "robot", "content": "bad"}])
        good2 = client.write("m", [{"type": "message/added", "role": "user", "content": "good 2"}])
        receipts = [h.receipt(timeout=60) for h in (start, good1, bad, good2)]
        # the client refuses a write whose events are not a list; sent anyway, the writer rejects it
        nonsense = fleet.app.send_task(COMMIT, args=[[{"write_id": "w-nonsense", "session": "m",
                                                       "events": "not a list"}]])
        receipts += nonsense.get(timeout=60)
        assert [r["status"] for r in receipts] == ["committed", "committed", "rejected", "committed", "rejected"]
        assert receipts[2]["error"]["field"] == "role" and receipts[2]["error"]["event_index"] == 0
        assert "robot" in receipts[2]["error"]["message"]
        assert receipts[4]["error"]["type"] == "write/invalid"
        after = client.write("m", [{"type": "message/added", "role": "user", "content": "after"}])
        assert after.receipt(timeout=60)["status"] == "committed"
    assert writer.poll() is None
    with fleet.store() as store:
        assert messages_of(store, "m") == ["good 1", "good 2", "after"]
    assert fleet.stats()["rejected"] == "2"


def test_a_message_that_is_not_even_a_write_list_gets_rejection_receipts(fleet):
    writer = fleet.writer()
    result = fleet.app.send_task(COMMIT, args=[[42, {"session": "x", "events": []}]])
    receipts = result.get(timeout=60)  # no reply_to: the receipts are the Celery task result
    assert [r["status"] for r in receipts] == ["rejected", "rejected"]
    assert "JSON object" in receipts[0]["error"]["message"] and "write_id" in receipts[1]["error"]["message"]
    assert writer.poll() is None


def test_a_pickled_message_to_the_writes_queue_is_refused(fleet):
    writer = fleet.writer()
    write = {"write_id": "pickled", "session": "p", "events": [{"type": "session/started"}]}
    fleet.app.send_task(COMMIT, args=[[write]], serializer="pickle", ignore_result=True)
    wait_until(lambda: fleet.stats().get("refused") == "1", 60, "the writer to refuse the pickled message")
    wait_until(lambda: fleet.redis.llen(WRITES) == 0 and fleet.held() == 0, 60, "nothing left queued")
    assert b"pickle" in fleet.log(writer)
    with SessionClient(fleet.settings) as client:
        assert client.write("q", [{"type": "session/started"}]).receipt(timeout=60)["status"] == "committed"
    with fleet.store() as store:
        assert store.resolve("q")[0] == "q"
        try:
            store.resolve("p")
            raise AssertionError("the pickled write was applied")
        except store_not_found():
            pass
    assert writer.poll() is None


def store_not_found():
    from sessiondb.store import NotFoundError

    return NotFoundError


def test_kill_9_the_writer_mid_stream_loses_nothing_and_applies_nothing_twice(fleet):
    writer = fleet.writer()
    count = 3000
    producers = {f"k{i}": fleet.producer(f"k{i}", count, "20") for i in range(2)}
    rng = random.Random(7)
    for _ in range(3):
        wait_until(lambda w=writer: f"writes:{w.pid}" in fleet.stats(), 60, "the writer to commit something")
        time.sleep(rng.uniform(0.0, 0.3))
        fleet.kill9(writer)
        writer = fleet.writer()
    results = {prefix: fleet.producer_result(proc, timeout=180) for prefix, proc in producers.items()}
    with fleet.store() as store:
        for prefix, result in results.items():
            assert {r[1] for r in result["receipts"]} == {"committed"}
            assert messages_of(store, prefix) == expected_contents(prefix, count)  # once each, in order
    assert int(fleet.stats()["groups"]) > 3


def test_a_message_handed_to_the_writer_during_a_stuck_commit_survives_its_kill_9(fleet):
    # The targeted probe: the writer's commit is stuck behind an outside lock on store.sqlite,
    # a second message reaches Redis meanwhile and leaves `writes` (kombu's outstanding pop
    # takes it), then the writer is killed. Nobody resends it: only the broker keeps it.
    writer = fleet.writer()
    app = fleet.app

    def send(write_id: str, events: list[dict]) -> None:  # published when this returns; never resent
        app.send_task(COMMIT, args=[[{"write_id": write_id, "session": "p", "events": events}]], ignore_result=True)

    send("p-start", [{"type": "session/started"}])
    wait_until(lambda: fleet.redis.llen(WRITES) == 0 and fleet.held() == 0, 60, "the start write")
    outside = sqlite3.connect(fleet.root / "store.sqlite", timeout=60)
    outside.execute("BEGIN IMMEDIATE")  # the writer's next commit waits on this
    try:
        send("p-1", [{"type": "message/added", "role": "user", "content": "one"}])
        wait_until(lambda: fleet.redis.llen(WRITES) == 0 and fleet.held() == 1, 60,
                   "the writer to take the first message")
        time.sleep(0.5)  # its group is committing now: stuck on the lock
        send("p-2", [{"type": "message/added", "role": "user", "content": "two"}])
        wait_until(lambda: fleet.redis.llen(WRITES) == 0, 60, "the second message to leave the queue")
        fleet.kill9(writer)
    finally:
        outside.rollback()
        outside.close()
    fleet.writer()

    def committed() -> list[str]:
        with fleet.store() as store:
            return messages_of(store, "p")

    wait_until(lambda: len(committed()) >= 2, 60, "both messages committed after the restart")
    assert committed() == ["one", "two"]
    assert fleet.redis.llen("writes.inflight") == 0


def test_a_store_locked_from_outside_for_several_retry_periods_loses_no_message(fleet):
    # Each commit gives up after the busy timeout (1 s here); the writer keeps the group and
    # retries it, backing off, while more messages queue behind it. Nobody resends.
    fleet.extra_env["SESSIONDB_SQLITE_BUSY_TIMEOUT_MS"] = "1000"
    writer = fleet.writer()
    app = fleet.app
    app.send_task(COMMIT, args=[[{"write_id": "l-start", "session": "l", "events": [{"type": "session/started"}]}]])

    def committed() -> list[str] | None:
        with fleet.store() as store:
            try:
                return messages_of(store, "l")
            except NotFoundError:
                return None

    wait_until(lambda: committed() == [], 60, "the start write")
    outside = sqlite3.connect(fleet.root / "store.sqlite", timeout=60)
    outside.execute("BEGIN IMMEDIATE")
    try:
        for k in range(6):
            app.send_task(COMMIT, args=[[{"write_id": f"l-{k}", "session": "l", "events": [
                {"type": "message/added", "role": "user", "content": f"l:{k}"}]}]], ignore_result=True)
            time.sleep(0.7)
        wait_until(lambda: fleet.log(writer).count(b"kept and retried") >= 3, 90, "three failed retries")
    finally:
        outside.rollback()
        outside.close()

    wait_until(lambda: len(committed()) >= 6, 60, "every message committed once the store is free")
    assert committed() == expected_contents("l", 6)
    wait_until(lambda: fleet.redis.llen(WRITES) == 0 and fleet.held() == 0, 30, "every message acked")


def test_a_writer_stopped_with_sigterm_mid_group_hands_its_messages_on_in_order(fleet):
    # kombu gives a closing channel's unacknowledged messages back newest first; the writer's
    # stay in `writes.inflight` for the next writer, which restores them oldest first. The group is held
    # uncommitted by an outside lock on store.sqlite: the writer keeps it and retries, while the
    # messages behind it are delivered into the same buffer.
    fleet.extra_env["SESSIONDB_SQLITE_BUSY_TIMEOUT_MS"] = "300"
    writer = fleet.writer()
    app = fleet.app
    outside = sqlite3.connect(fleet.root / "store.sqlite", timeout=60)
    outside.execute("BEGIN IMMEDIATE")
    try:
        for k in range(6):
            events = [{"type": "session/started"}] if k == 0 else []
            events.append({"type": "message/added", "role": "user", "content": f"o:{k}"})
            app.send_task(COMMIT, args=[[{"write_id": f"o-{k}", "session": "o", "events": events}]],
                          ignore_result=True)
        wait_until(lambda: fleet.held() >= 3 and b"kept and retried" in fleet.log(writer), 60,
                   "the writer to hold several messages, uncommitted")
        writer.send_signal(signal.SIGTERM)
        writer.wait(60)
    finally:
        outside.rollback()
        outside.close()
    fleet.extra_env.pop("SESSIONDB_SQLITE_BUSY_TIMEOUT_MS")
    fleet.writer()

    def committed() -> list[str] | None:
        with fleet.store() as store:
            try:
                return messages_of(store, "o")
            except NotFoundError:
                return None

    wait_until(lambda: len(committed() or []) >= 6, 60, "all six committed by the next writer")
    assert committed() == expected_contents("o", 6)


NEVER = "1000000"  # a producer that never resends: only the broker and the writer keep its writes


def test_kill_9_while_messages_arrive_during_commits_loses_none_even_without_resend(fleet):
    # Messages that reach Redis while the writer commits are handed over at once (the writer
    # pops `writes` atomically into `writes.inflight`, tasks/transport.py); a kill -9 at any
    # moment leaves each of them in the queue, in flight or unacked, and the next writer
    # gives them back in order. The producers never resend, so a lost message would never
    # get its receipt.
    writer = fleet.writer()
    count = 1500
    producers = {f"n{i}": fleet.producer(f"n{i}", count, NEVER) for i in range(3)}
    rng = random.Random(11)
    kills = 0
    def busy(w) -> bool:  # this writer committed something, or there is nothing left to commit
        return f"writes:{w.pid}" in fleet.stats() or all(p.poll() is not None for p in producers.values())

    while kills < 6 and any(p.poll() is None for p in producers.values()):
        wait_until(lambda w=writer: busy(w), 120, "the writer to commit something")
        if all(p.poll() is not None for p in producers.values()):
            break
        time.sleep(rng.uniform(0.0, 0.2))
        fleet.kill9(writer)
        kills += 1
        writer = fleet.writer()
    assert kills >= 3
    results = {prefix: fleet.producer_result(proc, timeout=240) for prefix, proc in producers.items()}
    with fleet.store() as store:
        for prefix, result in results.items():
            assert {r[1] for r in result["receipts"]} == {"committed"}
            assert messages_of(store, prefix) == expected_contents(prefix, count)  # once each, in order
    assert fleet.redis.llen("writes.inflight") == 0


def test_a_second_writer_waits_as_standby_and_takes_over_when_the_first_dies(fleet):
    first = fleet.writer()
    second = fleet.writer(wait_active=False)
    wait_until(lambda: b"standby" in fleet.log(second), 60, "the second writer to report standby")
    with SessionClient(fleet.settings) as client:
        handles = [client.write("t", [{"type": "session/started"}], write_id="t-start")]
        handles += [client.write("t", [{"type": "message/added", "role": "user", "content": str(k)}])
                    for k in range(50)]
        assert {h.receipt(timeout=60)["status"] for h in handles} == {"committed"}
        assert holder_pid(fleet.root) == first.pid
        assert f"writes:{second.pid}" not in fleet.stats()
        fleet.kill9(first)
        fleet.wait_writer(second)
        later = client.write("t", [{"type": "message/added", "role": "user", "content": "after takeover"}])
        assert later.receipt(timeout=60)["status"] == "committed"
    assert int(fleet.stats()[f"writes:{second.pid}"]) >= 1
    with fleet.store() as store:
        assert messages_of(store, "t") == [*map(str, range(50)), "after takeover"]


def test_writes_queued_while_no_writer_runs_are_committed_when_one_starts(fleet):
    prefix = f"late-{uuid.uuid4().hex[:6]}"
    producer = fleet.producer(prefix, 200)
    wait_until(lambda: fleet.redis.llen(WRITES) > 0, 60, "queued writes")
    fleet.writer()
    result = fleet.producer_result(producer)
    assert {r[1] for r in result["receipts"]} == {"committed"}
    with fleet.store() as store:
        assert messages_of(store, prefix) == expected_contents(prefix, 200)


def test_redis_restarted_during_load_loses_nothing_enqueued(tmp_path):
    from fleet_fixtures import Fleet

    from sessiondb.ops.redis_server import EmbeddedRedis

    server = EmbeddedRedis(tmp_path / "redis").start()
    logs = tmp_path / "logs"
    logs.mkdir()
    fleet = Fleet(tmp_path / "store", server.url, logs)
    try:
        # 1. What is enqueued survives a restart (AOF): no consumer runs, the queue must come back whole.
        # A long linger: only size (and the flush) sends, so the 501 writes are exactly 6 messages
        # however the sender thread is scheduled (a 5 ms linger could send a part-filled batch early).
        with SessionClient(fleet.settings, batch_max=100, linger_ms=30_000) as client:
            queued = [client.write("a", [{"type": "session/started"}], write_id="a-start")]
            queued += [client.write("a", [{"type": "message/added", "role": "user", "content": f"a:{k}"}],
                                    write_id=f"a-{k}") for k in range(500)]
            client.flush()
            depth = fleet.redis.llen(WRITES)
            assert depth == 6
            fleet.redis.close()
            server.stop()  # SIGTERM: Redis writes its AOF and exits
            server.start()
            assert fleet.redis.llen(WRITES) == depth
            # 2. Under load: a writer consuming and producers publishing while Redis restarts again.
            writer = fleet.writer()
            count = 3000
            producers = {f"r{i}": fleet.producer(f"r{i}", count, "10") for i in range(2)}
            wait_until(lambda: int(fleet.stats().get("writes", 0)) > 800, 60, "the writer to be under load")
            fleet.redis.close()
            server.stop()
            server.start()
            assert {h.receipt(timeout=120)["status"] for h in queued} == {"committed"}
        results = {prefix: fleet.producer_result(proc, timeout=180) for prefix, proc in producers.items()}
        assert writer.poll() is None  # it reconnected by itself
        with fleet.store() as store:
            assert messages_of(store, "a") == expected_contents("a", 500)
            for prefix, result in results.items():
                assert {r[1] for r in result["receipts"]} == {"committed"}
                # exactly once; a resend after a lost message may land behind newer writes
                assert sorted(messages_of(store, prefix)) == sorted(expected_contents(prefix, count))
    finally:
        fleet.close()
        server.stop()


def test_commits_notify_the_indexer_debounced_without_waiting_for_it(fleet):
    fleet.extra_env["SESSIONDB_GROUP_COMMIT_MAX"] = "100"  # many small groups
    # A debounce far longer than the test: however slowly the groups commit (a loaded machine),
    # the first poke sends one notification and every later one must be absorbed by the debounce.
    fleet.extra_env["SESSIONDB_INDEX_NOTIFY_DEBOUNCE_MS"] = "600000"
    fleet.writer()  # no indexer runs: the notifications wait in the `index` queue
    with SessionClient(fleet.settings, batch_max=50) as client:
        handles = [client.write("n", [{"type": "session/started"}], write_id="n-start")]
        handles += [client.write("n", [{"type": "message/added", "role": "user", "content": str(k)}])
                    for k in range(1500)]
        assert {h.receipt(timeout=60)["status"] for h in handles} == {"committed"}
    wait_until(lambda: fleet.redis.llen("index") >= 1, 60, "an index.catch_up notification")
    groups = int(fleet.stats()["groups"])
    assert groups > 3 and fleet.redis.llen("index") < groups
