"""The writer's counters in Redis, read by the Prometheus collector that Flower serves.

Hash `sessiondb:writer:stats`: groups, writes (= committed + duplicate + rejected),
committed (new writes applied), duplicate (write ids already applied: nothing written),
rejected, refused (messages),
commit_seconds_total, last_group_size, last_group_messages, last_commit_seconds,
last_tx_id (the store's newest tx id seen in a receipt), pid (the active writer), and
`writes:<pid>` (what each writer process committed).
Owns the key names; must never decide anything.
"""

from __future__ import annotations

import os
from typing import Any

KEY = "sessiondb:writer:stats"


def record_group(pipe: Any, *, writes: int, messages: int, committed: int, rejected: int, seconds: float,
                 duplicate: int = 0, last_tx_id: int = 0) -> None:
    pipe.hincrby(KEY, "groups", 1)
    pipe.hincrby(KEY, "writes", writes)
    pipe.hincrby(KEY, "committed", committed)
    pipe.hincrby(KEY, "duplicate", duplicate)
    pipe.hincrby(KEY, "rejected", rejected)
    pipe.hincrby(KEY, f"writes:{os.getpid()}", writes)
    pipe.hincrbyfloat(KEY, "commit_seconds_total", seconds)
    pipe.hset(KEY, mapping={"last_group_size": writes, "last_group_messages": messages,
                            "last_commit_seconds": f"{seconds:.6f}", "pid": os.getpid()})
    if last_tx_id:
        pipe.hset(KEY, "last_tx_id", last_tx_id)


def record_refused(client: Any) -> None:
    client.hincrby(KEY, "refused", 1)


def read(client: Any) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in client.hgetall(KEY).items()}
