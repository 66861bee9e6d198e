"""Deleting through the fleet: a write on the queue with a receipt, and nothing left in Redis or on disk."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fleet_fixtures import wait_until

from sessiondb.store import DependantsError, SessionDeletedError
from sessiondb.tasks import SessionClient
from sessiondb.tasks.routing import READS_PREFIX

MARK = b"FLTMARK"
BIG = "FLTMARK big payload " * 3000  # over inline_max_bytes: a blob file
SHARED = "shared by both sessions"


def redis_hits(client, marker: bytes) -> list[bytes]:
    """Every key whose serialized value (DUMP) holds the marker."""
    return [key for key in client.scan_iter(count=1000) if marker in (client.dump(key) or b"")]


def file_hits(root: Path, marker: bytes) -> list[str]:
    return sorted(str(p) for p in root.rglob("*") if p.is_file() and marker in p.read_bytes())


def test_a_delete_through_the_fleet_leaves_nothing_in_redis_nor_on_disk(fleet, redis_server):
    fleet.writer()
    fleet.worker("reader")
    with SessionClient(fleet.settings) as client:
        for sid, extra in (("gone", [BIG, "FLTMARK inline"]), ("kept", [])):
            client.write(sid, [{"type": "session/started", "title": f"{sid} title"},
                               *[{"type": "message/added", "role": "user", "content": c} for c in [SHARED, *extra]]],
                         write_id=f"{sid}-1").receipt(timeout=60, raise_on_reject=True)
        assert "FLTMARK inline" in [m["content"] for m in client.message_records("gone", include_content=True)]
        # a read result nobody fetched stays in the result backend, with the contents in it
        pending = fleet.app.send_task(READS_PREFIX + "message_records", args=["gone", True])
        wait_until(lambda: pending.ready(), 60, "the reader to answer")
        assert redis_hits(fleet.redis, MARK)
        assert file_hits(fleet.root, MARK)
        wait_until(lambda: file_hits(redis_server.dir, MARK), 30, "the AOF to hold the write messages")

        plan = client.delete_session("gone", dry_run=True)
        assert plan["status"] == "dry-run" and plan["counts"]["messages"] == 3
        receipt = client.delete_session("gone", reason="fleet test", write_id="del-gone")
        assert receipt["status"] == "committed" and receipt["deleted"] == ["gone"]
        assert receipt["redis_scrubbed"] >= 1
        again = client.submit({"write_id": "del-gone", "session": "gone",
                               "events": [{"type": "session/deleted", "cascade": False, "detach": False,
                                           "reason": "fleet test"}]}).receipt(timeout=60)
        assert again["duplicate"] and again["tx_id"] == receipt["tx_id"]
        with pytest.raises(SessionDeletedError):
            client.view("gone")
        with pytest.raises(SessionDeletedError):
            client.write("gone", [{"type": "message/added", "role": "user", "content": "x"}]).receipt(
                timeout=60, raise_on_reject=True)
        assert [m["content"] for m in client.message_records("kept", include_content=True)] == [SHARED]

    assert redis_hits(fleet.redis, MARK) == []
    wait_until(lambda: fleet.redis.info("persistence")["aof_rewrite_in_progress"] == 0, 60, "the AOF rewrite")
    time.sleep(0.5)  # the previous AOF files are removed once the new one is in place
    wait_until(lambda: file_hits(redis_server.dir, MARK) == [], 30, "no AOF file to hold the marker")
    assert file_hits(fleet.root, MARK) == []


def test_dependants_are_refused_through_the_fleet_too(fleet):
    fleet.writer()
    with SessionClient(fleet.settings) as client:
        client.write("src", [{"type": "session/started"},
                             {"type": "head/created", "head_id": "src-h", "expected_head": None}]).receipt(timeout=60)
        client.write("frk", [{"type": "session/started"},
                             {"type": "session/restored", "kind": "fork", "source_head": "src-h"}]).receipt(timeout=60)
        with pytest.raises(DependantsError) as caught:
            client.delete_session("src")
        assert [d["session"] for d in caught.value.data["dependants"]] == ["frk"]
        assert client.delete_session("src", cascade=True)["deleted"] == ["src", "frk"]
