"""Benchmark: store writes, one transaction per write vs group commit (`commit_many`).

Each write is one `message/added` with a distinct 1 KiB content payload, into fresh store
roots on the real disk. Prints writes/s for both modes and their ratio.

    python -m ops.bench.store_write [--writes 20000] [--group 2000] [--single 1000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

from store import Store
from store.canonical import blob_id


def make_writes(n: int, session: str, prefix: str) -> list[dict]:
    return [
        {"write_id": f"{prefix}-{i}", "session": session,
         "events": [{"type": "message/added", "role": "user", "content": os.urandom(512).hex()}]}
        for i in range(n)
    ]


def fresh_store(base: str, name: str, warm: bool = False) -> Store:
    store = Store.open(os.path.join(base, name))
    if warm:
        # a store past ~100k blobs has all 65,536 blob directories; a new one creates them as it goes
        for first in range(256):
            for second in range(256):
                os.makedirs(os.path.join(store.blobs.dir, f"{first:02x}", f"{second:02x}"), exist_ok=True)
        os.sync()
    store.commit({"write_id": f"{name}-start", "session": "bench", "events": [{"type": "session/started"}]})
    return store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=20_000, help="writes for the group-commit run")
    parser.add_argument("--group", type=int, default=2_000, help="writes per commit_many call")
    parser.add_argument("--single", type=int, default=1_000, help="writes for the one-transaction-per-write run")
    parser.add_argument("--warm", action="store_true",
                        help="pre-create the 65,536 blob directories (steady state of a store in use)")
    parser.add_argument("--dir", default=None, help="where to create the stores (default: a temp dir under ./var)")
    args = parser.parse_args()
    os.makedirs("var", exist_ok=True)
    base = args.dir or tempfile.mkdtemp(prefix="bench-", dir="var")
    try:
        single = fresh_store(base, "single", args.warm)
        writes = make_writes(args.single, "bench", "single")
        start = time.perf_counter()
        for write in writes:
            single.commit_many([write])
        single_rate = len(writes) / (time.perf_counter() - start)
        single.close()

        group = fresh_store(base, "group", args.warm)
        writes = make_writes(args.writes, "bench", "group")
        start = time.perf_counter()
        for i in range(0, len(writes), args.group):
            receipts = group.commit_many(writes[i : i + args.group])
            assert all(r["status"] == "committed" for r in receipts), receipts[:3]
        group_rate = len(writes) / (time.perf_counter() - start)
        group.close()

        # the disk's share: the same number of 1 KiB blobs through BlobStore.put_many alone
        # (temp file, syncfs, rename, syncfs per group), no SQLite, no validation
        blobs = fresh_store(base, "blobs-only", args.warm).blobs
        payloads = [os.urandom(1024) for _ in range(args.writes)]
        start = time.perf_counter()
        for i in range(0, len(payloads), args.group):
            blobs.put_many({blob_id(p): p for p in payloads[i : i + args.group]})
        blob_rate = len(payloads) / (time.perf_counter() - start)
        blobs.close()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    dirs = "pre-created (a store in use)" if args.warm else "created as needed (a new store)"
    print(f"blob directories          : {dirs}")
    print(f"one transaction per write : {single_rate:9,.0f} writes/s  ({args.single} writes)")
    print(f"group commit (commit_many): {group_rate:9,.0f} writes/s  ({args.writes} writes, {args.group} per group)")
    print(f"ratio                     : {group_rate / single_rate:9.1f}x")
    print(f"blob files alone (floor)  : {blob_rate:9,.0f} blobs/s   (the disk's limit for one new file per write)")
    print("targets: group >= 10,000 writes/s and >= 10x one-per-write")


if __name__ == "__main__":
    main()
