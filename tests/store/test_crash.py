"""Durability: a writer killed with SIGKILL at random moments loses no acknowledged write,
applies none twice, leaves no partial write and no row pointing at a missing blob, in
either tier (the writes mix inline payloads and blob files)."""

from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from sessiondb.store import Settings, Store
from sessiondb.store.integrity import check_consistency, scan_blobs

CHILD = Path(__file__).with_name("crash_writer.py")
ROUNDS = 20
PG_ROUNDS = 8  # on PostgreSQL (each round starts a writer process and its server sessions)


def run_and_kill(root: Path, round_no: int, rng: random.Random, env: dict[str, str]) -> set[str]:
    proc = subprocess.Popen([sys.executable, str(CHILD), str(root), str(round_no)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **env})
    acked: set[str] = set()
    ready, streaming = threading.Event(), threading.Event()

    def read() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            if line.startswith("ready"):
                ready.set()
            elif line.startswith("ack ") and line.endswith("\n") and len(line.split()) == 2:
                acked.add(line.split()[1])
                streaming.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert ready.wait(120), proc.stderr.read() if proc.stderr else "child did not start"
    # Kill mid-stream: after the child's first acknowledged group (however slow a loaded machine
    # makes it), then at a random moment of the stream that follows.
    assert streaming.wait(120), "the child acknowledged no write within 120 s"
    time.sleep(rng.uniform(0.02, 0.6))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    reader.join(60)  # the rest of the pipe, before `acked` is read
    return acked


def processes_using(root: Path) -> list[str]:
    """Command lines of live processes that name the store root (none may outlive the writer)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(root) in cmdline and "crash_writer" not in cmdline:
            found.append(cmdline)
    return found


# groups of 1-50 writes, most payloads inline and some files; or every payload a file
@pytest.mark.parametrize("env", [{}, {"SESSIONDB_INLINE_MAX_BYTES": "0"}], ids=["mixed-tiers", "files-only"])
def test_sigkill_at_random_moments_loses_nothing_acknowledged(tmp_path, env):
    rng = random.Random(1234)
    root = tmp_path / "store"
    acknowledged: set[str] = set()
    for round_no in range(ROUNDS):
        acknowledged |= run_and_kill(root, round_no, rng, env)
    assert len(acknowledged) > ROUNDS  # the kills did land mid-stream, after real work
    deadline = time.monotonic() + 60
    while processes_using(root) and time.monotonic() < deadline:  # nothing outlives its writer
        time.sleep(0.1)
    assert not processes_using(root)

    verify(root, acknowledged, env, integrity=True)


def test_sigkill_of_a_postgresql_writer_at_random_moments_loses_nothing_acknowledged(tmp_path, pg_database_url):
    rng = random.Random(4321)
    root = tmp_path / "store"
    env = {"SESSIONDB_DATABASE_URL": pg_database_url}
    acknowledged: set[str] = set()
    for round_no in range(PG_ROUNDS):
        acknowledged |= run_and_kill(root, round_no, rng, env)
    assert len(acknowledged) > PG_ROUNDS
    verify(root, acknowledged, env, integrity=False)  # the integrity scans read store.sqlite (not yet PostgreSQL)


def verify(root: Path, acknowledged: set[str], env: dict[str, str], integrity: bool) -> None:
    settings = Settings.from_env({**os.environ, **env}, root=str(root))
    with Store.open(root, settings) as store:
        records = store.message_records("crash", include_content=True, all_branches=True)  # verifies every blob
        firsts = collections.Counter(r["content"].split(" ")[0] for r in records)
        with store.engine.connect() as conn:
            committed = {row[0] for row in conn.execute(text("SELECT write_id FROM writes"))}
            tx_count = conn.execute(text("SELECT count(*) FROM tx")).scalar()
            dangling = conn.execute(text(
                "SELECT count(*) FROM messages m LEFT JOIN blobs b ON b.blob_id = m.content_blob "
                "WHERE b.blob_id IS NULL")).scalar()
    committed.discard("start")
    missing = acknowledged - committed
    assert not missing, f"acknowledged writes lost: {sorted(missing)[:5]}"
    for write_id in committed:
        assert firsts[f"{write_id}-a"] == 1 and firsts[f"{write_id}-b"] == 1, write_id  # once, and whole
    assert sum(firsts.values()) == 2 * len(committed)  # nothing else: no partial or doubled write
    assert tx_count == len(committed) + 1
    assert dangling == 0
    with Store.open(root, settings) as store:  # both tiers were written, and nothing is missing or corrupt in either
        with store.engine.connect() as conn:
            tiers = dict(conn.execute(text("SELECT bytes_id IS NOT NULL, count(*) FROM blobs GROUP BY 1")).all())
        assert tiers.get(0, 0) > 0 and (tiers.get(1, 0) > 0) == (settings.inline_max_bytes > 0), tiers
        if not integrity:
            return
        scan = scan_blobs(store, full=True)  # orphan files of killed groups are younger than the grace period
        assert scan.ok and scan.findings == [], scan.findings[:3]
        assert scan.counts["blobs_hashed"] == sum(tiers.values())
        assert check_consistency(store).ok
