"""`sessiondb delete` and `sessiondb tombstones`: deleting sessions for real, and what remains.

Registered on the main `app` of `ops.cli` like ops/cli_data.py. `delete` is a library call
(`Store.delete_session`) on the local store (it takes the writer lock: with a fleet running,
use `SessionClient.delete_session`); `--dry-run` opens the store read-only and changes
nothing. A refusal (dependants), an unknown or already deleted session is one line and a
non-zero exit (`ops.cli.main` prints StoreErrors).
"""

from __future__ import annotations

from pathlib import Path

import typer

from sessiondb.ops.cli_common import JsonOpt, RootOpt, app, emit, fail, open_store, out


@app.command()
def delete(session: str = typer.Argument(..., help="the session id or alias to delete"),
           cascade: bool = typer.Option(False, "--cascade", help="also delete every session that depends on it"),
           detach: bool = typer.Option(False, "--detach",
                                       help="keep the rows its forks still read (their views stay the same)"),
           dry_run: bool = typer.Option(False, "--dry-run", help="show what would go; change nothing"),
           reason: str | None = typer.Option(None, "--reason", help="why (kept in the tombstone)"),
           root: Path | None = RootOpt, as_json: bool = JsonOpt) -> None:
    """Delete SESSION for real: rows, facts, index entries, payloads nothing else shares. A tombstone remains."""
    if cascade and detach:
        fail("choose --cascade or --detach, not both", 2)
    with open_store(root, write=not dry_run) as store:
        result = store.delete_session(session, cascade=cascade, detach=detach, reason=reason, dry_run=dry_run)
    if as_json:
        emit(result, True)
        return
    if dry_run:
        refused = result.get("refused")
        rows = ", ".join(f"{n} {table}" for table, n in sorted(result["counts"].items())) or "no rows"
        out.print(f"would delete {', '.join(result['sessions'])} ({result['mode']}): {rows};"
                  f" {result['payloads']} payloads, {result['bytes_freed']} bytes freed", highlight=False)
        for dep in result["dependants"]:
            out.print(f"  dependant {dep['session']}: {dep['why']}", highlight=False)
        if refused:
            out.print("refused without --cascade or --detach (it has dependants)", highlight=False)
        return
    rows = sum(n for counts in result["counts"].values() for table, n in counts.items() if table != "writes_stubbed")
    out.print(f"deleted {', '.join(result['deleted'])} ({result['mode']}): {rows} rows, {result['payloads']}"
              f" payloads, {result['bytes_freed']} bytes freed (tx {result['tx_id']})", highlight=False)


@app.command()
def tombstones(session: str | None = typer.Argument(None, help="one deleted session (default: all)"),
               root: Path | None = RootOpt, as_json: bool = JsonOpt) -> None:
    """What remains of deleted sessions: when, why, what was removed (never content)."""
    with open_store(root) as store:
        if session is not None:
            stone = store.tombstone(session)
            if stone is None:
                fail(f"session {session!r} was never deleted")
            found = [stone]
        else:
            found = store.tombstones()
    emit([{**t, "counts": t["counts"] if as_json else _short(t["counts"])} for t in found], as_json,
         title="deleted sessions", noun="deleted sessions")


def _short(counts: dict[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))
