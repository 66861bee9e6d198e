"""Child process of test_postgres_failover: one writer of a PostgreSQL store.

Usage: python failover_writer.py ROOT DATABASE_URL NAME MODE. Prints `waiting`, waits as a
standby until it holds the store's writer lock (`Store.hold_writer_lock`), prints `writer`,
then commits groups of writes in a loop, printing `ack <write_id>` (flushed) only after
`commit_many` returned that write's receipt. Now and then it re-sends a write it already had
acknowledged (same id, same content): that must not apply twice. When a commit is fenced
(`WriterFencedError`: its lock is gone) it prints `fenced` and, MODE `standby`, waits for the
lock again; MODE `exit`, exits with status 3. Runs until killed.
"""

import os
import random
import sys

from sessiondb.store import Settings, Store
from sessiondb.store.errors import WriterFencedError

root, url, name, mode = sys.argv[1:5]
rng = random.Random(name)
store = Store.open(root, Settings.from_env(root=root, database_url=url))
print("waiting", flush=True)
store.hold_writer_lock(poll_s=0.05)
print("writer", os.getpid(), flush=True)
store.commit({"write_id": "start", "session": "fo", "events": [{"type": "session/started"}]})
sent: list[dict] = []
n = 0
while True:
    group = []
    for _ in range(rng.randint(1, 30)):
        wid = f"{name}-{n}"
        n += 1
        # each write's one message is its own id (most inline, a few large enough to be blob files)
        content = wid + (" " + "x" * 40_000 if rng.random() < 0.05 else "")
        group.append({"write_id": wid, "session": "fo",
                      "events": [{"type": "message/added", "role": "user", "content": content}]})
    if sent and rng.random() < 0.3:
        group.append(rng.choice(sent))
    try:
        receipts = store.commit_many(group)
    except WriterFencedError:
        print("fenced", flush=True)
        if mode == "exit":
            sys.exit(3)
        store.hold_writer_lock(poll_s=0.05)
        print("writer", os.getpid(), flush=True)
        continue
    for write, receipt in zip(group, receipts, strict=True):
        assert receipt["status"] == "committed", receipt
        print("ack", receipt["write_id"], flush=True)
        sent.append(write)
