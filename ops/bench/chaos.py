"""The chaos run: the fleet under steady load while its processes and Redis are killed at random.

    python -m sessiondb.ops.bench.chaos --minutes 15 --seed 1
    python -m sessiondb.ops.bench.chaos --minutes 1 --resend off     # producers that never resend

A private redis-server (AOF, `appendfsync always`), a writer, a standby writer, an indexer
and a scanner run on a fresh store root. Producer processes each write their own session,
one `message/added` after another (a window of writes in flight), through `SessionClient`,
and log every receipt they see. A killer sends SIGKILL or SIGTERM to a random victim
(writer, standby, indexer, scanner, Redis) at random moments and restarts it. At the end
the checker verifies, from the store itself:

- every write whose committed receipt a producer saw is stored, exactly once;
- no write is applied twice (no content appears twice in a session);
- per-producer order is kept (with resend off; a resent write may land later);
- the index catches up and equals a replay of the log; a full blob scan and `check` are clean.

It prints the counts (writes, receipts, kills by kind, lost, duplicated, out of order,
resends, the longest time from a writer or Redis kill to the next commit) and exits 1 when
an invariant fails. Loopback only; every loop is bounded by `--minutes`.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from sessiondb.ops.redis_server import EmbeddedRedis, free_port
from sessiondb.store import Settings, Store
from sessiondb.store.index import Index
from sessiondb.store.integrity import check_consistency, scan_blobs
from sessiondb.workers import stats

ROLES = ("writer", "standby", "indexer", "scanner")
#: how often each victim is picked
WEIGHTS = {"writer": 5, "standby": 1, "indexer": 2, "scanner": 1, "redis": 2}
NEVER = 1e9


# -- producers (run as subprocesses) ------------------------------------------------------
def produce(index: int, until: float, out: Path, resend_after_s: float, window: int) -> None:
    """Write session `c<index>` until the deadline; log each receipt as one JSON line."""
    from sessiondb.tasks import SessionClient
    from sessiondb.tasks.errors import FleetError

    session = f"c{index}"
    with SessionClient(Settings.from_env(), resend_after_s=resend_after_s) as client, \
            open(out, "w", buffering=1) as log:
        pending: collections.deque[tuple[str, Any]] = collections.deque()
        pending.append((f"{session}-start", client.write(session, [{"type": "session/started"}],
                                                         write_id=f"{session}-start")))
        k = 0
        grace_until = until + 120.0
        while (time.time() < until or pending) and time.time() < grace_until:
            if time.time() < until and len(pending) < window:
                pending.append((f"{session}-{k}", client.write(
                    session, [{"type": "message/added", "role": "user", "content": f"{session}:{k}"}],
                    write_id=f"{session}-{k}")))
                k += 1
                continue
            write_id, handle = pending[0]
            try:
                receipt = handle.receipt(timeout=1.0)
            except (FleetError, TimeoutError):
                continue  # Redis or the writer is down: keep waiting (bounded by the grace period)
            pending.popleft()
            log.write(json.dumps([write_id, receipt.get("status"), bool(receipt.get("duplicate"))]) + "\n")
        log.write(json.dumps(["#sent", k, len(pending)]) + "\n")


# -- the fleet ----------------------------------------------------------------------------
class Fleet:
    def __init__(self, work: Path, seed: int) -> None:
        self.work = work
        self.root = work / "store"
        self.logs = work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.redis = EmbeddedRedis(work / "redis", port=free_port(), appendfsync="always")  # same port on restart
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.rng = random.Random(seed)

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONDB_")}
        env.update(SESSIONDB_ROOT=str(self.root), SESSIONDB_BROKER_URL=self.redis.url,
                   SESSIONDB_INDEX_NOTIFY_DEBOUNCE_MS="200")
        return env

    def start(self, role: str) -> None:
        command = "writer" if role == "standby" else role
        with open(self.logs / f"{role}.log", "ab") as log:
            self.procs[role] = subprocess.Popen([sys.executable, "-m", "sessiondb.ops.cli", "worker", command],
                                                env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                                start_new_session=True)

    def kill(self, role: str, sig: signal.Signals) -> None:
        if role == "redis":
            if sig == signal.SIGKILL:
                self.redis.kill()
            else:
                self.redis.stop()
            return
        proc = self.procs[role]
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def restart(self, role: str) -> None:
        if role == "redis":
            self.redis.start()
        else:
            self.start(role)

    def stop(self) -> None:
        for role in list(self.procs):
            self.kill(role, signal.SIGTERM)
        self.redis.stop()


def last_tx(fleet: Fleet) -> int | None:
    try:
        client = redis.Redis.from_url(fleet.redis.url, socket_timeout=2)
        return int(stats.read(client).get("last_tx_id", 0))
    except (redis.RedisError, ValueError):
        return None


# -- the run --------------------------------------------------------------------------------
def run(minutes: float, seed: int, producers: int, resend: float, window: int, work: Path) -> dict[str, Any]:
    fleet = Fleet(work, seed)
    fleet.redis.start()
    for role in ROLES:
        fleet.start(role)
    until = time.time() + minutes * 60
    outs = [work / f"producer-{i}.jsonl" for i in range(producers)]
    prods = [subprocess.Popen([sys.executable, "-m", "sessiondb.ops.bench.chaos", "--produce", str(i),
                               "--until", str(until), "--out", str(out), "--resend", str(resend),
                               "--window", str(window)], env=fleet.env,
                              stdout=subprocess.DEVNULL, stderr=open(work / f"producer-{i}.err", "wb"))  # noqa: SIM115
             for i, out in enumerate(outs)]
    kills: collections.Counter[str] = collections.Counter()
    recover: list[float] = []
    rng = fleet.rng
    try:
        time.sleep(5.0)  # the fleet starts; load builds up
        while time.time() < until - 5:
            time.sleep(rng.uniform(1.0, 6.0))
            victim = rng.choices(list(WEIGHTS), weights=list(WEIGHTS.values()))[0]
            sig = signal.SIGKILL if rng.random() < 0.7 else signal.SIGTERM
            before = last_tx(fleet) or 0
            killed_at = time.monotonic()
            fleet.kill(victim, sig)
            kills[f"{victim}/{sig.name}"] += 1
            time.sleep(rng.uniform(0.0, 1.0))
            if victim == "writer":  # the standby takes over; a new standby replaces it
                fleet.procs["writer"], fleet.procs["standby"] = fleet.procs["standby"], fleet.procs["writer"]
                fleet.start("standby")
            else:
                fleet.restart(victim)
            if victim in ("writer", "redis"):
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and (last_tx(fleet) or 0) <= before:
                    time.sleep(0.1)
                recover.append(time.monotonic() - killed_at)
        for proc in prods:
            proc.wait(timeout=300)
    finally:
        for proc in prods:
            if proc.poll() is None:
                proc.kill()
        counts = check(fleet, outs, resend)
        fleet.stop()
    counts.update(kills=dict(sorted(kills.items())), kills_total=sum(kills.values()),
                  max_recover_s=round(max(recover, default=0.0), 2), minutes=minutes, seed=seed,
                  resend="off" if resend >= NEVER else resend)
    return counts


def check(fleet: Fleet, outs: list[Path], resend: float) -> dict[str, Any]:
    """The invariants, from the store itself."""
    counts: collections.Counter[str] = collections.Counter()
    problems: list[str] = []
    # let the writer drain what is still queued, then read the store
    time.sleep(3.0)
    with Store.open(fleet.root, Settings.from_env(root=str(fleet.root)), readonly=True) as store:
        for i, out in enumerate(outs):
            session = f"c{i}"
            seen = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
            committed = {w for w, status, _dup in (r for r in seen if r[0] != "#sent") if status == "committed"}
            counts["receipts"] += sum(1 for r in seen if r[0] != "#sent")
            counts["committed_receipts"] += len(committed)
            counts["duplicate_receipts"] += sum(1 for r in seen if r[0] != "#sent" and r[2])
            counts["sent"] += next((r[1] for r in seen if r[0] == "#sent"), 0)
            counts["unreceipted"] += next((r[2] for r in seen if r[0] == "#sent"), 0)
            try:
                stored = [m["content"] for m in store.message_records(session, include_content=True)]
            except Exception:  # noqa: BLE001 - a session that never started
                stored = []
            numbers = [int(c.split(":")[1]) for c in stored]
            counts["stored"] += len(numbers)
            twice = [n for n, c in collections.Counter(numbers).items() if c > 1]
            counts["applied_twice"] += len(twice)
            wanted = {int(w.rsplit("-", 1)[1]) for w in committed if not w.endswith("-start")}
            lost = wanted - set(numbers)
            counts["lost"] += len(lost)
            out_of_order = sum(1 for a, b in zip(numbers, numbers[1:], strict=False) if b < a)
            counts["out_of_order"] += out_of_order
            if twice:
                problems.append(f"{session}: applied twice: {sorted(twice)[:10]}")
            if lost:
                problems.append(f"{session}: committed receipt seen but not stored: {sorted(lost)[:10]}")
            if out_of_order and resend >= NEVER:
                problems.append(f"{session}: {out_of_order} writes out of order")
        scan = scan_blobs(store, full=True, repair=False)
        index = Index.open(fleet.root)
        try:
            index.catch_up()
            report = check_consistency(store, index=index, index_sample=None, save=False)
        finally:
            index.close()
    for name, report_ in (("scan --full", scan), ("check", report)):
        if not report_.ok:
            problems.append(f"{name}: " + "; ".join(f.message for f in report_.findings[:5]))
    return {**counts, "problems": problems}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--producers", type=int, default=3)
    parser.add_argument("--window", type=int, default=20, help="writes in flight per producer")
    parser.add_argument("--resend", default="60", help="the client's resend after S seconds, or 'off'")
    parser.add_argument("--dir", type=Path, help="keep the run here (default: a temp dir, removed)")
    parser.add_argument("--produce", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--until", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    resend = NEVER if str(args.resend) == "off" else float(args.resend)
    if args.produce is not None:
        produce(args.produce, args.until, args.out, resend, args.window)
        return
    if args.dir:
        args.dir.mkdir(parents=True, exist_ok=True)
        result = run(args.minutes, args.seed, args.producers, resend, args.window, args.dir)
    else:
        with tempfile.TemporaryDirectory(prefix="sessiondb-chaos-") as tmp:
            result = run(args.minutes, args.seed, args.producers, resend, args.window, Path(tmp))
    problems = result.pop("problems")
    print(json.dumps(result, indent=1))
    for problem in problems:
        print("PROBLEM:", problem)
    print("chaos: " + ("FAILED" if problems else "ok") + f" ({result['kills_total']} kills, {result['lost']} lost, "
          f"{result['applied_twice']} applied twice, {result['out_of_order']} out of order)")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
