"""Benchmark: a retention run over many sessions, and blob GC of many unreferenced payloads.

Retention: `--sessions` sessions (default 10,000), each `h1 -> h2`, then a resume to h1 and
one more message, so every session has one abandoned head and message; written through
`commit_many` (group commits: setup). Then a dry run (the baseline: the same planning,
read-only, no write lock) and the real run (`abandoned_days=1` on a clock three days
ahead); prints time and sessions/s of each and what was removed.

GC: `--payloads` payloads (default 100,000) nothing references, `--file-fraction` of them
(default 0.1) as blob files and the rest inline, their rows inserted directly (setup), old
enough for the grace period. Then a dry run (the baseline: mark and listing alone) and the
collection; prints time and payloads/s, and MiB freed. The file-system probe line comes
first (deleting many files slows file creation for minutes: docs/benchmarks.md). Everything
is written under ./var/ and removed afterwards (unless --keep).

    python -m ops.bench.forget_retention [--sessions 10000] [--payloads 100000] [--file-fraction 0.1] [--keep]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import blake3
from sqlalchemy import insert

from sessiondb.ops.bench.fs_probe import report as fs_report
from sessiondb.store import Settings, Store
from sessiondb.store.blobs import inline
from sessiondb.store.blobs.gc import collect_garbage
from sessiondb.store.forget.retention import apply_retention
from sessiondb.store.rows import schema

MIB = 1024 * 1024


def session_writes(sid: str) -> list[dict]:
    def w(n: int, *events: dict) -> dict:
        return {"write_id": f"{sid}:{n}", "session": sid, "events": list(events)}

    def msg(text: str) -> dict:
        return {"type": "message/added", "role": "user", "content": f"{sid} {text} " * 8}

    return [
        w(1, {"type": "session/started"}, msg("one"), {"type": "head/created", "head_id": f"{sid}-h1",
                                                      "expected_head": None}),
        w(2, msg("two"), {"type": "head/created", "head_id": f"{sid}-h2", "expected_head": f"{sid}-h1"}),
        w(3, {"type": "session/restored", "kind": "resume", "source_head": f"{sid}-h1",
              "expected_head": f"{sid}-h2"}, msg("three")),
    ]


def bench_retention(root: Path, sessions: int) -> None:
    with Store.open(root, Settings.from_env(root=str(root), sqlite_synchronous="NORMAL")) as store:
        started = time.perf_counter()
        pending: list[dict] = []
        for i in range(sessions):
            pending += session_writes(f"s{i}")
            if len(pending) >= 1500 or i == sessions - 1:
                # one group per step: a resume needs the head its own group created before
                for step in range(3):
                    store.commit_many(pending[step::3])
                pending = []
        print(f"  setup: {sessions:,} sessions ({3 * sessions:,} writes) in {time.perf_counter() - started:.1f} s")
        later = datetime.now(UTC) + timedelta(days=3)
        for label, dry in (("dry run (baseline)", True), ("retention run", False)):
            started = time.perf_counter()
            report = apply_retention(store, abandoned_days=1, now=later, dry_run=dry)
            seconds = time.perf_counter() - started
            c = report.counts
            print(f"  {label:<20} {seconds:7.2f} s  {sessions / seconds:9.0f} sessions/s  heads {c['heads_removed']:,}"
                  f"  messages {c['messages_removed']:,}  events {c['events_removed']:,}"
                  f"  payload bytes released {c['payload_bytes_released'] / MIB:.1f} MiB")
        assert c["heads_removed"] == sessions and c["messages_removed"] == sessions, c


def bench_gc(root: Path, payloads: int, file_fraction: float) -> None:
    rng = random.Random(5)
    with Store.open(root, Settings.from_env(root=str(root), sqlite_synchronous="NORMAL")) as store:
        started = time.perf_counter()
        at = "2026-01-01T00:00:00.000000Z"
        files = 0
        for start in range(0, payloads, 5000):
            chunk = {}
            for n in range(start, min(payloads, start + 5000)):
                data = n.to_bytes(8, "big") + rng.randbytes(rng.randint(200, 2000))
                chunk["blake3:" + blake3.blake3(data).hexdigest()] = data
            as_files = {b: d for b, d in chunk.items() if rng.random() < file_fraction}
            files += len(as_files)
            store.blobs.put_many(as_files)
            old = time.time() - 7 * 86400
            for b in as_files:
                os.utime(store.blobs.path(b), (old, old))
            with store.engine.connect() as conn:
                conn.info["begin"] = "BEGIN IMMEDIATE"
                with conn.begin():
                    next_id = inline.next_bytes_id(conn)
                    rows, inline_rows = [], []
                    for b, d in chunk.items():
                        bytes_id = None
                        if b not in as_files:
                            bytes_id, next_id = next_id, next_id + 1
                            inline_rows.append({"bytes_id": bytes_id, "data": d})
                        rows.append({"blob_id": b, "size": len(d), "kind": "bench", "created_at": at,
                                     "status": "ok", "media_type": "application/octet-stream", "bytes_id": bytes_id})
                    conn.execute(insert(schema.blob_bytes), inline_rows)
                    conn.execute(insert(schema.blobs), rows)
        print(f"  setup: {payloads:,} unreferenced payloads ({files:,} files) in {time.perf_counter() - started:.1f} s")
        for label, dry in (("dry run (baseline)", True), ("collection", False)):
            started = time.perf_counter()
            report = collect_garbage(store, grace_hours=1, dry_run=dry)
            seconds = time.perf_counter() - started
            c = report.counts
            print(f"  {label:<20} {seconds:7.2f} s  {payloads / seconds:9.0f} payloads/s"
                  f"  candidates {c['candidates']:,}  freed {c['bytes_freed'] / MIB:.1f} MiB")
        assert c["collected_inline"] + c["collected_files"] == payloads, c
        assert c["collected_files"] == files, c


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--payloads", type=int, default=100_000)
    parser.add_argument("--file-fraction", type=float, default=0.1, help="this share of the payloads are files")
    parser.add_argument("--root", default=None, help="work directory (default: ./var/bench-forget-<pid>)")
    parser.add_argument("--keep", action="store_true", help="leave the store roots behind")
    args = parser.parse_args()
    base = Path(args.root or f"var/bench-forget-{os.getpid()}")
    if base.exists():
        raise SystemExit(f"{base} exists; choose another --root")
    base.mkdir(parents=True)
    try:
        print(fs_report(str(base)))
        print(f"retention over {args.sessions:,} sessions, {os.cpu_count()} cores")
        bench_retention(base / "retention", args.sessions)
        print(f"blob GC of {args.payloads:,} unreferenced payloads")
        bench_gc(base / "gc", args.payloads, args.file_fraction)
        print(f"  load average now: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
