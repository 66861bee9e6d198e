"""The producer client and the task layer, against a real Redis and real worker processes."""

from __future__ import annotations

import pytest
from fleet_fixtures import expected_contents, messages_of

from store import NotFoundError, Settings, StoreError
from tasks import SessionClient, app
from tasks.routing import COMMIT, QUEUES, WRITES
from tasks.schedule import beat_schedule


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


def test_producer_batches_many_writes_into_few_broker_messages(fleet):
    client = SessionClient(fleet.settings, batch_max=250, linger_ms=30_000)  # only size triggers a send
    try:
        for k in range(1000):
            client.write("s", [{"type": "message/added", "role": "user", "content": str(k)}])
        client.flush()
        assert fleet.redis.llen(WRITES) == 4  # no writer runs: the messages wait in the queue
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


def test_resending_a_write_id_returns_the_same_receipt_and_applies_once(fleet):
    fleet.writer()
    events = [{"type": "message/added", "role": "user", "content": "once"}]
    with SessionClient(fleet.settings) as first:
        first.write("s", [{"type": "session/started"}], write_id="s-start").receipt(timeout=60)
        one = first.write("s", events, write_id="dup").receipt(timeout=60)
    with SessionClient(fleet.settings) as second:
        two = second.write("s", events, write_id="dup").receipt(timeout=60)
    assert one["status"] == "committed" and one == two
    with fleet.store() as store:
        assert messages_of(store, "s") == ["once"]


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
