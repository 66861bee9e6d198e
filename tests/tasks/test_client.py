"""The producer client and the task layer, against a real Redis and real worker processes."""

from __future__ import annotations

import base64
import json
import time

import pytest
from fleet_fixtures import expected_contents, messages_of, wait_until

from sessiondb.store import NotFoundError, Settings, StoreError
from sessiondb.tasks import SessionClient, app
from sessiondb.tasks.routing import COMMIT, QUEUES, WRITES
from sessiondb.tasks.schedule import beat_schedule


def test_app_accepts_json_only_and_acks_late():
    assert app.conf.accept_content == ["json"]
    assert app.conf.task_serializer == "json" and app.conf.result_serializer == "json"
    assert app.conf.task_acks_late and app.conf.task_reject_on_worker_lost
    assert app.conf.broker_transport_options["visibility_timeout"] >= 600


def test_every_task_is_routed_to_its_queue():
    app.loader.import_default_modules()
    names = {name for name in app.tasks if not name.startswith("celery.")}
    assert {"writes.commit", "index.catch_up", "index.rebuild", "integrity.scan", "reads.view", "reads.query"} <= names
    for name in names:
        route = app.amqp.router.route({}, name)
        assert route["queue"].name == name.split(".")[0] and route["queue"].name in QUEUES


def test_beat_schedule_has_defaults_and_can_turn_entries_off():
    schedule = beat_schedule(Settings())
    assert schedule["index-catch-up"]["schedule"] < schedule["index-rebuild"]["schedule"]
    assert schedule["integrity-scan-full"]["kwargs"] == {"mode": "full"}
    configured = beat_schedule(Settings.from_env({"SESSIONDB_BEAT_INDEX_REBUILD_S": "0",
                                                  "SESSIONDB_BEAT_CHECK_S": "120"}))
    assert "index-rebuild" not in configured and configured["integrity-check"]["schedule"] == 120.0


def queued_write_counts(fleet) -> list[int]:
    """How many writes each message waiting in the `writes` queue holds, oldest first."""
    counts = []
    for raw in reversed(fleet.redis.lrange(WRITES, 0, -1)):  # LPUSHed: the oldest is last
        envelope = json.loads(raw)
        body = envelope["body"]
        if envelope["properties"].get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args, _kwargs, _embed = json.loads(body)
        counts.append(len(args[0]))
    return counts


def test_producer_batches_many_writes_into_few_broker_messages(fleet):
    client = SessionClient(fleet.settings, batch_max=250, linger_ms=30_000)  # only size triggers a send
    try:
        client.write("s", [{"type": "message/added", "role": "user", "content": "0"}])
        # nothing is in flight, so the first write is published alone at once (waited for here:
        # on a loaded machine the loop below could otherwise outrun the sender thread)
        wait_until(lambda: fleet.redis.llen(WRITES) == 1, 60, "the first write's message")
        for k in range(1, 1000):
            client.write("s", [{"type": "message/added", "role": "user", "content": str(k)}])
        client.flush()
        # no writer runs, so the messages wait in the queue: the first write went alone at once
        # (nothing was in flight), the 999 after it waited behind it and filled 4 messages
        assert fleet.redis.llen(WRITES) == 5
        assert queued_write_counts(fleet) == [1, 250, 250, 250, 249]
    finally:
        client.close()


def test_a_lone_write_is_sent_at_once_and_later_ones_linger_while_it_is_in_flight(fleet):
    client = SessionClient(fleet.settings, linger_ms=30_000)
    try:
        client.write("s", [{"type": "message/added", "role": "user", "content": "first"}])
        wait_until(lambda: fleet.redis.llen(WRITES) == 1, timeout=20)  # no flush(), under the 30 s linger
        client.write("s", [{"type": "message/added", "role": "user", "content": "second"}])
        time.sleep(0.5)
        assert fleet.redis.llen(WRITES) == 1  # the first has no receipt yet: the second lingers
    finally:
        client.close()


def test_several_producer_processes_every_write_once_in_order(fleet):
    fleet.writer()
    count = 400
    producers = {f"p{i}": fleet.producer(f"p{i}", count) for i in range(3)}
    results = {prefix: fleet.producer_result(proc) for prefix, proc in producers.items()}
    with fleet.store() as store:
        for prefix, result in results.items():
            receipts = result["receipts"]
            assert len(receipts) == count + 1 and {r[1] for r in receipts} == {"committed"}
            tx_ids = [r[2] for r in receipts]
            assert tx_ids == sorted(tx_ids), "a producer's writes committed out of order"
            assert messages_of(store, prefix) == expected_contents(prefix, count)


def test_resending_a_write_id_reports_a_duplicate_of_the_original_and_applies_once(fleet):
    fleet.writer()
    events = [{"type": "message/added", "role": "user", "content": "once"}]
    with SessionClient(fleet.settings) as first:
        first.write("s", [{"type": "session/started"}], write_id="s-start").receipt(timeout=60)
        one = first.write("s", events, write_id="dup").receipt(timeout=60)
    with SessionClient(fleet.settings) as second:
        two = second.write("s", events, write_id="dup").receipt(timeout=60)
        # the same write id twice while the first is pending: one message, the second handle a duplicate
        pending = [second.write("s", events, write_id="dup2") for _ in range(2)]
        three, four = (h.receipt(timeout=60) for h in pending)
    assert one["status"] == "committed" and "duplicate" not in one
    assert two == {**one, "duplicate": True}  # the original tx id; still "committed" for callers that check it
    assert "duplicate" not in three and four == {**three, "duplicate": True}
    with fleet.store() as store:
        assert messages_of(store, "s") == ["once", "once"]
    stats = wait_until(lambda: (s := fleet.stats()) and int(s["writes"]) == 4 and s, 60, "the writer's counters")
    assert (stats["committed"], stats["duplicate"], stats["rejected"]) == ("3", "1", "0")
    from sessiondb.ops.flower_metrics import FleetCollector

    exported = {m.name: m.samples[0].value for m in FleetCollector(fleet.broker_url).collect() if m.samples}
    assert exported["sessiondb_writer_duplicate"] == 1 and exported["sessiondb_writer_committed"] == 3


def test_remote_reads_through_the_reads_queue(fleet):
    fleet.writer()
    fleet.worker("reader")
    with SessionClient(fleet.settings) as client:
        client.write("r", [{"type": "session/started", "title": "remote"},
                           {"type": "message/added", "role": "user", "content": "hi"}]).receipt(timeout=60)
        assert client.view("r", timeout=120)["session"]["title"] == "remote"
        assert [m["message_id"] for m in client.message_records("r")] == [1]
        assert client.high_water_counters("r")
        with pytest.raises(NotFoundError):
            client.view("no-such-session")
        found = client.query("[:find ?t . :in $ ?sid :where [?s :session/id ?sid] [?s :session/title ?t]]", "r",
                             catch_up=True)
        assert found == "remote"
        with pytest.raises(StoreError, match="no :find"):
            client.query("[:where [?x :session/id _]]")


def test_publish_uses_json_never_pickle(fleet):
    with SessionClient(fleet.settings) as client:
        client.write("s", [{"type": "session/started"}])
        client.flush()
    raw = fleet.redis.lindex(WRITES, 0)
    assert raw is not None and b'"content-type": "application/json"' in raw
    assert COMMIT.encode() in raw and b"pickle" not in raw


def test_each_queue_is_declared_on_its_own_exchange():
    # What `celery -A sessiondb.tasks worker` prints under [queues]: one line per queue.
    banner = app.amqp.queues.format()
    for queue in QUEUES:
        assert f".> {queue}" in banner and f"exchange={queue}(direct) key={queue}" in banner, banner
        route = app.amqp.router.route({}, f"{queue}.anything")
        assert route["queue"].exchange.name == queue and route["routing_key"] == queue
