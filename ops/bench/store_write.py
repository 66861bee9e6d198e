"""Benchmark: store writes, one transaction per write vs group commit (`commit_many`).

Each write is one `message/added` with a distinct 1 KiB content payload, into fresh store
roots on the real disk. Prints writes/s for both modes and their ratio.

    python -m ops.bench.store_write [--warm] [--writes 20000] [--group 2000] [--single 1000] [--repeat 3]
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


def make_writes(n: int, session: str, prefix: str) -> list[dict]:
    return [
        {"write_id": f"{prefix}-{i}", "session": session,
         "events": [{"type": "message/added", "role": "user", "content": os.urandom(512).hex()}]}
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


def group_rate(base: str, name: str, args: argparse.Namespace, **settings: object) -> float:
    store = fresh_store(base, name, args.warm, **settings)
    # warm-up, untimed: a running writer has its blob I/O processes up already
    store.commit_many(make_writes(300, "bench", f"{name}-warm-up"))
    os.sync()
    writes = make_writes(args.writes, "bench", name)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=20_000, help="writes for each group-commit run")
    parser.add_argument("--group", type=int, default=2_000, help="writes per commit_many call")
    parser.add_argument("--single", type=int, default=1_000, help="writes for the one-transaction-per-write run")
    parser.add_argument("--repeat", type=int, default=3, help="group-commit runs of each kind (the median counts)")
    parser.add_argument("--warm", action="store_true",
                        help="pre-create the 65,536 blob directories (steady state of a store in use)")
    parser.add_argument("--dir", default=None,
                        help="where to create the stores, kept afterwards (default: a temp dir under ./var, removed)")
    args = parser.parse_args()
    os.makedirs("var", exist_ok=True)
    base = args.dir or tempfile.mkdtemp(prefix="bench-", dir="var")
    print(fs_probe.report(base), flush=True)
    runs: dict[str, list[float]] = {"process": [], "thread": [], "blobs": []}
    try:
        single = fresh_store(base, "single", args.warm)
        writes = make_writes(args.single, "bench", "single")
        start = time.perf_counter()
        for write in writes:
            single.commit_many([write])
        single_rate = len(writes) / (time.perf_counter() - start)
        single.close()
        for k in range(args.repeat):  # interleaved, so a slow spell of the disk hits every kind
            runs["process"].append(group_rate(base, f"process{k}", args, blob_io_process_min=1))
            runs["thread"].append(group_rate(base, f"thread{k}", args, blob_io_process_min=0))
            runs["blobs"].append(blob_rate(base, f"blobs{k}", args))
    finally:
        if args.dir is None:  # a --dir given is kept (deleting files slows creating them: docs/benchmarks.md)
            shutil.rmtree(base, ignore_errors=True)
    median = {kind: statistics.median(rates) for kind, rates in runs.items()}

    def each(kind: str) -> str:
        return ", ".join(f"{r:,.0f}" for r in runs[kind])

    dirs = "pre-created (a store in use)" if args.warm else "created as needed (a new store)"
    print(f"blob directories          : {dirs}")
    print(f"one transaction per write : {single_rate:9,.0f} writes/s  ({args.single} writes)")
    print(f"group commit (commit_many): {median['process']:9,.0f} writes/s  median of [{each('process')}]"
          f"  ({args.writes} writes, {args.group} per group, blobs by the blob I/O processes)")
    print(f"  same, blob I/O thread   : {median['thread']:9,.0f} writes/s  median of [{each('thread')}]")
    print(f"ratio                     : {median['process'] / single_rate:9.1f}x")
    print(f"blob files alone (floor)  : {median['blobs']:9,.0f} blobs/s   median of [{each('blobs')}]"
          "  (one new file per write)")
    print("targets: group >= 10,000 writes/s and >= 10x one-per-write")


if __name__ == "__main__":
    main()
