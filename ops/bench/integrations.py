"""Benchmark: the framework drop-ins beside each framework's own SQLite store, through the framework's API.

In one run, on the same disk, this prints:

- OpenAI Agents: `add_items` of `--oa-writes` single items, each awaited (writes/s), and
  `get_items()` of a `--oa-read-items` item session (best of 3), for `SQLiteSession` and
  `SessionDBSession` on a `Store` (embedded) and, with `--fleet`, on a `SessionClient`
  (a private redis-server, one writer, one reader);
- LangGraph: one thread of `--lg-steps` supersteps, each adding one ~1 KiB message
  (`add_messages`), `durability="sync"`, for `SqliteSaver` and `SessionDBSaver` (embedded):
  steps/s over the run, over the first and the last 500 steps, the checkpointer's own time
  per step (inside `put` / `put_writes`) over the first and the last 500, and bytes on disk;
- ADK: `append_event` × `--adk-writes` and `get_session` of a `--adk-read-events` event
  session (best of 3), `DatabaseSessionService` on SQLite vs `SessionDBSessionService`.

The first line is the file-system probe (docs/benchmarks.md). Needs the `bench` and `adk`
extras (`pip install -e ".[bench,adk]"`).

    python -m sessiondb.ops.bench.integrations [--oa-writes 5000] [--oa-read-items 10000]
        [--lg-steps 5000] [--lg-sqlite-steps N] [--adk-writes 5000] [--adk-read-events 10000]
        [--only openai,langgraph,adk] [--fleet] [--dir var] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Annotated, Any

from sessiondb.ops.bench import fs_probe
from sessiondb.store import Store


def du(path: str) -> int:
    """Bytes on disk under `path` (a file or a directory)."""
    if os.path.isfile(path):
        return os.stat(path).st_blocks * 512
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
            except FileNotFoundError:
                pass
    return total


def mib(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB"


def payload(k: int) -> str:
    return f"{k:08d}" + os.urandom(508).hex()  # ~1 KiB, distinct


def best_of(fn: Callable[[], Any], runs: int = 3) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(runs):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


# -- OpenAI Agents ---------------------------------------------------------------------------
def openai_agents(base: str, writes: int, read_items: int, fleet: bool, show: Callable[[str], None]) -> None:
    from agents import SQLiteSession

    from sessiondb.integrations.openai_agents import SessionDBSession

    def item(k: int) -> dict[str, Any]:
        return {"role": "user", "content": payload(k)}

    def measure(name: str, make: Callable[[str], Any]) -> None:
        session = make("writes")
        items = [item(k) for k in range(writes)]

        async def write_all() -> float:
            await session.add_items([item(-1)])  # the session exists, connections are open
            start = time.perf_counter()
            for it in items:
                await session.add_items([it])
            return time.perf_counter() - start

        seconds = asyncio.run(write_all())
        reader = make("reads")

        async def fill() -> None:
            for k in range(0, read_items, 500):
                await reader.add_items([item(j) for j in range(k, min(read_items, k + 500))])

        asyncio.run(fill())
        read_s, got = best_of(lambda: asyncio.run(reader.get_items()))
        assert len(got) == read_items, (name, len(got))
        show(f"  {name:34s}: add_items x{writes:,}: {writes / seconds:8,.0f} writes/s   "
             f"get_items() of {read_items:,}: {read_s * 1e3:7.1f} ms")

    show("OpenAI Agents (one item per add_items, each awaited)")
    db = os.path.join(base, "oa-sdk.sqlite")
    made: list[Any] = []

    def sdk(sid: str) -> Any:
        made.append(SQLiteSession(sid, db))
        return made[-1]

    measure("SQLiteSession", sdk)
    for s in made:
        s.close()
    store = Store.open(os.path.join(base, "oa-store"))
    try:
        measure("SessionDBSession (Store)", lambda sid: SessionDBSession(sid, store))
    finally:
        store.close()
    if fleet:
        from sessiondb import SessionClient
        from sessiondb.ops.bench.agent_loop import Fleet

        with Fleet(os.path.join(base, "oa-fleet")) as f:
            reader = subprocess.Popen([sys.executable, "-m", "sessiondb.ops.cli", "worker", "reader", "-l", "WARNING"],
                                      env=f.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                with SessionClient() as client:
                    measure("SessionDBSession (SessionClient)", lambda sid: SessionDBSession(sid, client))
            finally:
                reader.terminate()
                reader.wait(30)


# -- LangGraph -------------------------------------------------------------------------------
class Timed:
    """Wraps a checkpointer's `put` / `put_writes` to add up the time spent inside them per step."""

    def __init__(self, saver: Any) -> None:
        self.saver, self.per_step, self._now = saver, [], 0.0
        put, put_writes = saver.put, saver.put_writes

        def timed_put(*a: Any, **kw: Any) -> Any:
            start = time.perf_counter()
            try:
                return put(*a, **kw)
            finally:
                self._now += time.perf_counter() - start

        def timed_put_writes(*a: Any, **kw: Any) -> Any:
            start = time.perf_counter()
            try:
                return put_writes(*a, **kw)
            finally:
                self._now += time.perf_counter() - start

        saver.put, saver.put_writes = timed_put, timed_put_writes

    def step(self) -> None:
        self.per_step.append(self._now)
        self._now = 0.0


def langgraph_steps(saver: Any, steps: int) -> dict[str, Any]:
    from langchain_core.messages import AIMessage
    from langgraph.graph import END, START, StateGraph
    from langgraph.graph.message import add_messages
    from typing_extensions import TypedDict

    Chat = TypedDict("Chat", {"messages": Annotated[list, add_messages]})  # noqa: UP013 (evaluated now, not later)
    timed = Timed(saver)
    stamps: list[float] = []

    def talk(state: dict[str, Any]) -> dict[str, Any]:
        stamps.append(time.perf_counter())
        timed.step()
        n = len(state["messages"])
        return {"messages": [AIMessage(content=payload(n), id=f"m{n}")]}

    def more(state: dict[str, Any]) -> str:
        return END if len(state["messages"]) >= steps else "talk"

    g = StateGraph(Chat)
    g.add_node("talk", talk)
    g.add_edge(START, "talk")
    g.add_conditional_edges("talk", more)
    graph = g.compile(checkpointer=saver)
    start = time.perf_counter()
    out = graph.invoke({"messages": []}, {"configurable": {"thread_id": "bench"}, "recursion_limit": steps + 10},
                       durability="sync")
    end = time.perf_counter()
    assert len(out["messages"]) == steps
    stamps.append(end)
    timed.step()
    w = min(500, steps // 2)
    saver_s = timed.per_step[1:]  # what each step's checkpoint cost (the first entry is the input's)
    return {"steps/s": steps / (end - start),
            "first": w / (stamps[w] - stamps[0]), "last": w / (stamps[-1] - stamps[-1 - w]),
            "saver first": sum(saver_s[:w]) / w * 1e3, "saver last": sum(saver_s[-w:]) / w * 1e3}


def langgraph(base: str, steps: int, sqlite_steps: int, show: Callable[[str], None]) -> None:
    import sqlite3

    from langgraph.checkpoint.sqlite import SqliteSaver

    from sessiondb.integrations.langgraph import SessionDBSaver

    def line(name: str, n: int, r: dict[str, Any], size: int) -> None:
        show(f"  {name:34s}: {n:,} steps {r['steps/s']:7,.1f} steps/s   first 500 {r['first']:7,.1f}/s"
             f"   last 500 {r['last']:7,.1f}/s ({r['last'] / r['first']:4.0%})   checkpointer per step"
             f" {r['saver first']:6.2f} -> {r['saver last']:6.2f} ms   on disk {mib(size)}")

    show("LangGraph (one thread, one ~1 KiB message per step, durability=sync)")
    path = os.path.join(base, "lg-sqlite.sqlite")
    conn = sqlite3.connect(path, check_same_thread=False)
    try:
        r = langgraph_steps(SqliteSaver(conn), sqlite_steps)
    finally:
        conn.close()
    line("SqliteSaver", sqlite_steps, r, du(path) + du(path + "-wal"))
    root = os.path.join(base, "lg-store")
    with Store.open(root) as store:
        r = langgraph_steps(SessionDBSaver(store), steps)
    line("SessionDBSaver (Store)", steps, r, du(root))


# -- ADK -------------------------------------------------------------------------------------
def adk(base: str, writes: int, read_events: int, show: Callable[[str], None]) -> None:
    from google.adk.events.event import Event
    from google.adk.sessions.database_session_service import DatabaseSessionService
    from google.genai import types

    from sessiondb.integrations.adk import SessionDBSessionService

    def event(k: int) -> Event:
        return Event(author="user" if k % 2 else "agent", invocation_id="inv",
                     content=types.Content(role="user", parts=[types.Part(text=payload(k))]))

    async def measure(name: str, svc: Any) -> None:
        s = await svc.create_session(app_name="bench", user_id="u", session_id="writes")
        await svc.append_event(s, event(-1))
        start = time.perf_counter()
        for k in range(writes):
            await svc.append_event(s, event(k))
        seconds = time.perf_counter() - start
        r = await svc.create_session(app_name="bench", user_id="u", session_id="reads")
        for k in range(read_events):
            await svc.append_event(r, event(k))
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            got = await svc.get_session(app_name="bench", user_id="u", session_id="reads")
            best = min(best, time.perf_counter() - t0)
        assert len(got.events) == read_events
        show(f"  {name:34s}: append_event x{writes:,}: {writes / seconds:8,.0f} events/s   "
             f"get_session of {read_events:,}: {best * 1e3:7.1f} ms")

    show("ADK (append_event one at a time, each awaited)")
    db = os.path.join(base, "adk.sqlite")
    svc = DatabaseSessionService(db_url=f"sqlite+aiosqlite:///{db}")
    asyncio.run(measure("DatabaseSessionService (SQLite)", svc))
    with Store.open(os.path.join(base, "adk-store")) as store:
        asyncio.run(measure("SessionDBSessionService (Store)", SessionDBSessionService(store)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--oa-writes", type=int, default=5000)
    parser.add_argument("--oa-read-items", type=int, default=10_000)
    parser.add_argument("--lg-steps", type=int, default=5000)
    parser.add_argument("--lg-sqlite-steps", type=int, default=None, help="SqliteSaver's steps (default: --lg-steps)")
    parser.add_argument("--adk-writes", type=int, default=5000)
    parser.add_argument("--adk-read-events", type=int, default=10_000)
    parser.add_argument("--only", default="openai,langgraph,adk", help="which frameworks, comma-separated")
    parser.add_argument("--fleet", action="store_true", help="OpenAI Agents through a fleet too")
    parser.add_argument("--dir", default="var")
    parser.add_argument("--keep", action="store_true", help="keep the stores")
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    base = tempfile.mkdtemp(prefix="bench-integrations-", dir=args.dir)
    print(fs_probe.report(base), flush=True)
    only = set(args.only.split(","))

    def show(line: str) -> None:
        print(line, flush=True)

    try:
        if "openai" in only:
            openai_agents(base, args.oa_writes, args.oa_read_items, args.fleet, show)
        if "langgraph" in only:
            langgraph(base, args.lg_steps, args.lg_sqlite_steps or args.lg_steps, show)
        if "adk" in only:
            adk(base, args.adk_writes, args.adk_read_events, show)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
