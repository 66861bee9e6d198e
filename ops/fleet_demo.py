"""`sessiondb demo` through the fleet: several producer processes act as distributed agents.

Each producer process (`python -m ops.fleet_demo producer I TURNS`) opens its own
`SessionClient` and sends the writes of one simulated agent (`ops.demo.agent_session`:
turns with messages, evals, calls with token counts, snapshots, heads, a resume to an
older head), then waits for every receipt and prints one JSON line. When all are done,
the parent sends a fork and an invocation of a child session (`ops.demo.fork_and_invoke`)
and reads a summary back from the store. Owns only the demo traffic; it must never
commit directly to the store.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

from sessiondb.store import Settings, receipt_counts
from sessiondb.tasks import SessionClient

from .demo import agent_session, fork_and_invoke
from .fleet import die_with_parent

RECEIPT_TIMEOUT_S = 60.0


def agent_name(index: int) -> str:
    return f"agent-{index}"


def produce(settings: Settings, index: int, turns: int) -> dict[str, Any]:
    """One agent's writes through the broker; returns counts and the time to the last receipt."""
    started = time.perf_counter()
    with SessionClient(settings) as client:
        handles = [client.submit(w) for w in agent_session(agent_name(index), turns, seed=index)]
        receipts = [h.receipt(timeout=RECEIPT_TIMEOUT_S) for h in handles]
    return {"agent": agent_name(index), **outcome(receipts), "seconds": time.perf_counter() - started}


def outcome(receipts: list[dict[str, Any]]) -> dict[str, Any]:
    """writes, committed / duplicate / rejected counts and the first errors of some receipts
    (a demo run again on the same root re-sends the same write ids: all duplicate)."""
    errors = [r["error"]["message"] for r in receipts if r["status"] == "rejected"][:3]
    return {"writes": len(receipts), **receipt_counts(receipts), "errors": errors}


def run(settings: Settings, agents: int, turns: int, env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Run `agents` producer processes, then the fork + invocation; returns one result per producer."""
    with SessionClient(settings) as client:
        client.ping(5.0)  # BrokerUnreachableError now, not producers waiting a minute for receipts
    procs = [subprocess.Popen([sys.executable, "-m", "sessiondb.ops.fleet_demo", "producer", str(i), str(turns)],
                              stdout=subprocess.PIPE, env=env, preexec_fn=die_with_parent) for i in range(agents)]
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=RECEIPT_TIMEOUT_S * 2)
        if proc.returncode != 0:
            raise RuntimeError(f"demo producer exited with {proc.returncode}")
        results.append(json.loads(out.decode().strip().splitlines()[-1]))
    parent = agent_name(0)
    with SessionClient(settings) as client:
        handles = [client.submit(w) for w in fork_and_invoke(parent, f"{parent}-fork", f"{parent}-child")]
        receipts = [h.receipt(timeout=RECEIPT_TIMEOUT_S) for h in handles]
    results.append({"agent": f"{parent}-fork+child", **outcome(receipts), "seconds": 0.0})
    return results


def sessions(agents: int) -> list[str]:
    parent = agent_name(0)
    return [*(agent_name(i) for i in range(agents)), f"{parent}-fork", f"{parent}-child"]


def main(argv: list[str]) -> None:
    if len(argv) != 3 or argv[0] != "producer":
        sys.exit("usage: python -m ops.fleet_demo producer INDEX TURNS")
    print(json.dumps(produce(Settings.from_env(), int(argv[1]), int(argv[2]))), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
