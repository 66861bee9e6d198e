"""`sessiondb demo` through the fleet: several producer processes act as distributed agents.

Each producer process (`python -m ops.fleet_demo producer I TURNS`) opens its own
`SessionClient` and sends the writes of one simulated agent (`ops.demo.agent_session`:
turns with messages, evals, calls with token counts, snapshots, heads, a resume to an
older head), then waits for every receipt (printing a `{"receipt": 1}` line per receipt, for
the parent's progress bar) and prints one JSON line of counts. When all are done,
the parent sends a fork and an invocation of a child session (`ops.demo.fork_and_invoke`)
and reads a summary back from the store. Owns only the demo traffic; it must never
commit directly to the store.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from sessiondb.store import Settings, receipt_counts
from sessiondb.tasks import SessionClient

from .demo import agent_session, fork_and_invoke
from .fleet import die_with_parent

RECEIPT_TIMEOUT_S = 60.0


def agent_name(index: int) -> str:
    return f"agent-{index}"


def outcome(agent: str, receipts: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    """What one producer reports: writes, committed / duplicate / rejected, the first errors."""
    counts = receipt_counts(receipts)
    rejected = [r for r in receipts if r.get("status") == "rejected"]
    return {"agent": agent, "writes": len(receipts), **counts,
            "errors": [r["error"]["message"] for r in rejected][:3], "seconds": seconds}


def produce(settings: Settings, index: int, turns: int, tick: Callable[[], None] = lambda: None) -> dict[str, Any]:
    """One agent's writes through the broker; returns counts and the time to the last receipt."""
    started = time.perf_counter()
    with SessionClient(settings) as client:
        handles = [client.submit(w) for w in agent_session(agent_name(index), turns, seed=index)]
        receipts = []
        for h in handles:
            receipts.append(h.receipt(timeout=RECEIPT_TIMEOUT_S))
            tick()
    return outcome(agent_name(index), receipts, time.perf_counter() - started)


def planned_writes(agents: int, turns: int) -> int:
    """How many writes a demo sends (the length of its progress bar)."""
    parent = agent_name(0)
    return (sum(len(list(agent_session(agent_name(i), turns, seed=i))) for i in range(agents))
            + len(list(fork_and_invoke(parent, f"{parent}-fork", f"{parent}-child"))))


def run(settings: Settings, agents: int, turns: int, env: dict[str, str] | None = None,
        progress: Callable[[int, int], None] = lambda done, total: None) -> list[dict[str, Any]]:
    """Run `agents` producer processes, then the fork + invocation; returns one result per producer.

    Each producer prints a `{"receipt": n}` line per receipt, then its result; `progress(done,
    total)` is called as receipts arrive, from reader threads (one per producer)."""
    total = planned_writes(agents, turns)
    done = 0
    lock = threading.Lock()

    def received() -> None:
        nonlocal done
        with lock:
            done += 1
            progress(done, total)

    with SessionClient(settings) as client:
        client.ping(5.0)  # BrokerUnreachableError now, not producers waiting a minute for receipts

    procs = [subprocess.Popen([sys.executable, "-m", "sessiondb.ops.fleet_demo", "producer", str(i), str(turns)],
                              stdout=subprocess.PIPE, env=env, preexec_fn=die_with_parent) for i in range(agents)]
    lines: list[list[str]] = [[] for _ in procs]

    def read(proc: subprocess.Popen[bytes], into: list[str]) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode().strip()
            if line.startswith('{"receipt"'):
                received()
            elif line:
                into.append(line)

    readers = [threading.Thread(target=read, args=(p, lines[i]), daemon=True) for i, p in enumerate(procs)]
    for t in readers:
        t.start()
    results = []
    for proc, reader, out in zip(procs, readers, lines, strict=True):
        try:
            proc.wait(timeout=RECEIPT_TIMEOUT_S * 2)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise RuntimeError("a demo producer did not finish in time") from None
        reader.join(timeout=10)
        if proc.returncode != 0 or not out:
            raise RuntimeError(f"demo producer exited with {proc.returncode}")
        results.append(json.loads(out[-1]))
    parent = agent_name(0)
    with SessionClient(settings) as client:
        handles = [client.submit(w) for w in fork_and_invoke(parent, f"{parent}-fork", f"{parent}-child")]
        receipts = []
        for h in handles:
            receipts.append(h.receipt(timeout=RECEIPT_TIMEOUT_S))
            received()
    results.append(outcome(f"{parent}-fork+child", receipts, 0.0))
    return results


def sessions(agents: int) -> list[str]:
    parent = agent_name(0)
    return [*(agent_name(i) for i in range(agents)), f"{parent}-fork", f"{parent}-child"]


def main(argv: list[str]) -> None:
    if len(argv) != 3 or argv[0] != "producer":
        sys.exit("usage: python -m ops.fleet_demo producer INDEX TURNS")
    def tick() -> None:
        print('{"receipt": 1}', flush=True)

    print(json.dumps(produce(Settings.from_env(), int(argv[1]), int(argv[2]), tick)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
