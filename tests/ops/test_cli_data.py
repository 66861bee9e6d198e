"""`sessiondb query`, `index`, `scan` and `check`, run as a user runs them (real subprocesses, real store)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import pytest
from helpers import run_cli as run

from sessiondb.ops.demo import agent_session, fork_and_invoke
from sessiondb.store import Store


@pytest.fixture
def root(tmp_path):
    with Store.open(tmp_path / "store") as store:
        for w in [*agent_session("a0", turns=3), *fork_and_invoke("a0", "a0-fork", "a0-child")]:
            store.commit(w)
    return tmp_path / "store"


def test_query_answers_from_an_index_it_brings_up_to_date(root):
    heads_of = "[:find [?h ...] :in $ ?sid :where [?s :session/id ?sid] [?x :head/session ?s] [?x :head/id ?h]]"
    done = run("query", heads_of, "a0", "--json", root=root)
    assert done.returncode == 0, done.stderr
    assert sorted(json.loads(done.stdout)) == ["a0-h1", "a0-h2", "a0-h3"]
    status = json.loads(run("index", "status", "--json", root=root).stdout)
    assert status["lag"] == 0 and status["watermark"] > 0


def test_a_bad_query_is_one_line_and_a_non_zero_exit(root):
    done = run("query", "[:find ?x :where [?x :session/id ?y] [(frobnicate ?y)]]", root=root)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "frobnicate" in done.stderr and "Traceback" not in done.stderr


def test_index_rebuild_swaps_in_a_new_generation(root):
    caught_up = json.loads(run("index", "catch-up", "--json", root=root).stdout)
    before = json.loads(run("index", "status", "--json", root=root).stdout)["file"]
    rebuilt = json.loads(run("index", "rebuild", "--json", root=root).stdout)
    after = json.loads(run("index", "status", "--json", root=root).stdout)
    assert rebuilt["watermark"] == caught_up["watermark"] == after["watermark"]
    assert after["file"] == rebuilt["file"] != before


def test_scan_finds_a_flipped_byte_and_exits_non_zero(root):
    assert run("scan", "--full", root=root).returncode == 0
    with Store.open(root) as store:
        blob = store.message_records("a0")[0]["content_blob"]
    with sqlite3.connect(root / "store.sqlite") as db:  # a small payload: its bytes are inline, in SQLite
        [(bytes_id, data)] = db.execute("SELECT bb.bytes_id, bb.data FROM blobs b JOIN blob_bytes bb"
                                        " ON bb.bytes_id = b.bytes_id WHERE b.blob_id = ?", (blob,)).fetchall()
        db.execute("UPDATE blob_bytes SET data = ? WHERE bytes_id = ?", (bytes([data[0] ^ 1]) + data[1:], bytes_id))
    done = run("scan", "--full", "--json", root=root)
    assert done.returncode == 1
    assert "blob/hash-mismatch" in {f["type"] for f in json.loads(done.stdout)["findings"]}


def test_check_finds_a_head_whose_session_is_gone_and_exits_non_zero(root):
    assert run("check", root=root).returncode == 0
    with sqlite3.connect(root / "store.sqlite") as db:
        db.execute("DELETE FROM sessions WHERE session_id = 'a0-child'")
    done = run("check", "--json", root=root)
    assert done.returncode == 1
    assert "ref/dangling" in {f["type"] for f in json.loads(done.stdout)["findings"]}


def test_blobs_pack_moves_small_files_inline_and_refuses_while_a_writer_holds_the_lock(tmp_path):
    from sessiondb.store.settings import Settings

    root = tmp_path / "files"
    with Store.open(root, Settings.from_env(root=str(root), inline_max_bytes=0)) as store:  # a pre-inline layout
        for w in agent_session("a0", turns=2):
            store.commit(w)
        before = store.message_records("a0", include_content=True)
    done = run("blobs", "pack", "--json", root=root)
    assert done.returncode == 0, done.stderr
    counts = json.loads(done.stdout)
    assert counts["packed"] == counts["files_removed"] > 0 and counts["kept_large"] == 0
    with Store.open(root, readonly=True) as store:
        assert store.message_records("a0", include_content=True) == before
        assert not list(store.blobs.iter_files())
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from sessiondb.store.writer_lock import WriterLock\n"
        "assert WriterLock(sys.argv[1]).try_acquire(); print('held', flush=True); time.sleep(60)"), str(root)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        refused = run("blobs", "pack", root=root)
        assert refused.returncode == 1 and refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
    finally:
        holder.kill()
        holder.wait()
