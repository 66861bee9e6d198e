"""Hostile writes through the fleet (issue 12, validation holes): every write of every message gets
a receipt or a dead-letter row, whatever it contains, and the writer lives.

Real redis-server, real `sessiondb worker writer` subprocess, real store root.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import uuid

from fleet_fixtures import messages_of, wait_until

from sessiondb.tasks import receipts
from sessiondb.tasks.routing import COMMIT, WRITES

SURROGATE = json.loads('"\\ud800"')


def good(write_id: str, content: str) -> dict:
    return {"write_id": write_id, "session": "v",
            "events": [{"type": "message/added", "role": "user", "content": content}]}


def dead_letters(fleet) -> list[tuple]:
    with sqlite3.connect(fleet.root / "store.sqlite") as db:
        return db.execute("SELECT write_id, error_type, field FROM rejected_writes ORDER BY id").fetchall()


def test_a_lone_surrogate_in_a_message_rejects_that_write_alone(fleet):
    writer = fleet.writer()
    start = {"write_id": "v-start", "session": "v", "events": [{"type": "session/started"}]}
    bad = {"write_id": "v-bad", "session": "v",
           "events": [{"type": "message/added", "role": "user", "content": {"x": "a" + SURROGATE}}]}
    result = fleet.app.send_task(COMMIT, args=[[start, good("v1", "good 1"), bad, good("v2", "good 2")]])
    receipts = result.get(timeout=60)
    assert [r["status"] for r in receipts] == ["committed", "committed", "rejected", "committed"]
    assert receipts[2]["error"]["field"] == "content" and "surrogate" in receipts[2]["error"]["message"]
    assert writer.poll() is None
    with fleet.store() as store:
        assert messages_of(store, "v") == ["good 1", "good 2"]
    assert dead_letters(fleet) == [("v-bad", "write/invalid", "content")]


def test_oversize_writes_and_messages_are_rejected_and_several_in_one_group_do_not_stop_it(fleet):
    fleet.extra_env.update(SESSIONDB_MAX_WRITE_BYTES="20000", SESSIONDB_MAX_MESSAGE_BYTES="60000",
                           SESSIONDB_GROUP_COMMIT_MAX_BYTES="200000", SESSIONDB_GROUP_COMMIT_WAIT_MS="200")
    start = {"write_id": "v-start", "session": "v", "events": [{"type": "session/started"}]}
    sent = [fleet.app.send_task(COMMIT, args=[[start]])]
    # queued before the writer starts, so they are gathered into groups together
    for k in range(3):
        sent.append(fleet.app.send_task(COMMIT, args=[[good(f"huge-{k}", "h" * 100_000)]]))  # message > limit
        sent.append(fleet.app.send_task(COMMIT, args=[[good(f"big-{k}", "b" * 30_000)]]))  # write > limit
        sent.append(fleet.app.send_task(COMMIT, args=[[good(f"ok-{k}", f"ok {k}")]]))
    wait_until(lambda: fleet.redis.llen(WRITES) == len(sent), 60, "queued messages")
    writer = fleet.writer()
    receipts = [r.get(timeout=60) for r in sent]
    assert [r["status"] for batch in receipts for r in batch] == ["committed"] + [
        "rejected", "rejected", "committed"] * 3
    huge, big = receipts[1][0], receipts[2][0]
    assert huge["write_id"] == "huge-0" and "message of" in huge["error"]["message"]
    assert "not decoded" in huge["error"]["message"] and "at most 60000" in huge["error"]["message"]
    assert big["write_id"] == "big-0" and "at most 20000" in big["error"]["message"]
    assert writer.poll() is None
    with fleet.store() as store:
        assert messages_of(store, "v") == ["ok 0", "ok 1", "ok 2"]
    assert sorted(w for w, _type, _field in dead_letters(fleet)) == sorted(
        [f"huge-{k}" for k in range(3)] + [f"big-{k}" for k in range(3)])


def test_a_write_id_resent_with_other_content_through_the_fleet_is_an_id_conflict(fleet):
    fleet.writer()
    start = {"write_id": "v-start", "session": "v", "events": [{"type": "session/started"}]}
    first = fleet.app.send_task(COMMIT, args=[[start, good("v1", "one")]]).get(timeout=60)
    again = fleet.app.send_task(COMMIT, args=[[good("v1", "one"), good("v1", "two")]]).get(timeout=60)
    assert again[0] == {**first[1], "duplicate": True}
    assert again[1]["status"] == "rejected" and again[1]["error"]["type"] == "write/id-conflict"
    with fleet.store() as store:
        assert messages_of(store, "v") == ["one"]
    assert dead_letters(fleet) == [("v1", "write/id-conflict", None)]


def test_a_group_gathers_at_most_group_commit_max_bytes_of_messages(fleet):
    fleet.extra_env.update(SESSIONDB_GROUP_COMMIT_MAX_BYTES="40000", SESSIONDB_GROUP_COMMIT_WAIT_MS="500")
    start = {"write_id": "v-start", "session": "v", "events": [{"type": "session/started"}]}
    sent = [fleet.app.send_task(COMMIT, args=[[start]])]
    sent += [fleet.app.send_task(COMMIT, args=[[good(f"g-{k}", f"{k}:" + "g" * 15_000)]]) for k in range(10)]
    wait_until(lambda: fleet.redis.llen(WRITES) == len(sent), 60, "queued messages")
    fleet.writer()
    assert {r["status"] for result in sent for r in result.get(timeout=60)} == {"committed"}
    # ~15 KB per message, at most 40,000 bytes per group: never more than two messages a group
    assert int(fleet.stats()["groups"]) >= 5


def raw_message(body: bytes) -> str:
    """A `writes.commit` message as kombu stores it in the Redis list, around a body of our choosing
    (a foreign or broken producer: our own client always sends valid JSON)."""
    return json.dumps({
        "body": base64.b64encode(body).decode(), "content-encoding": "utf-8", "content-type": "application/json",
        "headers": {"lang": "py", "task": COMMIT, "id": str(uuid.uuid4())},
        "properties": {"body_encoding": "base64", "delivery_info": {"exchange": WRITES, "routing_key": WRITES},
                       "delivery_mode": 2, "delivery_tag": str(uuid.uuid4()), "priority": 0}})


def test_a_body_that_is_not_json_or_too_deep_gets_receipts_and_dead_letters_and_the_writer_lives(fleet):
    writer = fleet.writer()
    reply = receipts.reply_key("raw-test")
    secret = "the payload nobody may see in a log"
    broken = (f'[[{{"write_id": "raw-1", "session": "v", "events": [{{"type": "message/added", "content": "{secret}"'
              f'}}]}}, {{"write_id": "raw-2", "session": "v" oops ]], "{reply}"]').encode()
    deep = b'[[{"write_id": "raw-3", "session": "v", "events": ' + b"[" * 10_000 + b"]" * 10_000 + \
        f'}}], "{reply}"]'.encode()
    fleet.redis.lpush(WRITES, raw_message(broken))
    fleet.redis.lpush(WRITES, raw_message(deep))
    got = []
    for _ in range(2):
        item = fleet.redis.blpop([reply], timeout=60)
        assert item is not None, fleet.log(writer).decode(errors="replace")[-3000:]
        got += receipts.decode(item[1])
    assert [(r["write_id"], r["status"]) for r in got] == [("raw-1", "rejected"), ("raw-2", "rejected"),
                                                             ("raw-3", "rejected")]
    assert "not valid JSON" in got[0]["error"]["message"]
    # the dead letter (and the receipt) keep a bounded excerpt of the body: what was sent
    assert 'the body began [[{"write_id": "raw-1"' in got[0]["error"]["message"]
    assert len(got[2]["error"]["message"]) < 1000 and got[2]["error"]["message"].endswith("[[[[…")
    assert "nested too deeply" in got[2]["error"]["message"]
    assert sorted(w for w, _type, _field in dead_letters(fleet)) == ["raw-1", "raw-2", "raw-3"]
    assert int(fleet.stats()["rejected"]) == 3
    # the writer lives on, commits the next good write, and its log shows no body
    start = {"write_id": "v-start", "session": "v", "events": [{"type": "session/started"}]}
    assert fleet.app.send_task(COMMIT, args=[[start, good("v1", "after")]]).get(timeout=60)[1]["status"] == \
        "committed"
    assert writer.poll() is None
    log = fleet.log(writer).decode(errors="replace")
    assert "could not be decoded" in log and secret not in log and "Traceback" not in log
