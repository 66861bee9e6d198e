"""`index.*` and `integrity.*` through real indexer and scanner workers (real Redis, real store root)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from fleet_fixtures import wait_until

from sessiondb.tasks import SessionClient
from sessiondb.tasks.routing import INDEX_CATCH_UP, INDEX_REBUILD, INDEX_STATUS, INTEGRITY_CHECK, INTEGRITY_SCAN


def test_commits_reach_the_index_through_the_debounced_notification(fleet):
    fleet.writer()
    fleet.worker("indexer")
    with SessionClient(fleet.settings) as client:
        handles = [client.write("i", [{"type": "session/started", "title": "indexed"}], write_id="i-start")]
        handles += [client.write("i", [{"type": "message/added", "role": "user", "content": str(k)}])
                    for k in range(20)]
        last_tx = max(h.receipt(timeout=60)["tx_id"] for h in handles)

    def caught_up():
        status = fleet.app.send_task(INDEX_STATUS).get(timeout=120)  # the first one waits for the worker to start
        return status["watermark"] >= last_tx and status["lag"] == 0

    wait_until(caught_up, 60, "the indexer to catch up after the writer's notification")
    result = fleet.app.send_task(INDEX_CATCH_UP, kwargs={"reason": "test"}).get(timeout=60)
    assert result["status"] == "ok" and result["applied"] == 0 and result["reason"] == "test"
    rebuilt = fleet.app.send_task(INDEX_REBUILD).get(timeout=120)
    assert rebuilt["watermark"] == last_tx and rebuilt["lag"] == 0


def test_scans_and_the_consistency_check_return_their_reports(fleet):
    fleet.writer()
    fleet.worker("scanner")
    with SessionClient(fleet.settings) as client:
        client.write("c", [{"type": "session/started"},
                           {"type": "message/added", "role": "user", "content": "scan me"}]).receipt(timeout=60)
    full = fleet.app.send_task(INTEGRITY_SCAN, kwargs={"mode": "full"}).get(timeout=120)
    assert full["kind"] == "blob-scan/full" and not [f for f in full["findings"] if f["severity"] == "error"]
    assert fleet.app.send_task(INTEGRITY_SCAN, kwargs={"mode": "sideways"}).get(timeout=60)["status"] == "error"
    check = fleet.app.send_task(INTEGRITY_CHECK).get(timeout=120)
    assert check["kind"] == "consistency"


def test_a_corrupt_blob_is_quarantined_by_the_scanner_and_healed_by_a_later_write(fleet):
    from sessiondb.store import Store

    fleet.writer()
    fleet.worker("scanner")
    with SessionClient(fleet.settings) as client:
        receipt = client.write("heal", [{"type": "session/started"},
                                        {"type": "message/added", "role": "user", "content": "precious"}]
                               ).receipt(timeout=60)
        [blob] = receipt["blobs"]
        db_path = Path(fleet.settings.root) / "store.sqlite"
        with sqlite3.connect(db_path) as db:  # a small payload is inline: a flipped byte in SQLite, for real
            db.execute("UPDATE blob_bytes SET data = ? WHERE bytes_id = (SELECT bytes_id FROM blobs"
                       " WHERE blob_id = ?)", (b"Precious", blob))

        scan = fleet.app.send_task(INTEGRITY_SCAN, kwargs={"mode": "full"}).get(timeout=120)
        assert [f["data"].get("blob_id") for f in scan["findings"] if f["type"] == "blob/hash-mismatch"] == [blob]
        with sqlite3.connect(db_path) as db:  # moved to the quarantine table, not deleted
            assert db.execute("SELECT blob_id, data FROM blob_quarantine").fetchall() == [(blob, b"Precious")]

        client.write("heal", [{"type": "message/added", "role": "user", "content": "precious"}]).receipt(timeout=60)
    with Store.open(fleet.settings.root, readonly=True) as store:
        assert store.blob(blob) == b"precious"  # the writer restored it from the new write
    rescan = fleet.app.send_task(INTEGRITY_SCAN, kwargs={"mode": "full"}).get(timeout=120)
    assert not [f for f in rescan["findings"] if f["severity"] == "error"]
