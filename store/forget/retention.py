"""Retention: the policies that drop old heads and abandoned branches, one session at a time.

    report = apply_retention(store)                  # the policies in Settings; a `retention` report
    report = apply_retention(store, dry_run=True)    # what would go; changes nothing

Two policies, both off by default (docs/retention.md):
  - keep the last K heads of a session (`retain_heads`): an older head goes when nothing
    needs it (below);
  - drop abandoned branches (`retain_abandoned_days`): a head on no live branch, and every
    row (message, turn, eval, call, snapshot, audit event) that no live membership holds,
    once older than that many days.
A *live membership* is a session's current branch (`sessions.branch`) or the membership of a
head that stays; since a fork's membership holds its source's event ranges under the
source's id, the memberships that can hold a session's rows are those of the session and of
every session derived from it (transitively, through `derivations`).

Never removed: anything a live membership holds (so every remaining head's view and every
current branch reads the same rows as before, except the `heads` rows removed); a session's
current head; a head that a derivation (fork/resume source), an invocation or a turn names,
or that is the basis of a head that stays; a head or row younger than `retain_grace_hours`
(and, for the abandoned policy, than `retain_abandoned_days`); a row another remaining row
references; sessions themselves, counters (ids are never reused), invocations, derivations,
aliases and the transaction log (the log keeps the ids and facts of removed rows; erasing
content is `delete`'s job). Payloads of removed rows are left to blob GC (`store.blobs.gc`),
which collects the ones no other row references.

Each session is decided and changed inside ONE `BEGIN IMMEDIATE` transaction, re-reading
everything it decides on under SQLite's write lock, so it is serialized with the writer:
a resume to a head committed before it makes that head current (kept); a resume after it
to a removed head is rejected by the writer as an unknown head, cleanly. A first read-only
pass (a few grouped queries over all sessions) skips the sessions that cannot have anything
to remove: all of their events on their current branch, and no more than K heads. Owns only these removals.
"""

from __future__ import annotations

import bisect
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import Connection, delete, func, select

from ..blobs import inline
from ..errors import ReadOnlyStoreError
from ..rows import branch, hot, schema
from ..rows.branch import Ranges
from ..rows.short_tx import short_transaction
from .age import delete_stopped_sessions

if TYPE_CHECKING:
    from ..integrity.findings import Report
    from ..store import Store

log = logging.getLogger(__name__)

KIND = "retention"
Progress = Callable[[str, int, int], None]

#: per-session entity tables a branch holds: table -> its id column
ENTITY_TABLES = {"messages": "message_id", "turns": "turn_id", "evals": "eval_id", "calls": "call_id",
                 "snapshots": "snapshot_id"}
#: per-session references between rows (source table, column) -> target table: a kept row keeps its target
ROW_REFS: list[tuple[str, str, str]] = [
    ("messages", "turn_id", "turns"), ("messages", "call_id", "calls"), ("evals", "turn_id", "turns"),
    ("evals", "message_id", "messages"), ("calls", "turn_id", "turns"), ("calls", "eval_id", "evals"),
    ("snapshots", "turn_id", "turns"), ("heads", "snapshot_id", "snapshots"), ("heads", "turn_id", "turns"),
]


@dataclass
class Policy:
    keep_heads: int = 0  # 0: off
    abandoned_days: float = 0.0  # 0: off
    grace_hours: float = 24.0
    stopped_days: float = 0.0  # 0: off; sessions stopped longer are deleted (`forget.age`)

    @property
    def active(self) -> bool:
        return self.keep_heads > 0 or self.abandoned_days > 0 or self.stopped_days > 0

    @property
    def branch_policies(self) -> bool:
        return self.keep_heads > 0 or self.abandoned_days > 0


@dataclass
class Plan:
    """What goes from one session: head ids, and per table the row ids; the blobs those rows held."""

    session: str
    heads: list[str] = field(default_factory=list)
    rows: dict[str, list[int]] = field(default_factory=dict)  # table -> ids ("events": event ids)
    blobs: dict[str, int] = field(default_factory=dict)  # blob id -> size, of the removed rows

    @property
    def empty(self) -> bool:
        return not self.heads and not any(self.rows.values())


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _merge(ranges: Iterable[list[int]]) -> tuple[list[int], list[int]]:
    """Sorted, merged ranges as two lists (starts, ends) for bisection."""
    merged: Ranges = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return [r[0] for r in merged], [r[1] for r in merged]


def _holds(spans: tuple[list[int], list[int]], event_id: int) -> bool:
    starts, ends = spans
    i = bisect.bisect_right(starts, event_id) - 1
    return i >= 0 and event_id <= ends[i]


def _sql(conn: Connection, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Rows of `sql` run on the driver (retention reads a lot of small things per session: SQLAlchemy's
    statement compilation would be most of its time). `?` is a placeholder in the dialect's style
    (`rows.hot`); a list parameter expands to one placeholder per item (empty: matches nothing)."""
    mark = hot.placeholder(conn)
    parts = sql.split("?")
    out, flat = [parts[0]], []
    for value, part in zip(params, parts[1:], strict=True):
        if isinstance(value, list):
            out.append(", ".join([mark] * len(value)) or "NULL")
            flat += value
        else:
            out.append(mark)
            flat.append(value)
        out.append(part)
    return conn.exec_driver_sql("".join(out), tuple(flat)).fetchall()


def _dicts(conn: Connection, table: Any, where: str, *params: Any) -> list[dict[str, Any]]:
    columns = [c.name for c in table.columns]
    rows = _sql(conn, f"SELECT {', '.join(columns)} FROM {table.name} WHERE {where}", *params)
    return [dict(zip(columns, r, strict=True)) for r in rows]


def _family(conn: Connection, session: str) -> list[str]:
    """The session and every session derived from it, transitively (their memberships may hold its rows)."""
    found, todo = [session], [session]
    while todo:
        targets = [t for (t,) in _sql(conn, "SELECT target_session FROM derivations WHERE source_session IN (?)",
                                      todo)]
        todo = [t for t in dict.fromkeys(targets) if t not in found]
        found += todo
    return found


def _members(conn: Connection, store: Store, state_blob: str) -> branch.Membership:
    return branch.load(msgspec.json.decode(inline.read(conn, store.blobs, state_blob))["members"])


def plan_session(conn: Connection, store: Store, session: str, policy: Policy, now: datetime) -> Plan:
    """Decide what goes from `session` (inside the caller's transaction; reads only)."""
    plan = Plan(session)
    hd = schema.heads
    found = _sql(conn, "SELECT current_head FROM sessions WHERE session_id = ?", session)
    if not found:
        return plan
    current_head = found[0][0]
    grace_iso = _iso(now - timedelta(hours=policy.grace_hours))
    old_iso = _iso(now - timedelta(days=policy.abandoned_days)) if policy.abandoned_days > 0 else None
    family = _family(conn, session)
    current: list[list[int]] = []  # the family's current branches, over this session's event ids
    for (stored,) in _sql(conn, "SELECT branch FROM sessions WHERE session_id IN (?)", family):
        current += branch.load(msgspec.json.decode(stored)).get(session, [])
    on_live_branch = _merge(current)
    own = _dicts(conn, hd, "session_id = ? ORDER BY seq", session)
    others = _dicts(conn, hd, "session_id IN (?)", family[1:]) if len(family) > 1 else []

    # -- heads: candidates, then everything that must stay ---------------------------------------
    candidates: set[str] = set()
    if policy.keep_heads > 0:
        candidates |= {h["head_id"] for h in own[:-policy.keep_heads]}
    if old_iso is not None:
        candidates |= {h["head_id"] for h in own if h["at"] < old_iso and not _holds(on_live_branch, h["event_id"])}
    candidates = {h["head_id"] for h in own if h["head_id"] in candidates and h["at"] < grace_iso}
    if candidates:
        ids = list(candidates)
        named: set[str] = {current_head} if current_head else set()
        named |= {h for (h,) in _sql(conn, "SELECT source_head FROM derivations WHERE source_head IN (?)", ids)}
        for r in _sql(conn, "SELECT caller_head_before, caller_head_after, callee_head_before, callee_head_after"
                            " FROM invocations WHERE caller_session = ? UNION ALL"
                            " SELECT caller_head_before, caller_head_after, callee_head_before, callee_head_after"
                            " FROM invocations WHERE callee_session = ?", session, session):
            named |= set(r)
        for r in _sql(conn, "SELECT head_before, head_after FROM turns WHERE session_id IN (?)", family):
            named |= set(r)
        candidates -= named
        changed = True
        while changed:  # a head that stays keeps its basis (its lineage; its state blob records it)
            bases = {h["basis"] for h in own + others if h["head_id"] not in candidates}
            changed = bool(candidates & bases)
            candidates -= bases
    plan.heads = [h["head_id"] for h in own if h["head_id"] in candidates]
    if old_iso is None:
        return plan

    # -- rows: those no live membership holds, old enough, and no remaining row needs -------------
    live = list(current)
    for h in own + others:
        if h["head_id"] not in candidates:
            live += _members(conn, store, h["state_blob"]).get(session, [])
    spans = _merge(live)
    event_at = dict(_sql(conn, "SELECT event_id, at FROM events WHERE session_id = ?", session))

    def goes(event_id: int) -> bool:
        at = event_at.get(event_id)
        return not _holds(spans, event_id) and at is not None and at < old_iso and at < grace_iso

    rows: dict[str, dict[int, dict[str, Any]]] = {}
    removable: dict[str, set[int]] = {}
    for name, id_col in ENTITY_TABLES.items():
        table = schema.metadata.tables[name]
        rows[name] = {r[id_col]: r for r in _dicts(conn, table, "session_id = ?", session)}
        removable[name] = {i for i, r in rows[name].items() if goes(r["event_id"])}
    rows["heads"] = {i: h for i, h in enumerate(own)}
    removable["heads"] = {i for i, h in rows["heads"].items() if h["head_id"] in candidates}
    changed = True
    while changed:  # a row that stays keeps the rows it references
        changed = False
        for source, column, target in ROW_REFS:
            needed = {r[column] for i, r in rows[source].items() if i not in removable[source] and r[column]}
            if removable[target] & needed:
                removable[target] -= needed
                changed = True
    kept_events = {r["event_id"] for name in ENTITY_TABLES for i, r in rows[name].items() if i not in removable[name]}
    kept_events |= {h["event_id"] for h in own if h["head_id"] not in candidates}
    kept_events |= {e for (e,) in _sql(conn, "SELECT event_id FROM invocations WHERE caller_session = ?", session)}
    kept_events |= {e for (e,) in _sql(conn, "SELECT event_id FROM derivations WHERE target_session = ?", session)}
    plan.rows = {name: sorted(removable[name]) for name in ENTITY_TABLES}
    plan.rows["events"] = sorted(e for e in event_at if goes(e) and e not in kept_events)
    return plan


def _blobs_of(conn: Connection, plan: Plan) -> dict[str, int]:
    """blob id -> size of every payload the plan's rows and heads hold."""
    from ..integrity.blob_refs import BLOB_COLUMNS

    ids: set[str] = set()
    by_table: dict[str, list[Any]] = {}
    for table, column in BLOB_COLUMNS:
        by_table.setdefault(table.name, []).append(column)
    for name, columns in by_table.items():  # one query per table with removed rows
        where = _where(name, plan)
        if where is not None:
            for row in conn.execute(select(*columns).where(where)):
                ids.update(b for b in row if b)
    found: dict[str, int] = {}
    wanted = sorted(ids)
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500]
        found.update(conn.execute(select(schema.blobs.c.blob_id, schema.blobs.c.size)
                                  .where(schema.blobs.c.blob_id.in_(chunk))).all())
    return found


def _where(table_name: str, plan: Plan) -> Any:
    if table_name == "heads":
        return schema.heads.c.head_id.in_(plan.heads) if plan.heads else None
    ids = plan.rows.get(table_name)
    if not ids:
        return None
    table = schema.metadata.tables[table_name]
    id_col = ENTITY_TABLES.get(table_name, "event_id")
    return (table.c.session_id == plan.session) & table.c[id_col].in_(ids)


def _remove(conn: Connection, plan: Plan) -> None:
    for name in ("heads", "events", *ENTITY_TABLES):
        table = schema.metadata.tables[name]
        ids = plan.heads if name == "heads" else plan.rows.get(name, [])
        for start in range(0, len(ids), 500):
            part = Plan(plan.session, heads=ids[start:start + 500]) if name == "heads" else \
                Plan(plan.session, rows={name: ids[start:start + 500]})
            conn.execute(delete(table).where(_where(name, part)))


def policy_of(store: Store, keep_heads: int | None = None, abandoned_days: float | None = None,
              stopped_days: float | None = None) -> Policy:
    settings = store.settings
    policy = Policy(keep_heads=settings.retain_heads if keep_heads is None else keep_heads,
                    abandoned_days=settings.retain_abandoned_days if abandoned_days is None else abandoned_days,
                    grace_hours=settings.retain_grace_hours,
                    stopped_days=settings.retain_stopped_days if stopped_days is None else stopped_days)
    if min(policy.keep_heads, policy.abandoned_days, policy.grace_hours, policy.stopped_days) < 0:
        raise ValueError("retention: keep_heads, abandoned_days, grace_hours and stopped_days must be >= 0")
    return policy


def apply_retention(store: Store, *, keep_heads: int | None = None, abandoned_days: float | None = None,
                    stopped_days: float | None = None, dry_run: bool = False, progress: Progress | None = None,
                    save: bool = True, now: datetime | None = None, sessions: Iterable[str] | None = None,
                    submit: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> Report:
    """Apply the retention policies (Settings, or the arguments) to every session (or `sessions`).

    Returns the report, kind `retention`, also stored in the scan history unless `dry_run`
    (or `save=False`). Counts: `sessions_seen`, `sessions_changed`, `heads_removed`,
    `<table>_removed`, `events_removed`, `payloads_released` and `payload_bytes_released`
    (what the removed rows held: blob GC frees those no other row holds), `policy_off` when
    no policy is set (then nothing is read or removed)."""
    from ..integrity.findings import Report
    from ..integrity.reports import save_report

    if store.readonly and not dry_run:
        raise ReadOnlyStoreError(str(store.root))
    policy = policy_of(store, keep_heads, abandoned_days, stopped_days)
    now = now or datetime.now(UTC)
    started = time.monotonic()
    report = Report(kind=KIND, started_at=_iso(now))
    counts = dict.fromkeys(("sessions_seen", "sessions_changed", "heads_removed", *(f"{t}_removed" for t in
                            ENTITY_TABLES), "events_removed", "payloads_released", "payload_bytes_released"), 0)
    counts.update(keep_heads=policy.keep_heads, abandoned_after_s=int(policy.abandoned_days * 86400))
    report.counts = counts
    if not policy.active:
        counts["policy_off"] = 1
    if policy.stopped_days > 0:  # the age policy first: whole sessions, each a `session/deleted` write
        # (`submit`: how a delete write is committed; a fleet's scanner sends it to the writer)
        aged = delete_stopped_sessions(store, policy.stopped_days, dry_run=dry_run, now=now, submit=submit)
        counts["sessions_deleted"] = len(aged["deleted"])
        counts["sessions_kept_for_dependants"] = len(aged["skipped"])
        counts["payload_bytes_freed_by_deletes"] = aged["bytes_freed"]
        counts["sessions_delete_failed"] = len(aged["failed"])  # (each named in the log of the run)
        for failed in aged["failed"]:
            log.warning("retention: deleting %s failed: %s", failed["session"], failed["error"])
    if policy.branch_policies:
        with short_transaction(store, "BEGIN") as conn:  # a cheap first look, without the write lock
            names = _worth_a_look(conn, policy, None if sessions is None else list(sessions))
        counts["sessions_seen"] = len(names[1])
        for done, session in enumerate(names[0], 1):
            # decided inside the transaction that removes, under SQLite's write lock (the writer's)
            with short_transaction(store, "BEGIN" if dry_run else "BEGIN IMMEDIATE") as conn:
                plan = plan_session(conn, store, session, policy, now)
                if not plan.empty:
                    plan.blobs = _blobs_of(conn, plan)
                    if not dry_run:
                        _remove(conn, plan)
            if not plan.empty:
                _count(counts, plan)
            if progress is not None:
                progress("sessions", done, len(names[0]))
    if dry_run:
        counts["dry_run"] = 1
    report.finished_at = _iso(datetime.now(UTC))
    counts["elapsed_ms"] = int((time.monotonic() - started) * 1000)
    if save and not dry_run:
        save_report(store, report)
    return report


def _worth_a_look(conn: Connection, policy: Policy, only: list[str] | None) -> tuple[list[str], list[str]]:
    """(the sessions a policy may remove something from, every session considered).

    A session whose own events are all on its current branch (one range from its first to its
    last event) has no abandoned head or row; one with at most K heads keeps them all."""
    s, hd, ev = schema.sessions, schema.heads, schema.events
    head_counts = dict(conn.execute(select(hd.c.session_id, func.count()).group_by(hd.c.session_id)).all())
    first_last = {sid: (lo, hi) for sid, lo, hi in conn.execute(
        select(ev.c.session_id, func.min(ev.c.event_id), func.max(ev.c.event_id)).group_by(ev.c.session_id))}
    query = select(s.c.session_id, s.c.branch)
    wanted = set(only) if only is not None else None
    seen, look = [], []
    for sid, stored in conn.execute(query):
        if wanted is not None and sid not in wanted:
            continue
        seen.append(sid)
        if policy.keep_heads > 0 and head_counts.get(sid, 0) > policy.keep_heads:
            look.append(sid)
            continue
        if policy.abandoned_days > 0 and sid in first_last:
            own = branch.load(msgspec.json.decode(stored)).get(sid, [])
            if own != [list(first_last[sid])]:
                look.append(sid)
    return look, seen


def _count(counts: dict[str, int], plan: Plan) -> None:
    counts["sessions_changed"] += 1
    counts["heads_removed"] += len(plan.heads)
    for name, ids in plan.rows.items():
        counts[f"{name}_removed"] += len(ids)
    counts["payloads_released"] += len(plan.blobs)
    counts["payload_bytes_released"] += sum(plan.blobs.values())


__all__ = ["KIND", "Plan", "Policy", "apply_retention", "plan_session"]
