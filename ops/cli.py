"""The `sessiondb` command: a thin skin over library calls, one function per command.

Reads (`view`, `history`, ...) open the store root directly, read-only (they never create,
migrate or change anything; `cli_common.open_store`). `write` and `demo` go
through the fleet (the broker and the single writer); `up`, `worker`, `beat` and
`flower` run the fleet (`ops.fleet`, `workers.roles`, `ops.flower`). Every read command
takes `--root` and `--json`. A user mistake (unknown session, bad file, a rejected
write, no broker) prints one line on stderr and exits non-zero; never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from sessiondb.ops import render
from sessiondb.ops.cli_common import JsonOpt, RootOpt, app, emit, err, fail, open_store, out, settings_for
from sessiondb.ops.progress import progress_bar
from sessiondb.store import Settings, StoreError, receipt_counts
from sessiondb.store.private import UMASK


@app.command()
def view(session: str, root: Path | None = RootOpt, as_json: bool = JsonOpt) -> None:
    """The current branch of SESSION (or the state of SESSION#HEAD)."""
    with open_store(root) as store:
        doc = store.view(session)
        if as_json:
            emit(doc, True)
        else:
            render.print_view(out, store, doc, store.resolve(session)[1])


@app.command()
def history(session: str, root: Path | None = RootOpt, as_json: bool = JsonOpt) -> None:
    """Everything ever recorded for SESSION, abandoned branches included."""
    with open_store(root) as store:
        doc = store.history_view(session)
        if as_json:
            emit(doc, True)
        else:
            render.print_history(out, store, doc)


@app.command()
def events(session: str, root: Path | None = RootOpt, as_json: bool = JsonOpt) -> None:
    """The audit log of SESSION."""
    with open_store(root) as store:
        events = store.event_view(session)
    if as_json:
        emit(events, True)
    else:
        render.print_events(out, session, events)


@app.command()
def messages(session: str, content: bool = typer.Option(False, "--content", help="include message contents"),
             root: Path | None = RootOpt, as_json: bool = JsonOpt) -> None:
    """The messages of SESSION's current branch (a person sees their contents; --json adds them with --content)."""
    with open_store(root) as store:
        records = store.message_records(session, include_content=content or not as_json)
    if as_json:
        emit(records, True)
    else:
        render.print_messages(out, session, records)


@app.command()
def counters(session: str, root: Path | None = RootOpt, as_json: bool = JsonOpt) -> None:
    """High-water counters of SESSION (the highest id of each kind, across all branches)."""
    with open_store(root) as store:
        counters = store.high_water_counters(session)
    if as_json:
        emit(counters, True)
    else:
        render.print_counters(out, session, counters)


@app.command()
def alias(name: str, session: str, root: Path | None = RootOpt, as_json: bool = JsonOpt) -> None:
    """Point the unique alias NAME at SESSION."""
    with open_store(root, write=True) as store:
        receipt = store.write_alias(name, session)
    if as_json:
        emit(receipt, True)
    else:
        out.print(render.alias_line(name, session, receipt), highlight=False)


def read_jsonl(file: Path) -> list[dict[str, Any]]:
    try:
        data = file.read_bytes()
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror or exc}")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):  # Windows PowerShell's `>` writes UTF-16
        fail(f"{file} is UTF-16: save it as UTF-8 (e.g. `Out-File -Encoding utf8`)")
    try:
        # utf-8-sig: editors on Windows (and PowerShell's Out-File) start the file with a BOM
        lines = data.decode("utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        fail(f"cannot read {file}: not UTF-8 ({exc.reason} at byte {exc.start}); save it as UTF-8")
    writes = []
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                write = json.loads(line)
            except json.JSONDecodeError as exc:
                fail(f"{file}:{number}: not JSON: {exc.msg}")
            if not isinstance(write, dict):
                fail(f"{file}:{number}: a write must be a JSON object")
            if "write_id" in write and not (isinstance(write["write_id"], str) and write["write_id"]):
                fail(f"{file}:{number}: write_id must be a non-empty string (or left out)")
            writes.append(write)
    return writes


@app.command()
def write(file: Path, wait: bool = typer.Option(False, "--wait", help="wait for every receipt"),
          root: Path | None = RootOpt, as_json: bool = JsonOpt,
          timeout: float = typer.Option(60.0, help="seconds to wait for receipts (with --wait)")) -> None:
    """Enqueue the writes of FILE.jsonl (one session write per line) to the fleet's writer."""
    from sessiondb.tasks import SessionClient

    writes = read_jsonl(file)
    with SessionClient(settings_for(root)) as client:
        client.ping(min(timeout, 5.0))  # a broker nobody listens on: say so now, not as a missing receipt
        with progress_bar("enqueuing", as_json, total=len(writes)) as bar:
            handles = []
            for start in range(0, len(writes), 500):  # in slices, so the bar moves on a big file
                handles += client.write_many(writes[start:start + 500])
                bar(len(handles), len(writes))
            client.flush()
        if not wait:
            if as_json:
                emit({"enqueued": len(handles), "write_ids": [h.write_id for h in handles]}, True)
            else:
                out.print(f"{len(handles)} writes enqueued (--wait waits for their receipts)", highlight=False)
            return
        receipts = []
        with progress_bar("waiting for receipts", as_json, total=len(handles)) as bar:
            for h in handles:
                receipts.append(h.receipt(timeout=timeout))
                bar(len(receipts), len(handles))
    # the bar is closed: the summary never shares a line with it
    rejected = [r for r in receipts if r["status"] == "rejected"]
    if as_json:
        emit(receipts, True)
    else:
        out.print(render.tally_line(receipt_counts(receipts)), highlight=False)
    for r in rejected:
        err.print(f"rejected {r['write_id']}: {r['error']['message']}", highlight=False)
    if rejected:
        raise typer.Exit(1)


def demo_summary(root: Path, names: list[str], title: str) -> None:
    with open_store(root) as store:
        table = Table(title=title)
        for col in ("session", "current head", "messages", "heads (all)", "events"):
            table.add_column(col)
        for name in names:
            v, h = store.view(name), store.history_view(name)
            table.add_row(name, str(v["head"]), str(len(v["messages"])), str(len(h["heads"])), str(len(h["events"])))
        out.print(table)
    out.print(f"try: sessiondb view {names[0]} --root {root}")


def run_demo(settings: Settings, agents: int, turns: int) -> None:
    from sessiondb.ops import fleet_demo
    from sessiondb.tasks.celery_app import configured_broker

    broker = configured_broker(settings)
    if not broker:
        fail("no broker configured: start the fleet with `sessiondb up` or set SESSIONDB_BROKER_URL")
    env = dict(os.environ, SESSIONDB_ROOT=settings.root, SESSIONDB_BROKER_URL=broker)
    with progress_bar("demo writes") as bar:
        results = fleet_demo.run(settings, agents, turns, env=env, progress=bar)
    # the bar is closed: the summary below never shares a line with it
    total = sum(r["writes"] for r in results)
    bad = [r for r in results if r["rejected"]]
    if bad:
        fail(f"demo write rejected: {bad[0]['errors'][0] if bad[0]['errors'] else bad[0]}")
    counts = {k: sum(r.get(k, 0) for r in results) for k in ("committed", "duplicate", "rejected")}
    outcome = f"{counts['committed']} committed" + (f", {counts['duplicate']} duplicate (already written)"
                                                    if counts["duplicate"] else "")
    demo_summary(Path(settings.root), fleet_demo.sessions(agents),
                 f"sessiondb demo: {total} writes from {agents} producer processes via the fleet: {outcome}")


@app.command()
def demo(root: Path | None = RootOpt, agents: int = typer.Option(3, help="simulated agents (producer processes)"),
         turns: int = typer.Option(4, help="turns per agent")) -> None:
    """Simulated distributed agents write turns, evals, calls, snapshots, heads, a resume, a fork and an
    invocation through the fleet, then a summary is read back from the store."""
    if agents < 1 or turns < 2:
        fail("--agents must be >= 1 and --turns >= 2")
    run_demo(settings_for(root), agents, turns)


def celery_app_or_fail() -> Any:
    """The fleet's Celery app; a one-line error when no broker is configured (never a silent localhost)."""
    from sessiondb.tasks import app as celery_app
    from sessiondb.tasks.celery_app import configured_broker

    if not configured_broker(Settings.from_env(), worker=True):
        fail("no broker configured: set SESSIONDB_BROKER_URL (or run everything with `sessiondb up`)")
    return celery_app


@app.command()
def worker(role: str = typer.Argument(..., help="writer | indexer | scanner | reader"),
           loglevel: str = typer.Option("INFO", "--loglevel", "-l")) -> None:
    """Run one worker of the fleet (configured by SESSIONDB_* variables)."""
    from sessiondb.workers.roles import ROLES, run_worker

    if role not in ROLES:
        fail(f"unknown worker role {role!r}: choose one of {', '.join(ROLES)}", 2)
    raise typer.Exit(run_worker(celery_app_or_fail(), role, loglevel))  # non-zero when the worker failed


@app.command()
def beat(loglevel: str = typer.Option("INFO", "--loglevel", "-l")) -> None:
    """Run celery beat with sessiondb's schedule (index catch-up / rebuild, integrity scans)."""
    from sessiondb.tasks.celery_app import run_celery

    raise typer.Exit(run_celery(celery_app_or_fail(), ["beat", "--scheduler", "celery.beat:Scheduler", "-l", loglevel]))


@app.command()
def flower(port: int | None = typer.Option(None, help="default: $SESSIONDB_FLOWER_PORT or 5555"),
           address: str | None = typer.Option(None, help="address to bind (default: $SESSIONDB_FLOWER_ADDRESS"
                                                          " or 127.0.0.1; 0.0.0.0 in a container)")) -> None:
    """Run Flower for the fleet behind a login (SESSIONDB_FLOWER_BASIC_AUTH, else the one generated in
    <root>/fleet/credentials), Prometheus /metrics behind the same login."""
    from sessiondb.ops.flower import FlowerAuthError, run_flower

    settings = Settings.from_env()
    celery_app = celery_app_or_fail()
    try:
        code = run_flower(celery_app, settings, port, address or settings.flower_address)
    except FlowerAuthError as exc:
        fail(str(exc))
    raise typer.Exit(code)


@app.command()
def up(root: Path | None = RootOpt,
       demo: bool = typer.Option(False, "--demo/--no-demo", help="send demo traffic once the fleet runs"),
       agents: int = typer.Option(3, help="demo agents"), turns: int = typer.Option(4, help="demo turns")) -> None:
    """Run the whole fleet here: private Redis (unless SESSIONDB_BROKER_URL is set), writer, indexer,
    scanner, reader, beat and Flower. Ctrl-C stops everything."""
    from sessiondb.ops.fleet import Fleet, run_until_signal
    from sessiondb.ops.redis_server import RedisNotFound

    settings = settings_for(root)
    settings = Settings.from_env(root=str(Path(settings.root).resolve()))
    fleet = Fleet(settings, say=lambda line: out.print(line, highlight=False, soft_wrap=True))

    def after_start() -> None:
        if demo:
            run_demo(Settings.from_env(root=settings.root, broker_url=fleet.producer_url), agents, turns)

    try:
        run_until_signal(fleet, after_start)
    except RedisNotFound as exc:
        fail(str(exc))


# `query`, `index ...`, `scan`, `check` live in ops/cli_data.py and register themselves on `app`
from sessiondb.ops import cli_data  # noqa: E402,F401,I001

# `graph` lives in ops/cli_graph.py (the lineage picture) and registers itself the same way
from sessiondb.ops import cli_graph  # noqa: E402,F401,I001

# `gc` and `retention` live in ops/cli_gc.py and register themselves the same way
from sessiondb.ops import cli_gc  # noqa: E402,F401,I001
# `delete`, `tombstones` live in ops/cli_forget.py (store/forget/) and register themselves the same way
from sessiondb.ops import cli_forget  # noqa: E402,F401,I001


def main() -> None:
    os.umask(UMASK)  # whatever a command (or a library under it) creates without a mode is the owner's alone
    try:
        from sessiondb.tasks.errors import FleetError

        try:
            app(standalone_mode=True)
        except (StoreError, FleetError) as exc:
            err.print(f"[red]error:[/red] {exc}", highlight=False)
            sys.exit(1)
    except ValueError as exc:  # a bad SESSIONDB_* variable (Settings names it)
        if not str(exc).startswith(("bad setting", "bad sessiondb setting")):
            raise
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(2)


if __name__ == "__main__":
    # `python -m ops.cli` runs this file as __main__; ops/cli_data.py registered its commands
    # on the importable module `ops.cli`, so run that module's main.
    from sessiondb.ops.cli import main as module_main

    module_main()
