"""Damage below the rows: overwritten database pages, and a symbolic link where a blob file belongs.

Both are made for real (bytes written over store.sqlite's pages; a link put in the blob
tree), then found through the library and through the CLI as a person would run it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from helpers import message, started, write

from sessiondb.store import Store
from sessiondb.store.integrity import check_consistency, scan_blobs
from sessiondb.store.settings import Settings

CLI = [sys.executable, "-m", "sessiondb.ops.cli"]
PAGE = 4096


def filled(root: Path) -> Path:
    """A closed store with a few hundred messages (so its tables span many pages)."""
    with Store.open(root) as store:
        store.commit(started("s"))
        for i in range(30):
            store.commit(write("s", *[message(f"message {i}.{j} " + "words " * 20) for j in range(10)]))
    db = root / "store.sqlite"
    assert not (root / "store.sqlite-wal").exists() or (root / "store.sqlite-wal").stat().st_size == 0
    return db


def overwrite_pages(db: Path, first: int, count: int) -> None:
    with open(db, "r+b") as f:
        f.seek(first * PAGE)
        f.write(b"\xa5" * (count * PAGE))


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONDB_")}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, env=env)


def test_overwritten_pages_are_reported_by_a_full_scan_and_by_check_as_sqlite_corrupt(tmp_path):
    db = filled(tmp_path / "s")
    pages = db.stat().st_size // PAGE
    overwrite_pages(db, pages // 2, 3)
    with Store.open(tmp_path / "s") as store:
        scan = scan_blobs(store, full=True)
        check = check_consistency(store)
    for report, pragma in ((scan, "integrity_check"), (check, "quick_check")):
        [finding] = [f for f in report.findings if f.type == "sqlite/corrupt"]
        assert finding.severity == "error" and not report.ok
        assert finding.data["database"] == "store.sqlite" and finding.data["check"] == pragma
        assert finding.data["messages"] and finding.data["messages"] != ["ok"]
    assert scan.counts["blob_scan_skipped"] == 1  # rows of a damaged database are not trusted


def test_the_cli_reports_damaged_pages_without_a_traceback(tmp_path):
    db = filled(tmp_path / "s")
    overwrite_pages(db, db.stat().st_size // PAGE // 2, 3)
    for command in (["scan", "--full"], ["check"]):
        done = cli(*command, "--root", str(tmp_path / "s"))
        assert done.returncode == 1, done.stdout + done.stderr
        assert "sqlite/corrupt" in done.stdout + done.stderr
        assert "Traceback" not in done.stderr


def test_a_healthy_store_passes_sqlites_own_checks(tmp_path):
    filled(tmp_path / "s")
    with Store.open(tmp_path / "s") as store:
        scan = scan_blobs(store, full=True)
        check = check_consistency(store)
    assert scan.ok and check.ok
    assert scan.counts["sqlite_integrity_check"] >= 1 and check.counts["sqlite_quick_check"] >= 1


def test_a_symbolic_link_at_a_blobs_name_is_reported_quarantined_and_healed_by_a_rewrite(tmp_path):
    files_only = Settings.from_env(root=str(tmp_path / "s"), inline_max_bytes=0)  # the payload is a file
    with Store.open(tmp_path / "s", files_only) as store:
        store.commit(write("s", {"type": "session/started"}, message("precious words")))
        [content] = [m["content_blob"] for m in store.message_records("s")]
        path = store.blobs.path(content)
        outside = tmp_path / "elsewhere"
        outside.write_bytes(path.read_bytes())  # the very same bytes, but outside the blob tree
        path.unlink()
        path.symlink_to(outside)

        report = scan_blobs(store, full=True)
        [finding] = report.findings
        assert finding.type == "blob/not-a-file" and finding.data["blob_id"] == content
        assert not path.is_symlink() and not path.exists()  # the link (not its target) went to quarantine
        assert outside.exists()

        store.commit(write("s", message("precious words")))  # the same content again
        assert path.is_file() and not path.is_symlink()
        assert store.message_records("s", include_content=True)[0]["content"] == "precious words"
        assert scan_blobs(store, full=True).ok
