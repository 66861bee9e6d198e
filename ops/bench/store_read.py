"""Benchmark: read views of a large session.

Builds one session with 10,000 messages, 1,000 heads and 3 branches (two resumes to older
heads), then prints p50/p99 latency of `view`, `view(head)`, `history_view`,
`message_records`, `high_water_counters` — and `high_water_counters` on a tiny session
for comparison (O(1): the two must match).

    python -m ops.bench.store_read [--messages 10000] [--heads 1000] [--runs 50] [--postgres]

`--postgres`: the same session and reads on a private local PostgreSQL server too, printed
beside SQLite's with the ratio of the p50s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable

from sessiondb.store import Settings, Store


def build(store: Store, messages: int, heads: int) -> None:
    per_head = max(1, messages // heads)
    store.commit({"write_id": "start", "session": "big", "events": [{"type": "session/started"}]})
    store.commit({"write_id": "tiny", "session": "tiny", "events": [{"type": "session/started"}]})
    writes, current, made = [], None, 0
    branch_points = {heads // 3: heads // 6, 2 * heads // 3: heads // 2}  # at head k, resume to head v
    for h in range(1, heads + 1):
        events = [{"type": "message/added", "role": "user" if i % 2 else "assistant",
                   "content": f"message {h}.{i} " + "lorem ipsum " * 20} for i in range(per_head)]
        events.append({"type": "head/created", "head_id": f"h{h}", "expected_head": current})
        writes.append({"write_id": f"w{h}", "session": "big", "events": events})
        current = f"h{h}"
        made += 1
        if h in branch_points:
            target = f"h{branch_points[h]}"
            writes.append({"write_id": f"resume{h}", "session": "big", "events": [
                {"type": "session/restored", "kind": "resume", "source_head": target, "expected_head": current}]})
            current = target
    for i in range(0, len(writes), 200):
        for receipt in store.commit_many(writes[i : i + 200]):
            assert receipt["status"] == "committed", receipt


def timed(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    fn()  # warm up
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def measure(store: Store, args: argparse.Namespace) -> dict[str, tuple[float, float]]:
    """Build the big session in `store`, then (p50, p99) in ms of each read."""
    start = time.perf_counter()
    build(store, args.messages, args.heads)
    print(f"built: {args.messages} messages, {args.heads} heads, 3 branches in {time.perf_counter() - start:.1f}s"
          f" ({store.database.split('://')[0]})")
    all_messages = len(store.message_records("big", all_branches=True))
    on_branch = len(store.view("big")["messages"])
    print(f"messages: {all_messages} in all branches, {on_branch} on the current branch")
    cases = {
        "view (current branch)": lambda: store.view("big"),
        "view (a head, old branch)": lambda: store.view("big", head=f"h{args.heads // 3}"),
        "history_view": lambda: store.history_view("big"),
        "message_records": lambda: store.message_records("big"),
        "message_records (content)": lambda: store.message_records("big", include_content=True),
        "high_water_counters (big)": lambda: store.high_water_counters("big"),
        "high_water_counters (tiny)": lambda: store.high_water_counters("tiny"),
    }
    return {name: timed(fn, args.runs) for name, fn in cases.items()}


def on_postgres(base: str, args: argparse.Namespace) -> dict[str, tuple[float, float]]:
    """The same on a private PostgreSQL server (ops/postgres_server.py), in a fresh database."""
    from sessiondb.ops.postgres_server import EmbeddedPostgres

    server_dir = tempfile.mkdtemp(prefix="sessiondb-pg-bench-")  # as root, the server's user must reach it
    server = EmbeddedPostgres(server_dir).start()
    try:
        root = os.path.join(base, "pg")
        with Store.open(root, Settings.from_env(root=root, database_url=server.url)) as store:
            return measure(store, args)
    finally:
        server.stop()
        shutil.rmtree(server_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--heads", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--postgres", action="store_true",
                        help="also on a private PostgreSQL server, printed beside SQLite with the ratio")
    args = parser.parse_args()
    os.makedirs("var", exist_ok=True)
    base = tempfile.mkdtemp(prefix="bench-read-", dir="var")
    try:
        with Store.open(os.path.join(base, "sqlite")) as store:
            sqlite = measure(store, args)
        pg = on_postgres(base, args) if args.postgres else {}
    finally:
        shutil.rmtree(base, ignore_errors=True)
    extra = f" {'PG p50':>9} {'PG p99':>9} {'PG/SQLite':>9}" if pg else ""
    print(f"{'read':30} {'p50 ms':>9} {'p99 ms':>9}{extra}")
    for name, (p50, p99) in sqlite.items():
        line = f"{name:30} {p50:9.2f} {p99:9.2f}"
        if pg:
            line += f" {pg[name][0]:9.2f} {pg[name][1]:9.2f} {pg[name][0] / p50:8.1f}x"
        print(line)
    print("targets: view p50 <= 15 ms; message_records (content) p50 <= 30 ms; high_water_counters O(1)"
          " (big ~ tiny)" + ("; PostgreSQL view p50 <= 2x SQLite's" if pg else ""))


if __name__ == "__main__":
    main()
