"""Benchmark: session writes end to end through the fleet vs direct `commit_many`.

N producer processes (each its own SessionClient) push writes — one `message/added` with
a distinct 1 KiB payload each — through a private redis-server to ONE writer process
(`sessiondb worker writer`). Prints committed writes/s end to end (first write() to last
receipt), p50/p99 latency from write() to receipt, where the CPU went (per write: the
writer (its blob I/O thread included), the producers, Redis, kernel threads; how busy the machine
was), and the direct `commit_many` rate of the same writes on a fresh store for comparison.
The first line is a file-system probe (docs/benchmarks.md).

    python -m ops.bench.fleet_write [--producers 4] [--writes 5000] [--group 2000] [--rate 0] [--warm] [--keep]

With `--rate R` the producers offer R writes/s in total (paced), which measures the
latency below saturation; without it they push as fast as they can (throughput; the
latency is then mostly queueing).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import redis

from sessiondb.ops.bench import fs_probe
from sessiondb.ops.bench.store_write import make_writes, precreate_blob_dirs
from sessiondb.ops.redis_server import EmbeddedRedis
from sessiondb.store import Settings, Store
from sessiondb.store.writer_lock import holder_pid
from sessiondb.tasks import SessionClient
from sessiondb.workers import stats as writer_stats


def produce(index: int, count: int, rate: float) -> None:
    """Child mode: push `count` writes to session `bench-<index>`, print timings as JSON."""
    session = f"bench-{index}"
    writes = make_writes(count, session, session)
    with SessionClient(Settings.from_env()) as client:
        client.write(session, [{"type": "session/started"}], write_id=f"{session}-start").receipt(timeout=60)
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        sys.stdin.readline()  # the go signal: all producers start together
        cpu = resource.getrusage(resource.RUSAGE_SELF)
        started, handles = time.monotonic(), []
        for k, write in enumerate(writes):
            if rate > 0:  # paced: measures latency below saturation
                ahead = started + k / rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            handles.append(client.submit(write))
        for handle in handles:
            handle.receipt(timeout=300, raise_on_reject=True)
        cpu_end = resource.getrusage(resource.RUSAGE_SELF)
    latencies = [h.resolved_at - h.sent_at for h in handles]
    print(json.dumps({"first": handles[0].sent_at, "last": max(h.resolved_at for h in handles),
                      "latencies": latencies,
                      "cpu": cpu_end.ru_utime - cpu.ru_utime + cpu_end.ru_stime - cpu.ru_stime}))


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    return (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK"), sum(ticks) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(own, of its live children) user + system CPU of a process (the writer's threads are its own)."""
    tick = os.sysconf("SC_CLK_TCK")
    own = children = 0.0
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        own = (int(fields[11]) + int(fields[12])) / tick
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = sum(sum(cpu_seconds(int(child))) for child in f.read().split())
    except (OSError, ValueError):
        pass
    return own, children


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def direct_rate(base: str, producers: int, count: int, group: int, warm: bool) -> float:
    store = Store.open(os.path.join(base, "direct"))
    if warm:
        precreate_blob_dirs(store)
    writes = []
    for index in range(producers):
        session = f"bench-{index}"
        store.commit({"write_id": f"{session}-start", "session": session, "events": [{"type": "session/started"}]})
        writes += make_writes(count, session, session)
    start = time.perf_counter()
    for i in range(0, len(writes), group):
        receipts = store.commit_many(writes[i : i + group])
        assert all(r["status"] == "committed" for r in receipts), receipts[:1]
    rate = len(writes) / (time.perf_counter() - start)
    store.close()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--producers", type=int, default=4)
    parser.add_argument("--writes", type=int, default=5000, help="writes per producer")
    parser.add_argument("--group", type=int, default=2000, help="group_commit_max of the writer and direct run")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="total writes/s to offer, spread over the producers (default: as fast as possible)")
    parser.add_argument("--warm", action="store_true",
                        help="pre-create the 65,536 blob directories (steady state of a store in use)")
    parser.add_argument("--keep", action="store_true", help="keep the stores under ./var (no deletion at the end)")
    parser.add_argument("--produce", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.produce is not None:
        produce(args.produce, args.writes, args.rate)
        return
    os.makedirs("var", exist_ok=True)
    base = tempfile.mkdtemp(prefix="bench-fleet-", dir="var")
    print(fs_probe.report(base), flush=True)
    redis_server = EmbeddedRedis(os.path.join(base, "redis")).start()
    env = dict(os.environ)  # SESSIONDB_* settings of the caller apply (e.g. CLIENT_LINGER_MS), but not its store
    env.update(SESSIONDB_ROOT=os.path.join(base, "fleet"), SESSIONDB_BROKER_URL=redis_server.url,
               SESSIONDB_GROUP_COMMIT_MAX=str(args.group))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        if args.warm:
            with Store.open(env["SESSIONDB_ROOT"]) as store:
                precreate_blob_dirs(store)
        writer = subprocess.Popen([sys.executable, "-m", "sessiondb.ops.cli", "worker", "writer", "-l", "WARNING"],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(writer)
        deadline = time.monotonic() + 60
        while holder_pid(env["SESSIONDB_ROOT"]) != writer.pid:
            if time.monotonic() > deadline:
                raise SystemExit("the writer did not start")
            time.sleep(0.1)
        producers = [subprocess.Popen([sys.executable, "-m", "sessiondb.ops.bench.fleet_write", "--produce", str(i),
                                       "--writes", str(args.writes), "--rate", str(args.rate / args.producers)],
                                      env=env, stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE) for i in range(args.producers)]
        procs += producers
        for proc in producers:
            assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        assert redis_server.proc is not None
        writer_before = sum(cpu_seconds(writer.pid))
        redis_before = cpu_seconds(redis_server.proc.pid)[0]
        machine_before = machine_cpu()
        for proc in producers:
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            proc.stdin.flush()
        results = [json.loads(proc.communicate(timeout=600)[0]) for proc in producers]
        writer_after = sum(cpu_seconds(writer.pid))
        cpu = {"writer": writer_after - writer_before,
               "producers": sum(r["cpu"] for r in results),
               "redis": cpu_seconds(redis_server.proc.pid)[0] - redis_before}
        machine_after = machine_cpu()
        busy = (machine_after[0] - machine_before[0]) / (machine_after[1] - machine_before[1])
        cpu["other (kernel threads ...)"] = machine_after[0] - machine_before[0] - sum(cpu.values())
        total = args.producers * args.writes
        seconds = max(r["last"] for r in results) - min(r["first"] for r in results)
        latencies = [x for r in results for x in r["latencies"]]
        fleet_rate = total / seconds
        stats = writer_stats.read(redis.Redis.from_url(redis_server.url))
        in_commit = float(stats.get("commit_seconds_total", 0))
        groups = int(stats.get("groups", 0))
        writer.terminate()
        writer.wait(30)
        direct = direct_rate(base, args.producers, args.writes, args.group, args.warm)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        redis_server.stop()
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    print(f"end to end (fleet)   : {fleet_rate:9,.0f} committed writes/s  ({total} writes, {args.producers} producers)")
    print(f"write() -> receipt   : p50 {percentile(latencies, 0.5) * 1000:7.1f} ms   "
          f"p99 {percentile(latencies, 0.99) * 1000:7.1f} ms")
    print(f"writer               : {groups} group commits, {in_commit:.1f} s of {seconds:.1f} s inside commit_many")
    print("CPU per write        : " + ", ".join(f"{name} {used / total * 1e6:.0f} us" for name, used in cpu.items()))
    print(f"machine              : {busy:.0%} busy; {os.cpu_count()} cores give "
          f"{os.cpu_count() * seconds / total * 1e6:.0f} us of CPU per write at this rate")
    print(f"direct commit_many   : {direct:9,.0f} writes/s  (groups of {args.group})")
    paced = f"  (paced at {args.rate:,.0f}/s offered: a latency run, not a throughput figure)" if args.rate else ""
    print(f"fleet / direct       : {fleet_rate / direct:9.0%}{paced}")
    print("targets (issue 13): >= 12,500 committed writes/s end to end and >= 70% of direct; "
          "with --rate 1000: p50 <= 10 ms, p99 <= 50 ms")


if __name__ == "__main__":
    main()
