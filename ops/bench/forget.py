"""Benchmark: deleting one session of 10k messages out of a large store, while writes go on.

Builds a store of `--total` messages (`--sessions` sessions, 200-byte contents, 1 in 50 a
40 KiB file-tier payload) plus one victim session of `--victim` messages, catches the index
up, then deletes the victim while a second thread keeps committing small writes (groups of
`--group` one-message writes) through the same store, as the fleet's writer would between
broker messages. Prints the delete's duration, the writer's throughput in the seconds before
the delete and during it (the issue asks for >= 50% of normal), and the indexer's time to
apply the delete.

    python -m ops.bench.forget [--total 1000000] [--victim 10000] [--sessions 1000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time

from sessiondb.store import Settings, Store
from sessiondb.store.index import Index


def message_writes(session: str, n: int, prefix: str, per_write: int = 50) -> list[dict]:
    writes = [{"write_id": f"{prefix}-start", "session": session, "events": [{"type": "session/started"}]}]
    for start in range(0, n, per_write):
        events = [{"type": "message/added", "role": "user",
                   "content": (os.urandom(20_000).hex() if (start + k) % 50 == 49 else os.urandom(100).hex())}
                  for k in range(min(per_write, n - start))]
        writes.append({"write_id": f"{prefix}-{start}", "session": session, "events": events})
    return writes


def build(store: Store, total: int, sessions: int, victim: int) -> None:
    per = max(1, total // sessions)
    t0 = time.perf_counter()
    for s in range(sessions):
        store.commit_many(message_writes(f"filler-{s}", per, f"f{s}"))
    store.commit_many(message_writes("victim", victim, "v"))
    print(f"built {per * sessions + victim:,} messages in {time.perf_counter() - t0:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--total", type=int, default=1_000_000)
    parser.add_argument("--victim", type=int, default=10_000)
    parser.add_argument("--sessions", type=int, default=1_000)
    parser.add_argument("--group", type=int, default=100, help="writes per commit of the background writer")
    parser.add_argument("--dir", default=None, help="where to build the store (default: a temp dir)")
    args = parser.parse_args()
    base = tempfile.mkdtemp(dir=args.dir)
    root = os.path.join(base, "store")
    try:
        store = Store.open(root, Settings.from_env(root=root))
        build(store, args.total, args.sessions, args.victim)
        with Index.open(root) as index:
            t0 = time.perf_counter()
            index.catch_up()
            print(f"index caught up in {time.perf_counter() - t0:.0f} s")
        store.commit({"write_id": "bg-start", "session": "bg", "events": [{"type": "session/started"}]})
        done: list[float] = []  # commit end times of the background writer's writes
        stop = threading.Event()

        def background() -> None:
            i = 0
            while not stop.is_set():
                store.commit_many([{"write_id": f"bg-{i}-{k}", "session": "bg", "events": [
                    {"type": "message/added", "role": "user", "content": f"bg {i} {k}"}]} for k in range(args.group)])
                done.extend([time.perf_counter()] * args.group)
                i += 1

        thread = threading.Thread(target=background)
        thread.start()
        time.sleep(3.0)
        start = time.perf_counter()
        receipt = store.delete_session("victim", reason="benchmark")
        end = time.perf_counter()
        time.sleep(1.0)
        stop.set()
        thread.join()
        before = sum(1 for t in done if start - 3.0 <= t < start) / 3.0
        window = max(end - start, 1.0)  # a window of at least a second around the delete
        during = sum(1 for t in done if start <= t < start + window) / window
        print(f"delete of {args.victim:,} messages: {end - start:.2f} s ({receipt['payloads']:,} payloads,"
              f" {receipt['bytes_freed'] / 1e6:.1f} MB freed)")
        print(f"background writes/s: {before:,.0f} before, {during:,.0f} during the delete"
              f" ({during / before:.0%} of normal; target >= 50%)")
        with Index.open(root) as index:
            t0 = time.perf_counter()
            index.catch_up()
            print(f"indexer applied the delete (and the background writes) in {time.perf_counter() - t0:.1f} s")
        store.close()
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
