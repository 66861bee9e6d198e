"""Benchmark: full blob-scan throughput next to a raw read + blake3 loop over the same files.

Creates `--blobs` blobs (default 100,000) of mixed sizes — most 1-64 KiB, a few up to
1 MiB, scaled to about `--total-mib` in all (default 2048) — through the BlobStore, with
their blob rows inserted directly (executemany: setup only). Then, in the same run and in
the same order, alternating `--repeat` times: a raw loop (open, read, blake3, one thread) and a
full `scan_blobs`, then the raw loop once more; prints MiB/s and blobs/s of every pass and
the ratio of the best scan to the best raw pass (the machine is shared, so best-of-N is
the fair comparison). The CPU time of each pass shows whether the scan's threads really ran
in parallel (more than 100% of one core) on the machine as it was at the time. Everything
is written under ./var/ and removed afterwards (unless --keep). With `--inline-max-bytes N`
the blobs of at most N bytes are stored inline (in store.sqlite's `blob_bytes`, as the
write path does) and the raw loop reads those from SQLite.

    python -m ops.bench.scan [--blobs 100000] [--total-mib 2048] [--workers N] [--repeat 3] [--keep]
    python -m ops.bench.scan --inline-max-bytes 32768      # a mixed store: small blobs inline
"""

from __future__ import annotations

import argparse
import math
import os
import random
import shutil
import sqlite3
import time
from pathlib import Path

import blake3
from sqlalchemy import insert

from sessiondb.store import Store
from sessiondb.store.blobs import inline
from sessiondb.store.integrity import scan_blobs
from sessiondb.store.rows import schema

KIB = 1024
MIB = 1024 * KIB


def sizes(count: int, total_mib: float, seed: int = 7) -> list[int]:
    """Most blobs 1-64 KiB, about 2% 64 KiB-1 MiB (log-uniform), scaled towards `total_mib`, capped at 1 MiB."""
    rng = random.Random(seed)
    raw = []
    for _ in range(count):
        lo, hi = (64 * KIB, MIB) if rng.random() < 0.02 else (KIB, 64 * KIB)
        raw.append(math.exp(rng.uniform(math.log(lo), math.log(hi))))
    scale = total_mib * MIB / sum(raw)
    return [max(64, min(MIB, int(s * scale))) for s in raw]


def build(store: Store, plan: list[int], batch: int = 2000, inline_max: int = 0) -> list[str]:
    """Write the blobs and their rows: files durably through the BlobStore, those of at most
    `inline_max` bytes into `blob_bytes`; returns the blob ids."""
    pool = random.Random(11).randbytes(2 * MIB)
    ids: list[str] = []
    at = "2026-01-01T00:00:00.000000Z"
    for start in range(0, len(plan), batch):
        chunk: dict[str, bytes] = {}
        for n, size in enumerate(plan[start : start + batch], start):
            offset = (n * 7919) % (len(pool) - size)
            data = n.to_bytes(8, "big") + pool[offset : offset + size - 8]  # unique bytes, cheap to make
            chunk["blake3:" + blake3.blake3(data).hexdigest()] = data
        store.blobs.put_many({b: d for b, d in chunk.items() if len(d) > inline_max})
        with store.engine.connect() as conn:
            conn.info["begin"] = "BEGIN IMMEDIATE"
            with conn.begin():
                next_id = inline.next_bytes_id(conn)
                rows, inline_rows = [], []
                for b, d in chunk.items():
                    bytes_id = None
                    if len(d) <= inline_max:
                        bytes_id, next_id = next_id, next_id + 1
                        inline_rows.append({"bytes_id": bytes_id, "data": d})
                    rows.append({"blob_id": b, "size": len(d), "kind": "bench", "created_at": at, "status": "ok",
                                 "media_type": "application/octet-stream", "bytes_id": bytes_id})
                if inline_rows:
                    conn.execute(insert(schema.blob_bytes), inline_rows)
                conn.execute(insert(schema.blobs), rows)
        ids.extend(chunk)
        print(f"\r  created {len(ids):,} / {len(plan):,} blobs", end="", flush=True)
    print()
    return ids


def raw_pass(paths: list[str], db: str | None = None) -> tuple[float, int]:
    """The floor to compare with: open, read, blake3, compare with the name; one thread (and,
    with `db`, every inline blob read from store.sqlite and hashed the same way)."""
    started = time.perf_counter()
    total = 0
    bad = 0
    if db is not None:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        query = "SELECT b.blob_id, bb.data FROM blobs b JOIN blob_bytes bb ON bb.bytes_id = b.bytes_id"
        for blob_id, data in conn.execute(query):
            total += len(data)
            if blake3.blake3(data).hexdigest() != blob_id[7:]:
                bad += 1
        conn.close()
    for path in paths:
        with open(path, "rb", buffering=0) as f:
            data = f.readall()
        total += len(data)
        if blake3.blake3(data).hexdigest() != path[-64:]:
            bad += 1
    assert bad == 0, f"{bad} corrupt blobs in a fresh benchmark store"
    return time.perf_counter() - started, total


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the scan's worker processes)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def line(name: str, seconds: float, nbytes: int, count: int, cpu: float) -> str:
    return (f"  {name:<28} {seconds:7.2f} s  {nbytes / MIB / seconds:9.1f} MiB/s  "
            f"{count / seconds:10.0f} blobs/s  cpu {cpu:6.2f} s ({cpu / seconds:.0%} of one core)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blobs", type=int, default=100_000)
    parser.add_argument("--total-mib", type=float, default=2048.0, help="about this many MiB of blobs in all")
    parser.add_argument("--workers", type=int, default=None,
                        help="scan worker processes (default: auto, one per core for big scans; 0: in-process)")
    parser.add_argument("--root", default=None, help="store root (default: ./var/bench-scan-<pid>)")
    parser.add_argument("--repeat", type=int, default=3, help="alternate raw and scan passes this many times")
    parser.add_argument("--keep", action="store_true", help="leave the store root behind")
    parser.add_argument("--inline-max-bytes", type=int, default=0,
                        help="store blobs of at most this many bytes inline, in store.sqlite (default 0: all files)")
    args = parser.parse_args()

    root = Path(args.root or f"var/bench-scan-{os.getpid()}")
    if root.exists():
        raise SystemExit(f"{root} exists; choose another --root")
    plan = sizes(args.blobs, args.total_mib)
    print(f"blob scan benchmark: {len(plan):,} blobs, {sum(plan) / MIB:,.0f} MiB "
          f"(median {sorted(plan)[len(plan) // 2] / KIB:.1f} KiB, max {max(plan) / KIB:.0f} KiB), "
          f"{os.cpu_count()} cores, root {root}")
    try:
        with Store.open(root) as store:
            ids = build(store, plan, inline_max=args.inline_max_bytes)
            paths = [str(p) for p in sorted(store.blobs.iter_files())]
            db = str(store.root / "store.sqlite") if args.inline_max_bytes else None
            print(f"  {len(ids) - len(paths):,} blobs inline, {len(paths):,} files")
            raws: list[tuple[float, int, float]] = []
            scans: list[tuple[float, int, float]] = []

            def timed_raw() -> None:
                cpu = cpu_seconds()
                seconds, nbytes = raw_pass(paths, db)
                raws.append((seconds, nbytes, cpu_seconds() - cpu))

            for _ in range(args.repeat):  # alternate, so both see the same machine (it is shared)
                timed_raw()
                cpu, started = cpu_seconds(), time.perf_counter()
                report = scan_blobs(store, full=True, workers=args.workers)
                scans.append((time.perf_counter() - started, report.counts["bytes_hashed"], cpu_seconds() - cpu))
                assert report.ok and report.counts["blobs_hashed"] == len(ids), report.as_dict()["by_type"]
            timed_raw()
            for i, (seconds, nbytes, cpu) in enumerate(raws):
                print(line(f"raw read+blake3 #{i + 1}", seconds, nbytes, len(ids), cpu))
            for i, (seconds, nbytes, cpu) in enumerate(scans):
                workers = "auto" if args.workers is None else args.workers
                print(line(f"full scan #{i + 1} (workers={workers})", seconds, nbytes, len(ids), cpu))
            best_raw, best_scan = min(r[0] for r in raws), min(s[0] for s in scans)
            print(f"  best scan / best raw throughput: {best_raw / best_scan:.0%}  (target >= 80%; the scan also"
                  " lists every directory, reads the rows and checkpoints its progress)")
            print(f"  load average now: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
