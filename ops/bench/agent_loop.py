"""Benchmark: the agent-loop shape — one write at a time, each awaited — ours beside OpenAI Agents' `SQLiteSession`.

An agent loop writes one event (a ~1 KiB message), waits until it is durable, and goes on.
In one run, on the same disk and under the same load, this prints writes/s and p50/p99 per
awaited write for:

- one agent: 1 session, `--writes` sequential writes;
- 16 agents (`--agents`): each sequential in its own session, all at once;

each for ours direct (`Store.commit` in this process), ours through the fleet (a private
redis-server and ONE `sessiondb worker writer`; `SessionClient.write(...)` then
`.receipt()`), and OpenAI Agents' `SQLiteSession` (`await session.add_items([...])`, the
SDK's file-backed session, one database file). Then a full read of a flat 10k-message
session with content: `SQLiteSession.get_items()` vs `Store.message_records(include_content=True)`.
The first line is the file-system probe (docs/benchmarks.md). Needs the `bench` extra
(`pip install -e ".[bench]"`).

    python -m sessiondb.ops.bench.agent_loop [--writes 1000] [--agents 16] [--agent-writes 250]
        [--agent-mode both|processes|threads] [--read-messages 10000] [--dir var] [--keep]

The 16 fleet agents run both ways (`--agent-mode both`): as processes, each with its own
`SessionClient` (an agent runtime per process: every write is its own broker message), and
as threads of one process sharing one `SessionClient` (one runtime hosting many agents: the
client's batching merges writes that meet in flight into shared messages, but the agents
share one GIL). Ours direct runs its 16 agents as
threads taking turns on the one `Store` (it is one writer; the SDK serializes its sessions
on one file the same way, with a per-file lock); `SQLiteSession`'s 16 agents are 16
asyncio tasks in one event loop, as the SDK is used.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable

from sessiondb.ops.bench import fs_probe
from sessiondb.ops.bench.fleet_write import cpu_seconds
from sessiondb.ops.redis_server import EmbeddedRedis
from sessiondb.store import Settings, Store
from sessiondb.store.writer_lock import holder_pid

try:
    from agents import SQLiteSession
except ImportError:  # pragma: no cover - the bench extra is missing
    SQLiteSession = None


def message(k: int) -> dict:
    """A ~1 KiB message event (distinct content each)."""
    return {"type": "message/added", "role": "user", "content": f"{k:08d}" + os.urandom(508).hex()}


def item(k: int) -> dict:
    """The same message as an OpenAI Agents input item."""
    return {"role": "user", "content": f"{k:08d}" + os.urandom(508).hex()}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Result:
    def __init__(self, latencies: list[float], seconds: float) -> None:
        self.latencies, self.seconds = latencies, seconds

    def line(self, name: str) -> str:
        n = len(self.latencies)
        return (f"{name:38s}: {n / self.seconds:8,.0f} writes/s   p50 {percentile(self.latencies, 0.5) * 1e3:6.2f} ms"
                f"   p99 {percentile(self.latencies, 0.99) * 1e3:6.2f} ms   ({n} writes)")


def awaited(write_one: Callable[[int], object], count: int) -> tuple[list[float], float, float]:
    """Run `write_one(k)` for k in range(count), timing each: (latencies, first start, last end)."""
    latencies = []
    first = time.perf_counter()
    for k in range(count):
        start = time.perf_counter()
        write_one(k)
        latencies.append(time.perf_counter() - start)
    return latencies, first, time.perf_counter()


def in_threads(count: int, run: Callable[[int], tuple[list[float], float, float]]) -> Result:
    out: list[tuple[list[float], float, float]] = [([], 0.0, 0.0)] * count
    barrier = threading.Barrier(count)

    def agent(i: int) -> None:
        barrier.wait()
        out[i] = run(i)

    threads = [threading.Thread(target=agent, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return Result([x for r in out for x in r[0]], max(r[2] for r in out) - min(r[1] for r in out))


# -- ours, direct --------------------------------------------------------------------------
def direct(root: str, agents: int, count: int) -> Result:
    store = Store.open(root)
    lock = threading.Lock()
    try:
        for i in range(agents):
            store.commit({"write_id": f"d{i}-start", "session": f"d{i}", "events": [{"type": "session/started"}]})

        def run(i: int) -> tuple[list[float], float, float]:
            events = [message(k) for k in range(count)]

            def one(k: int) -> None:
                with lock:
                    receipt = store.commit({"write_id": f"d{i}-{k}", "session": f"d{i}", "events": [events[k]]})
                assert receipt["status"] == "committed", receipt

            return awaited(one, count)

        if agents == 1:
            latencies, first, last = run(0)
            return Result(latencies, last - first)
        return in_threads(agents, run)
    finally:
        store.close()


# -- ours, through the fleet ---------------------------------------------------------------
def fleet_agent(index: int, count: int) -> tuple[list[float], float, float]:
    """One agent against the fleet named by the environment (a new SessionClient)."""
    from sessiondb.tasks import SessionClient

    session = f"f{index}-{os.getpid()}"
    events = [message(k) for k in range(count)]
    with SessionClient(Settings.from_env()) as client:
        client.write(session, [{"type": "session/started"}], write_id=f"{session}-start").receipt(timeout=60)
        for k in range(20):  # warm-up, untimed: connections, first messages
            client.write(session, [message(k)], write_id=f"{session}-warm-{k}").receipt(timeout=60)
        if index >= 0:  # a child process: wait for the go signal so that all agents start together
            sys.stdout.write("ready\n")
            sys.stdout.flush()
            sys.stdin.readline()

        def one(k: int) -> None:
            receipt = client.write(session, [events[k]], write_id=f"{session}-{k}").receipt(timeout=60)
            assert receipt["status"] == "committed", receipt

        return awaited(one, count)


def fleet_threads(agents: int, count: int) -> Result:
    from sessiondb.tasks import SessionClient

    with SessionClient(Settings.from_env()) as client:
        sessions = [f"t{i}-{os.getpid()}" for i in range(agents)]
        for s in sessions:
            client.write(s, [{"type": "session/started"}], write_id=f"{s}-start").receipt(timeout=60)

        def run(i: int) -> tuple[list[float], float, float]:
            events = [message(k) for k in range(count)]

            def one(k: int) -> None:
                receipt = client.write(sessions[i], [events[k]], write_id=f"{sessions[i]}-{k}").receipt(timeout=60)
                assert receipt["status"] == "committed", receipt

            return awaited(one, count)

        return in_threads(agents, run)


def fleet_processes(agents: int, count: int, env: dict[str, str]) -> Result:
    procs = [subprocess.Popen([sys.executable, "-m", "sessiondb.ops.bench.agent_loop", "--agent", str(i),
                               "--agent-writes", str(count)], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
             for i in range(agents)]
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            proc.stdin.flush()
        # perf_counter is CLOCK_MONOTONIC on Linux: comparable across the processes of one machine
        results = [json.loads(proc.communicate(timeout=600)[0]) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    return Result([x for r in results for x in r["latencies"]],
                  max(r["last"] for r in results) - min(r["first"] for r in results))


class Fleet:
    """A private redis-server and ONE writer process on a new store root."""

    def __init__(self, base: str) -> None:
        self.redis = EmbeddedRedis(os.path.join(base, "redis")).start()
        self.env = dict(os.environ)
        self.env.update(SESSIONDB_ROOT=os.path.join(base, "fleet"), SESSIONDB_BROKER_URL=self.redis.url)
        self.writer = subprocess.Popen([sys.executable, "-m", "sessiondb.ops.cli", "worker", "writer", "-l", "WARNING"],
                                       env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while holder_pid(self.env["SESSIONDB_ROOT"]) != self.writer.pid:
            if time.monotonic() > deadline or self.writer.poll() is not None:
                self.stop()
                raise SystemExit("the writer did not start")
            time.sleep(0.1)

    def __enter__(self) -> Fleet:
        os.environ.update(SESSIONDB_ROOT=self.env["SESSIONDB_ROOT"], SESSIONDB_BROKER_URL=self.redis.url)
        return self

    def usage(self) -> dict[str, float]:
        """CPU seconds so far of the writer (and its blob I/O processes) and Redis; the writer's time in commit_many."""
        import redis

        from sessiondb.workers import stats

        assert self.redis.proc is not None
        own, children = cpu_seconds(self.writer.pid)
        values = stats.read(redis.Redis.from_url(self.redis.url))
        return {"writer": own, "blob I/O": children, "redis": cpu_seconds(self.redis.proc.pid)[0],
                "in commit_many": float(values.get("commit_seconds_total", 0)), "groups": int(values.get("groups", 0))}

    def budget(self, before: dict[str, float], writes: int) -> str:
        """Per write, between `before` and now: CPU by process, the writer's wall time inside commit_many."""
        after = self.usage()
        d = {k: after[k] - before[k] for k in after}
        cpu = ", ".join(f"{k} {d[k] / writes * 1e6:.0f} us" for k in ("writer", "blob I/O", "redis"))
        return (f"{'':38s}  per write: CPU {cpu}; writer inside commit_many {d['in commit_many'] / writes * 1e6:.0f} us"
                f" (wall); {writes / max(1, d['groups']):.1f} writes per group")

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.writer.poll() is None:
            self.writer.terminate()
            try:
                self.writer.wait(30)
            except subprocess.TimeoutExpired:
                self.writer.kill()
        self.redis.stop()


# -- OpenAI Agents' SQLiteSession ------------------------------------------------------------
def sdk(db_path: str, agents: int, count: int) -> Result:
    async def run(i: int) -> tuple[list[float], float, float]:
        session = SQLiteSession(f"agent-{i}", db_path)
        items = [item(k) for k in range(count)]
        await session.add_items([item(0)])  # the session exists, its thread's connection is open
        latencies = []
        first = time.perf_counter()
        for k in range(count):
            start = time.perf_counter()
            await session.add_items([items[k]])
            latencies.append(time.perf_counter() - start)
        last = time.perf_counter()
        session.close()
        return latencies, first, last

    async def all_agents() -> list[tuple[list[float], float, float]]:
        return await asyncio.gather(*(run(i) for i in range(agents)))

    results = asyncio.run(all_agents())
    return Result([x for r in results for x in r[0]], max(r[2] for r in results) - min(r[1] for r in results))


# -- the flat 10k read -------------------------------------------------------------------------
def timed(fn: Callable[[], object], runs: int = 5) -> tuple[float, int]:
    times, n = [], 0
    for _ in range(runs):
        start = time.perf_counter()
        n = len(fn())  # type: ignore[arg-type]
        times.append(time.perf_counter() - start)
    return statistics.median(times), n


def reads(base: str, messages: int) -> tuple[tuple[float, int], tuple[float, int]]:
    store = Store.open(os.path.join(base, "read-ours"))
    store.commit({"write_id": "r-start", "session": "r", "events": [{"type": "session/started"}]})
    for g in range(0, messages, 2000):
        writes = [{"write_id": f"r-{k}", "session": "r", "events": [message(k)]}
                  for k in range(g, min(messages, g + 2000))]
        assert {r["status"] for r in store.commit_many(writes)} == {"committed"}
    ours = timed(lambda: store.message_records("r", include_content=True))
    store.close()

    async def sdk_read() -> tuple[float, int]:
        session = SQLiteSession("r", os.path.join(base, "read-sdk.sqlite"))
        for g in range(0, messages, 2000):
            await session.add_items([item(k) for k in range(g, min(messages, g + 2000))])
        times, n = [], 0
        for _ in range(5):
            start = time.perf_counter()
            n = len(await session.get_items())
            times.append(time.perf_counter() - start)
        session.close()
        return statistics.median(times), n

    return ours, asyncio.run(sdk_read())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=1000, help="sequential awaited writes of the one agent")
    parser.add_argument("--agents", type=int, default=16)
    parser.add_argument("--agent-writes", type=int, default=250, help="sequential awaited writes of each of the agents")
    parser.add_argument("--agent-mode", choices=("both", "processes", "threads"), default="both",
                        help="the fleet's agents: one process (own SessionClient) each, threads sharing one, or both")
    parser.add_argument("--read-messages", type=int, default=10_000)
    parser.add_argument("--dir", default="var",
                        help="where to make the stores (default ./var; e.g. /dev/shm takes the disk out: a diagnostic)")
    parser.add_argument("--keep", action="store_true", help="keep the stores")
    parser.add_argument("--agent", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.agent is not None:
        latencies, first, last = fleet_agent(args.agent, args.agent_writes)
        print(json.dumps({"latencies": latencies, "first": first, "last": last}))
        return
    if SQLiteSession is None:
        raise SystemExit('OpenAI Agents is not installed: pip install -e ".[bench]"')
    os.makedirs(args.dir, exist_ok=True)
    base = tempfile.mkdtemp(prefix="bench-agent-", dir=args.dir)
    print(fs_probe.report(base), flush=True)
    lines: list[str] = []

    def show(line: str) -> None:
        lines.append(line)
        print(line, flush=True)

    try:
        n, a, per = args.writes, args.agents, args.agent_writes
        show(direct(os.path.join(base, "direct-1"), 1, n).line("1 agent, ours direct (Store.commit)"))
        show(sdk(os.path.join(base, "sdk-1.sqlite"), 1, n).line("1 agent, SQLiteSession"))
        with Fleet(os.path.join(base, "fleet-1")) as fleet:
            before = fleet.usage()
            latencies, first, last = fleet_agent(-1, n)
            show(Result(latencies, last - first).line("1 agent, ours fleet (write + receipt)"))
            show(fleet.budget(before, n + 21))  # (the start and warm-up writes are counted in the writer's figures)
        show(direct(os.path.join(base, "direct-16"), a, per).line(f"{a} agents, ours direct (threads)"))
        show(sdk(os.path.join(base, "sdk-16.sqlite"), a, per).line(f"{a} agents, SQLiteSession (asyncio)"))
        for mode in ("processes", "threads") if args.agent_mode == "both" else (args.agent_mode,):
            with Fleet(os.path.join(base, f"fleet-16-{mode}")) as fleet:
                before = fleet.usage()
                result = fleet_processes(a, per, fleet.env) if mode == "processes" else fleet_threads(a, per)
                show(result.line(f"{a} agents, ours fleet ({mode})"))
                show(fleet.budget(before, a * (per + (21 if mode == "processes" else 1))))
        (ours_s, ours_n), (sdk_s, sdk_n) = reads(base, args.read_messages)
        show(f"flat read with content : ours message_records {ours_s * 1e3:6.1f} ms ({ours_n} messages), "
             f"SQLiteSession.get_items {sdk_s * 1e3:6.1f} ms ({sdk_n} items)")
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    print("targets: fleet 1 agent >= 800 writes/s, p50 <= 1.5 ms, p99 <= 5 ms; direct >= SQLiteSession; "
          f"fleet {args.agents} agents >= 8,000 writes/s; flat read <= 30 ms")


if __name__ == "__main__":
    main()
