"""`sessiondb gc` and `sessiondb retention`, run as a user runs them (real subprocesses, real store)."""

from __future__ import annotations

import json
import time

from helpers import run_cli as run
from sqlalchemy import text

from sessiondb.store import Store
from sessiondb.store.blobs.canonical import blob_id


def unreferenced_store(tmp_path):
    root = tmp_path / "store"
    with Store.open(root) as store:
        store.commit({"write_id": "w1", "session": "s", "events": [{"type": "session/started"}]})
        store.commit({"write_id": "w2", "session": "s", "events": [
            {"type": "message/added", "role": "user", "content": "forget me"},
            {"type": "message/added", "role": "user", "content": "keep me"}]})
        with store.engine.connect() as conn, conn.begin():
            conn.execute(text("DELETE FROM messages WHERE message_id = 1"))
    return root


def blob_rows(root) -> int:
    with Store.open(root, readonly=True) as store, store.engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM blobs")).scalar_one()


def test_gc_dry_run_changes_nothing_then_gc_collects_and_reports(tmp_path):
    root = unreferenced_store(tmp_path)
    before = blob_rows(root)
    young = run("gc", "--json", root=root)
    assert young.returncode == 0, young.stderr
    assert json.loads(young.stdout)["counts"]["kept_young"] == 1
    dry = run("gc", "--dry-run", "--grace-hours", "0", "--json", root=root)
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["counts"]["candidates"] == 1 and blob_rows(root) == before
    done = run("gc", "--grace-hours", "0", root=root)
    assert done.returncode == 0, done.stderr
    assert "blob-gc" in done.stdout and "bytes_freed: 9" in done.stdout
    assert blob_rows(root) == before - 1
    with Store.open(root, readonly=True) as store:
        assert [m["content"] for m in store.message_records("s", include_content=True)] == ["keep me"]
        assert blob_id(b"forget me") not in {m["content_blob"] for m in store.message_records("s")}
    assert run("check", root=root).returncode == 0


def test_gc_mistakes_are_one_line(tmp_path):
    root = unreferenced_store(tmp_path)
    bad = run("gc", "--grace-hours", "-1", root=root)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr and "--grace-hours" in bad.stderr
    missing = run("gc", root=tmp_path / "nowhere")
    assert missing.returncode != 0 and "Traceback" not in missing.stderr
    env = run("gc", root=root, SESSIONDB_GC_GRACE_HOURS="soon")
    assert env.returncode != 0 and "SESSIONDB_GC_GRACE_HOURS" in env.stderr and "Traceback" not in env.stderr


def branched_store(tmp_path):
    """h1 -> h2, then a resume to h1: h2 is on no live branch."""
    root = tmp_path / "store"
    with Store.open(root) as store:
        store.commit({"write_id": "b1", "session": "s", "events": [
            {"type": "session/started"}, {"type": "message/added", "role": "user", "content": "one"},
            {"type": "head/created", "head_id": "h1", "expected_head": None}]})
        store.commit({"write_id": "b2", "session": "s", "events": [
            {"type": "message/added", "role": "user", "content": "two"},
            {"type": "head/created", "head_id": "h2", "expected_head": "h1"}]})
        store.commit({"write_id": "b3", "session": "s", "events": [
            {"type": "session/restored", "kind": "resume", "source_head": "h1", "expected_head": "h2"}]})
    time.sleep(1)  # older than the 0.86 s abandoned-branch age the tests use
    return root


def head_ids(root) -> set[str]:
    with Store.open(root, readonly=True) as store, store.engine.connect() as conn:
        return set(conn.execute(text("SELECT head_id FROM heads")).scalars())


def test_retention_dry_run_then_run_with_gc(tmp_path):
    root = branched_store(tmp_path)
    off = run("retention", "--json", root=root)
    assert off.returncode == 0, off.stderr
    assert json.loads(off.stdout)["counts"]["policy_off"] == 1
    young = {"SESSIONDB_RETAIN_GRACE_HOURS": "0"}
    dry = run("retention", "--dry-run", "--abandoned-days", "0.00001", "--json", root=root, **young)
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["counts"]["heads_removed"] == 1 and head_ids(root) == {"h1", "h2"}
    done = run("retention", "--gc", root=root, SESSIONDB_RETAIN_ABANDONED_DAYS="0.00001",
               SESSIONDB_GC_GRACE_HOURS="0", **young)
    assert done.returncode == 0, done.stderr
    assert "retention" in done.stdout and "blob-gc" in done.stdout and "heads_removed: 1" in done.stdout
    assert head_ids(root) == {"h1"}
    with Store.open(root, readonly=True) as store:
        assert [m["content"] for m in store.message_records("s", include_content=True, all_branches=True)] == ["one"]
    assert run("check", root=root).returncode == 0


def test_retention_mistakes_are_one_line(tmp_path):
    root = branched_store(tmp_path)
    bad = run("retention", "--keep-heads", "-2", root=root)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    env = run("retention", root=root, SESSIONDB_RETAIN_HEADS="many")
    assert env.returncode != 0 and "SESSIONDB_RETAIN_HEADS" in env.stderr and "Traceback" not in env.stderr
