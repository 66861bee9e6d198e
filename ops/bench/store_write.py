"""Benchmark: store writes, one transaction per write vs group commit (`commit_many`).

Each write is one `message/added` with a distinct 1 KiB content payload (inline, in
store.sqlite), into fresh store roots on the real disk. Prints writes/s for both modes and
their ratio, beside the same writes with every payload a blob file (the layout before the
inline tier) and the blob files alone; then a second mix where 10% of the writes carry a
256 KiB payload (the file tier, written by the blob I/O thread).

    python -m ops.bench.store_write [--warm] [--writes 20000] [--group 2000] [--single 1000] [--repeat 3]
    python -m ops.bench.store_write --sweep 4,16,32,64,128   # inline vs file, per payload size (KiB)
    python -m ops.bench.store_write --postgres   # ... and the same writes on PostgreSQL, side by side

`--postgres` starts a private PostgreSQL server (`ops/postgres_server.py`: the local disk,
fsync and synchronous_commit on), gives each run a fresh database, and prints its
one-per-write and group-commit rates beside SQLite's, with the ratio.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time

from sessiondb.ops.bench import fs_probe
from sessiondb.store import Settings, Store
from sessiondb.store.blobs.canonical import blob_id


def make_writes(n: int, session: str, prefix: str, large_every: int = 0, large_bytes: int = 256 * 1024,
                size: int = 1024) -> list[dict]:
    """n writes of one message each: `size` bytes of content, or `large_bytes` for every
    `large_every`-th write (0: none)."""
    return [
        {"write_id": f"{prefix}-{i}", "session": session,
         "events": [{"type": "message/added", "role": "user",
                     "content": os.urandom((large_bytes if large_every and i % large_every == 0 else size) // 2)
                     .hex()}]}
        for i in range(n)
    ]


def precreate_blob_dirs(store: Store) -> None:
    """A store past ~100k blobs has all 65,536 blob directories; a new one creates them as it goes.
    They are synced, so that creating them is not timed with what follows."""
    for first in range(256):
        for second in range(256):
            os.makedirs(os.path.join(store.blobs.dir, f"{first:02x}", f"{second:02x}"), exist_ok=True)
    os.sync()


def fresh_store(base: str, name: str, warm: bool = False, **settings: object) -> Store:
    root = os.path.join(base, name)
    store = Store.open(root, Settings.from_env(root=root, **settings))
    if warm:
        precreate_blob_dirs(store)
    store.commit({"write_id": f"{name}-start", "session": "bench", "events": [{"type": "session/started"}]})
    os.sync()  # earlier runs' dirty pages are written before this one is timed (stores are removed at the end)
    return store


def postgres_rates(base: str, args: argparse.Namespace) -> tuple[float, list[float]]:
    """(one-per-write rate, group-commit rates) on a private PostgreSQL server, a database per run."""
    import psycopg

    from sessiondb.ops.postgres_server import EmbeddedPostgres

    server_dir = tempfile.mkdtemp(prefix="sessiondb-pg-bench-")  # as root, the server's user must reach it
    server = EmbeddedPostgres(server_dir).start()
    try:
        def database(name: str) -> str:
            with psycopg.connect(server.url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            return server.url.rsplit("/", 1)[0] + f"/{name}"

        single = fresh_store(base, "pg-single", args.warm, database_url=database("single"))
        writes = make_writes(args.single, "bench", "pg-single")
        start = time.perf_counter()
        for write in writes:
            single.commit_many([write])
        single_rate = len(writes) / (time.perf_counter() - start)
        single.close()
        rates = [group_rate(base, f"pg-inline{k}", args, database_url=database(f"inline{k}"))
                 for k in range(args.repeat)]
        return single_rate, rates
    finally:
        server.stop()
        shutil.rmtree(server_dir, ignore_errors=True)


def group_rate(base: str, name: str, args: argparse.Namespace, large_every: int = 0, writes_n: int = 0,
               size: int = 1024, **settings: object) -> float:
    store = fresh_store(base, name, args.warm, **settings)
    # warm-up, untimed: a running writer has its blob I/O thread up already
    store.commit_many(make_writes(300, "bench", f"{name}-warm-up", large_every, size=size))
    os.sync()
    writes = make_writes(writes_n or args.writes, "bench", name, large_every, size=size)
    start = time.perf_counter()
    for i in range(0, len(writes), args.group):
        receipts = store.commit_many(writes[i : i + args.group])
        assert all(r["status"] == "committed" for r in receipts), receipts[:3]
    rate = len(writes) / (time.perf_counter() - start)
    store.close()
    return rate


def blob_rate(base: str, name: str, args: argparse.Namespace) -> float:
    """The disk's share: as many 1 KiB blobs through BlobStore.put_many alone (temp file,
    syncfs, link, syncfs per group, on the I/O thread), no SQLite, no validation."""
    store = fresh_store(base, name, args.warm)
    payloads = [os.urandom(1024) for _ in range(args.writes)]
    start = time.perf_counter()
    for i in range(0, len(payloads), args.group):
        store.blobs.put_many({blob_id(p): p for p in payloads[i : i + args.group]})
    rate = len(payloads) / (time.perf_counter() - start)
    store.close()
    return rate


def sweep(base: str, args: argparse.Namespace) -> None:
    """The inline threshold: group-commit writes/s and MiB/s per payload size, inline vs file."""
    print(f"{'payload':>8} {'inline w/s':>11} {'file w/s':>10} {'inline MiB/s':>13} {'file MiB/s':>11}")
    for kib in (int(k) for k in args.sweep.split(",")):
        n = max(200, min(args.writes, (64 << 20) // (kib * 1024)))  # at most ~64 MiB of payload per run
        rates = {}
        for tier, limit in (("inline", kib * 1024), ("file", 0)):
            rates[tier] = statistics.median(
                group_rate(base, f"sweep-{kib}-{tier}{k}", args, writes_n=n, size=kib * 1024,
                           inline_max_bytes=limit) for k in range(args.repeat))
        mib = {tier: rate * kib / 1024 for tier, rate in rates.items()}
        print(f"{kib:>5} KiB {rates['inline']:11,.0f} {rates['file']:10,.0f} {mib['inline']:13,.1f}"
              f" {mib['file']:11,.1f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=20_000, help="writes for each group-commit run")
    parser.add_argument("--group", type=int, default=2_000, help="writes per commit_many call")
    parser.add_argument("--single", type=int, default=1_000, help="writes for the one-transaction-per-write run")
    parser.add_argument("--repeat", type=int, default=3, help="group-commit runs of each kind (the median counts)")
    parser.add_argument("--large-writes", type=int, default=4_000,
                        help="writes for each run of the mix with 10%% large payloads")
    parser.add_argument("--warm", action="store_true",
                        help="pre-create the 65,536 blob directories (steady state of a store in use)")
    parser.add_argument("--sweep", default="", help="only the threshold sweep: payload sizes in KiB, e.g. 4,16,64")
    parser.add_argument("--postgres", action="store_true",
                        help="also run the one-per-write and group-commit runs on a private PostgreSQL server")
    parser.add_argument("--dir", default=None,
                        help="where to create the stores, kept afterwards (default: a temp dir under ./var, removed)")
    args = parser.parse_args()
    os.makedirs("var", exist_ok=True)
    base = args.dir or tempfile.mkdtemp(prefix="bench-", dir="var")
    print(fs_probe.report(base), flush=True)
    kinds = ("inline", "files", "blobs", "large")
    runs: dict[str, list[float]] = {kind: [] for kind in kinds}
    try:
        if args.sweep:
            sweep(base, args)
            return
        single = fresh_store(base, "single", args.warm)
        writes = make_writes(args.single, "bench", "single")
        start = time.perf_counter()
        for write in writes:
            single.commit_many([write])
        single_rate = len(writes) / (time.perf_counter() - start)
        single.close()
        for k in range(args.repeat):  # interleaved, so a slow spell of the disk hits every kind
            runs["inline"].append(group_rate(base, f"inline{k}", args))
            runs["files"].append(group_rate(base, f"files{k}", args, inline_max_bytes=0))
            runs["blobs"].append(blob_rate(base, f"blobs{k}", args))
            runs["large"].append(group_rate(base, f"large{k}", args, large_every=10, writes_n=args.large_writes))
        if args.postgres:
            pg_single, runs["pg"] = postgres_rates(base, args)
    finally:
        if args.dir is None:  # a --dir given is kept (deleting files slows creating them: docs/benchmarks.md)
            shutil.rmtree(base, ignore_errors=True)
    median = {kind: statistics.median(rates) for kind, rates in runs.items()}

    def each(kind: str) -> str:
        return ", ".join(f"{r:,.0f}" for r in runs[kind])

    dirs = "pre-created (a store in use)" if args.warm else "created as needed (a new store)"
    print(f"blob directories          : {dirs}")
    print(f"one transaction per write : {single_rate:9,.0f} writes/s  ({args.single} writes, 1 KiB inline)")
    print(f"group commit (commit_many): {median['inline']:9,.0f} writes/s  median of [{each('inline')}]"
          f"  ({args.writes} writes, {args.group} per group, 1 KiB payloads inline)")
    print(f"ratio                     : {median['inline'] / single_rate:9.1f}x")
    print(f"  baseline, payload files : {median['files']:9,.0f} writes/s  median of [{each('files')}]"
          "  (the same writes, every payload a blob file: the layout before the inline tier)")
    print(f"  blob files alone        : {median['blobs']:9,.0f} blobs/s   median of [{each('blobs')}]"
          "  (one new 1 KiB file per write, no SQLite)")
    print(f"mix, 10% of writes 256 KiB: {median['large']:9,.0f} writes/s  median of [{each('large')}]"
          f"  ({args.large_writes} writes; the large payloads are files)")
    if args.postgres:
        pg = statistics.median(runs["pg"])
        print(f"PostgreSQL, one per write : {pg_single:9,.0f} writes/s  ({args.single} writes, 1 KiB inline;"
              f" {pg_single / single_rate:.0%} of SQLite's)")
        print(f"PostgreSQL, group commit  : {pg:9,.0f} writes/s  median of [{each('pg')}]"
              f"  ({pg / median['inline']:.0%} of SQLite's; a local server, fsync and synchronous_commit on)")
    print("targets: group >= 30,000 writes/s and >= 50x one-per-write"
          + ("; PostgreSQL group commit >= 50% of SQLite's" if args.postgres else ""))


if __name__ == "__main__":
    main()
