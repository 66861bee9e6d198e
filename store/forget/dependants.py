"""Who depends on a session, and which of its rows live sessions still read.

A session's dependants are the live sessions that would notice it going: forks (and forks of
forks, continues) whose branch membership inherits its rows, attached children (a
derivation from it, or `parent` naming it), the other party of an invocation (as caller or
callee) and of a call that names a child session. `needed_ranges` is what a detach keeps:
the event ranges of a session that some live session's branch or head still reads.
Read-only: it runs inside the caller's transaction and never writes.
"""

from __future__ import annotations

from typing import Any

import msgspec
from sqlalchemy import Connection, and_, or_, select

from ..blobs import BlobStore, inline
from ..rows import branch, schema
from ..rows.branch import Membership, Ranges


def tombstone(conn: Connection, session: str) -> dict[str, Any] | None:
    row = conn.execute(select(schema.tombstones).where(schema.tombstones.c.session_id == session)).first()
    return None if row is None else dict(row._mapping)


def inheritors(conn: Connection, session: str) -> dict[str, Membership]:
    """Live sessions (other than `session`) whose current branch inherits rows of `session`."""
    s = schema.sessions
    found: dict[str, Membership] = {}
    rows = conn.execute(select(s.c.session_id, s.c.branch).where(
        and_(s.c.session_id != session, s.c.branch.contains(f'"{session}"', autoescape=True))))
    for sid, stored in rows:
        members = branch.load(msgspec.json.decode(stored))
        if members.get(session):
            found[sid] = members
    return found


def direct(conn: Connection, session: str) -> list[dict[str, str]]:
    """The live sessions that depend on `session`, each once, with why: `[{"session", "why"}]`."""
    s, d, inv, calls = schema.sessions, schema.derivations, schema.invocations, schema.calls
    why: dict[str, str] = {}

    def note(sid: str | None, reason: str) -> None:
        if sid is not None and sid != session:
            why.setdefault(sid, reason)

    for sid in inheritors(conn, session):
        note(sid, "inherits its rows (fork)")
    for target, kind in conn.execute(select(d.c.target_session, d.c.kind).where(d.c.source_session == session)):
        note(target, f"derived from it ({kind})")
    for (sid,) in conn.execute(select(s.c.session_id).where(s.c.parent == session)):
        note(sid, "attached child")
    for caller, callee in conn.execute(select(inv.c.caller_session, inv.c.callee_session).where(
            or_(inv.c.caller_session == session, inv.c.callee_session == session))):
        note(callee if caller == session else caller, "invocation")
    for (sid,) in conn.execute(select(calls.c.child_session).where(
            and_(calls.c.session_id == session, calls.c.child_session.is_not(None))).distinct()):
        note(sid, "child session of a call")
    for (sid,) in conn.execute(select(calls.c.session_id).where(calls.c.child_session == session).distinct()):
        note(sid, "calls it as a child session")
    live = set(conn.execute(select(s.c.session_id).where(s.c.session_id.in_(list(why)))).scalars()) if why else set()
    return [{"session": sid, "why": reason} for sid, reason in sorted(why.items()) if sid in live]


def closure(conn: Connection, session: str) -> list[str]:
    """`session` and every session that depends on it, transitively (what a cascade deletes)."""
    order, seen, todo = [session], {session}, [session]
    while todo:
        for dep in direct(conn, todo.pop()):
            if dep["session"] not in seen:
                seen.add(dep["session"])
                order.append(dep["session"])
                todo.append(dep["session"])
    return order


def _head_memberships(conn: Connection, blobs: BlobStore, sessions: list[str]) -> list[Membership]:
    hd = schema.heads
    states = list(conn.execute(select(hd.c.state_blob).where(hd.c.session_id.in_(sessions))).scalars()) \
        if sessions else []
    data = inline.read_many(conn, blobs, states)
    return [branch.load(msgspec.json.decode(data[b])["members"]) for b in states]


def needed_ranges(conn: Connection, blobs: BlobStore, session: str, leaving: set[str]) -> Ranges:
    """The event ranges of `session` that live sessions outside `leaving` still read: their
    current branches and every one of their heads (what a detach must keep)."""
    readers = {sid: m for sid, m in inheritors(conn, session).items() if sid not in leaving}
    ranges: Ranges = []
    for members in [*readers.values(), *_head_memberships(conn, blobs, sorted(readers))]:
        ranges += [list(r) for r in members.get(session, [])]
    return branch._normalize(sorted(ranges))


def needed_heads(conn: Connection, session: str, leaving: set[str]) -> set[str]:
    """Heads of `session` that rows of live sessions outside `leaving` name (the other party's
    invocation, a derivation's source head): a detach keeps them, so no reference dangles."""
    hd, inv, d = schema.heads, schema.invocations, schema.derivations
    own = select(hd.c.head_id).where(hd.c.session_id == session).scalar_subquery()
    named: set[str] = set()
    for column in (inv.c.caller_head_before, inv.c.caller_head_after, inv.c.callee_head_before,
                   inv.c.callee_head_after):
        named.update(h for h, caller in conn.execute(select(column, inv.c.caller_session).where(column.in_(own)))
                     if caller not in leaving)
    named.update(h for h, target in conn.execute(select(d.c.source_head, d.c.target_session)
                                                 .where(d.c.source_head.in_(own))) if target not in leaving)
    return named


def tombstoned_sources(conn: Connection, blobs: BlobStore, sessions: list[str]) -> set[str]:
    """Deleted sessions whose kept rows (a detach) these sessions' branches or heads read."""
    s = schema.sessions
    names: set[str] = set()
    for (stored,) in conn.execute(select(s.c.branch).where(s.c.session_id.in_(sessions))):
        names.update(branch.load(msgspec.json.decode(stored)))
    for members in _head_memberships(conn, blobs, sessions):
        names.update(members)
    names -= set(sessions)
    if not names:
        return set()
    t = schema.tombstones
    return set(conn.execute(select(t.c.session_id).where(t.c.session_id.in_(sorted(names)))).scalars())
