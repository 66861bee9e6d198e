"""Inputs that cannot be lost silently, met as a user meets them: real CLI subprocesses on
real files. A store root that is missing, not SQLite, an empty or a foreign SQLite file, or
of another schema version is one line on stderr for every read command, and nothing on
disk changes; a JSONL file with a BOM is written; a typo'd event type is rejected with the
closest known type; a re-sent file reports duplicates."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from fleet_fixtures import messages_of, wait_until
from fleet_fixtures.processes import clean_env

from sessiondb.store import Store
from sessiondb.store.settings import Settings

CLI = [sys.executable, "-m", "sessiondb.ops.cli"]

READ_COMMANDS = [
    ["view", "s"], ["history", "s"], ["events", "s"], ["messages", "s"], ["counters", "s"],
    ["query", "[:find ?s :where [?s :session/id]]"], ["index", "status"], ["scan"], ["scan", "--full"], ["check"],
]


def not_sqlite(root: Path) -> None:
    root.mkdir()
    (root / "store.sqlite").write_text("these are my notes, not a database\n" * 20)


def empty_sqlite(root: Path) -> None:
    root.mkdir()
    with sqlite3.connect(root / "store.sqlite") as db:  # a real SQLite file (header, pages), no tables
        db.execute("CREATE TABLE t (x)")
        db.execute("DROP TABLE t")
    assert (root / "store.sqlite").stat().st_size > 0


def foreign_sqlite(root: Path) -> None:
    root.mkdir()
    with sqlite3.connect(root / "store.sqlite") as db:
        db.execute("CREATE TABLE users (name TEXT)")
        db.execute("INSERT INTO users VALUES ('ada')")


CASES = {
    "missing root": (lambda root: None, "no sessiondb store at"),
    "text file": (not_sqlite, "is not a sessiondb store (file is not a database)"),
    "empty sqlite": (empty_sqlite, "is not a sessiondb store (an empty SQLite database"),
    "foreign sqlite": (foreign_sqlite, "is not a sessiondb store (a SQLite database of another program"),
}


def snapshot(top: Path, sqlite_shared_memory: bool = True) -> dict[str, tuple]:
    """Every file and directory under `top`: kind, size, mtime and a hash of the bytes.

    `sqlite_shared_memory=False` leaves out a WAL store's `-wal` and `-shm` files: every
    reader of a WAL database, read-only ones too, takes its read marks in the `-shm` file."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            if not sqlite_shared_memory and name.endswith(("-wal", "-shm")):
                continue
            path = Path(dirpath, name)
            st = path.stat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
            found[str(path.relative_to(top))] = (path.is_dir(), st.st_size, st.st_mtime_ns, digest)
    return found


@pytest.mark.parametrize("case", list(CASES))
def test_every_read_command_reports_a_bad_root_in_one_line_and_changes_nothing(tmp_path, case):
    make, expected = CASES[case]
    root = tmp_path / "store"
    make(root)
    before = snapshot(tmp_path)
    # the commands run side by side (each is a separate `sessiondb` process); results are read in order
    procs = [(argv, subprocess.Popen([*CLI, *argv, "--root", str(root)], env=clean_env(), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)) for argv in READ_COMMANDS]
    for argv, proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 1, (argv, out, err)
        assert err.startswith("error: ") and expected in err, (argv, err)
        assert err.count("\n") == 1 and "Traceback" not in err, (argv, err)
        assert out == "", (argv, out)
    assert snapshot(tmp_path) == before  # nothing created, migrated or touched
    assert root.exists() == (case != "missing root")


def test_a_store_of_another_schema_version_is_reported_not_migrated(tmp_path):
    root = tmp_path / "store"
    Store.open(root).close()
    for version, advice in (("999", "upgrade sessiondb"), ("1", "open it for writing once")):
        with sqlite3.connect(root / "store.sqlite") as db:
            db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (version,))
        before = snapshot(tmp_path, sqlite_shared_memory=False)
        done = subprocess.run([*CLI, "view", "s", "--root", str(root)], env=clean_env(), capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 1 and f"has schema version {version}" in done.stderr and advice in done.stderr
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
        assert snapshot(tmp_path, sqlite_shared_memory=False) == before
        with sqlite3.connect(root / "store.sqlite") as db:
            assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (version,)


def test_read_commands_on_a_good_store_change_nothing_in_it(tmp_path):
    root = tmp_path / "store"
    with Store.open(root, Settings.from_env(root=str(root), inline_max_bytes=0)) as store:  # payloads as files
        store.commit({"write_id": "w1", "session": "s", "events": [
            {"type": "session/started"}, {"type": "message/added", "role": "user", "content": "hi"}]})
        blob = store.message_records("s")[0]["content_blob"]
        path = store.blobs.path(blob)
    path.write_bytes(b"flipped")  # a corrupt blob: a read-only scan reports it and leaves it where it is
    db_before = (root / "store.sqlite").read_bytes()
    for argv in (["view", "s", "--json"], ["index", "status", "--json"], ["check", "--json"], ["scan", "--full"]):
        done = subprocess.run([*CLI, *argv, "--root", str(root)], env=clean_env(), capture_output=True, text=True,
                              timeout=120)
        assert "Traceback" not in done.stderr, (argv, done.stderr)
        assert done.returncode == (1 if argv[0] == "scan" else 0), (argv, done.stdout, done.stderr)
    assert (root / "store.sqlite").read_bytes() == db_before and path.read_bytes() == b"flipped"
    assert not (root / "quarantine").exists() and not (root / "index.sqlite").exists()
    repaired = subprocess.run([*CLI, "scan", "--full", "--quarantine", "--json", "--root", str(root)],
                              env=clean_env(), capture_output=True, text=True, timeout=120)
    assert repaired.returncode == 1 and not path.exists()  # the repair flag moves it aside
    assert "moved to quarantine" in json.loads(repaired.stdout)["findings"][0]["message"]


def test_a_jsonl_file_with_a_bom_a_typo_and_a_resend(fleet, tmp_path):
    fleet.writer()
    path = tmp_path / "writes.jsonl"
    lines = [{"write_id": "b-start", "session": "b", "events": [{"type": "session/started"}]},
             {"write_id": "b-1", "session": "b", "events": [{"type": "message/added", "role": "user", "content": "a"}]},
             {"write_id": "b-2", "session": "b", "events": [{"type": "message/addd", "role": "user", "content": "b"}]}]
    # what Notepad or PowerShell's Out-File writes: a UTF-8 BOM first, CRLF line ends
    path.write_bytes("\ufeff".encode() + "\r\n".join(json.dumps(line) for line in lines).encode() + b"\r\n")

    def write_file() -> subprocess.CompletedProcess[str]:
        return subprocess.run([*CLI, "write", str(path), "--wait", "--json"], env=fleet.env, capture_output=True,
                              text=True, timeout=180)

    first = write_file()
    assert first.returncode == 1, first.stderr  # the typo'd write is rejected, loudly
    receipts = json.loads(first.stdout)
    assert [(r["status"], r.get("duplicate", False)) for r in receipts] == [
        ("committed", False), ("committed", False), ("rejected", False)]
    error = receipts[2]["error"]
    assert (error["write_id"], error["event_index"], error["field"]) == ("b-2", 0, "type")
    assert "did you mean message/added?" in error["message"] and "did you mean message/added?" in first.stderr
    again = write_file()
    receipts_again = json.loads(again.stdout)
    assert [(r["status"], r.get("duplicate", False)) for r in receipts_again] == [
        ("committed", True), ("committed", True), ("rejected", False)]
    assert [r["tx_id"] for r in receipts_again[:2]] == [r["tx_id"] for r in receipts[:2]]  # the original tx ids
    summary = subprocess.run([*CLI, "write", str(path), "--wait"], env=fleet.env, capture_output=True, text=True,
                             timeout=180)
    assert "0 committed, 2 duplicate" in summary.stdout, summary.stdout
    with fleet.store() as store:
        assert messages_of(store, "b") == ["a"]
    stats = wait_until(lambda: (s := fleet.stats()) and int(s.get("writes", 0)) == 9 and s, 60, "the counters")
    assert (stats["committed"], stats["duplicate"], stats["rejected"]) == ("2", "4", "3")


def test_a_demo_run_again_reports_every_write_as_a_duplicate(fleet):
    from sessiondb.ops import fleet_demo

    fleet.writer()
    first = fleet_demo.run(fleet.settings, 1, 2, env=fleet.env)
    again = fleet_demo.run(fleet.settings, 1, 2, env=fleet.env)
    assert [(r["committed"], r["duplicate"], r["rejected"]) for r in first] == [(4, 0, 0), (4, 0, 0)]
    # what `sessiondb demo` run twice reported as "committed" was written once: the second run wrote nothing
    assert [(r["committed"], r["duplicate"], r["rejected"]) for r in again] == [(0, 4, 0), (0, 4, 0)]


def test_a_utf16_jsonl_file_is_one_line_saying_what_to_do(tmp_path):
    path = tmp_path / "writes.jsonl"
    path.write_text('{"session": "s", "events": [{"type": "session/started"}]}\n', encoding="utf-16")
    done = subprocess.run([*CLI, "write", str(path)], env=clean_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "is UTF-16: save it as UTF-8" in done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
