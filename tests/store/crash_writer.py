"""Child process of test_crash: commits writes in a loop and prints each acknowledged write id.

Usage: python crash_writer.py ROOT ROUND. Runs until killed. A line `ack <write_id>` is
printed (and flushed) only after `commit_many` returned that write's receipt, i.e. after
the write is durable: that is what the parent may hold the store to. Payloads are mixed:
most are inline (in the database), some large enough to be blob files.
"""

import random
import sys

from sessiondb.store import Store

root, round_no = sys.argv[1], int(sys.argv[2])
rng = random.Random(round_no)
store = Store.open(root)  # SESSIONDB_DATABASE_URL set: on PostgreSQL
store.hold_writer_lock()  # as a writer does (PostgreSQL may take a moment to see the last one's socket close)
store.commit({"write_id": "start", "session": "crash", "events": [{"type": "session/started"}]})
print("ready", flush=True)
n = 0
while True:
    group = []
    for _ in range(rng.randint(1, 50)):
        wid = f"r{round_no}-{n}"
        n += 1
        # mixed tiers: most payloads inline (at most 32 KiB), about one in seven a blob file
        size = rng.randint(40_000, 70_000) if rng.random() < 0.15 else rng.randint(0, 3000)
        events = [
            {"type": "message/added", "role": "user", "content": f"{wid}-a " + "x" * size},
            {"type": "message/added", "role": "assistant", "content": f"{wid}-b"},
        ]
        group.append({"write_id": wid, "session": "crash", "events": events})
    # re-send an earlier write now and then: it must not apply twice
    if n > 60 and rng.random() < 0.3:
        group.append(dict(group[0], write_id=f"r{round_no}-{rng.randint(0, n - 60)}"))
    receipts = store.commit_many(group)
    for receipt in receipts:
        assert receipt["status"] == "committed", receipt
        print("ack", receipt["write_id"], flush=True)
