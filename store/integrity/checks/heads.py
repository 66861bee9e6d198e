"""Head states: every head's state blob must be readable and agree with its head row.

A head's state blob (store/branch.py, events.head_created) is canonical JSON
`{"head","session","basis","kind","members","runtime","final","snapshot","turn","fingerprint"}`.
`head/state-unreadable`: the blob is missing, corrupt, quarantined, not JSON, or not that
shape (so the head cannot be materialized). `head/state-mismatch`: a field disagrees with the
head row, or the membership ranges do not include the head's own event or name events or
sessions that do not exist. Read-only.
"""

from __future__ import annotations

from typing import Any

import msgspec
from sqlalchemy import Connection, select

from ...blobs import BlobStore, inline
from ...errors import CorruptBlobError
from ...rows import schema
from ..findings import Report

#: state field -> head row column
FIELDS = {"head": "head_id", "session": "session_id", "basis": "basis", "kind": "kind", "runtime": "runtime_blob",
          "final": "final_blob", "snapshot": "snapshot_id", "turn": "turn_id", "fingerprint": "fingerprint"}


def check(conn: Connection, blobs: BlobStore, report: Report) -> None:
    events = dict(conn.execute(select(schema.counters.c.session_id, schema.counters.c.value)
                               .where(schema.counters.c.kind == "event")).all())
    sessions = set(conn.execute(select(schema.sessions.c.session_id)).scalars())
    sessions |= set(conn.execute(select(schema.tombstones.c.session_id)).scalars())  # rows a detach kept
    for row in conn.execute(select(schema.heads)).mappings():
        report.count("heads_checked")
        state = _read_state(conn, blobs, row, report)
        if state is not None:
            _compare(row, state, events, sessions, report)


def _read_state(conn: Connection, blobs: BlobStore, row: Any, report: Report) -> dict[str, Any] | None:
    head, blob_id = row["head_id"], row["state_blob"]

    def unreadable(reason: str) -> None:
        report.add("head/state-unreadable", f"head {head!r}: state {blob_id} {reason}", head=head,
                   session=row["session_id"], state_blob=blob_id, reason=reason)

    try:
        state = msgspec.json.decode(inline.read(conn, blobs, blob_id))
    except CorruptBlobError as exc:
        unreadable(exc.reason)
        return None
    except ValueError as exc:  # not a blob id / not JSON
        unreadable(f"is not JSON: {exc}")
        return None
    if not isinstance(state, dict) or {"members", *FIELDS} - set(state):
        missing = sorted({"members", *FIELDS} - set(state)) if isinstance(state, dict) else ["(not an object)"]
        unreadable(f"is not a head state: missing {', '.join(missing)}")
        return None
    members = state["members"]
    if not (isinstance(members, list) and all(_is_entry(e) for e in members)):
        unreadable("has malformed members (expected [[session, [[lo, hi], ...]], ...])")
        return None
    return state


def _is_entry(entry: Any) -> bool:
    return (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str) and isinstance(entry[1], list)
            and all(isinstance(r, list) and len(r) == 2 and all(isinstance(x, int) for x in r) and r[0] <= r[1]
                    for r in entry[1]))


def _compare(row: Any, state: dict[str, Any], events: dict[str, int], sessions: set[str], report: Report) -> None:
    head = row["head_id"]

    def mismatch(message: str, **data: Any) -> None:
        report.add("head/state-mismatch", f"head {head!r}: {message}", head=head, session=row["session_id"],
                   state_blob=row["state_blob"], **data)

    for field, column in FIELDS.items():
        if state[field] != row[column]:
            mismatch(f"state {field} is {state[field]!r} but the head row says {row[column]!r}", field=field,
                     state_value=state[field], row_value=row[column])
    ranges = dict((session, spans) for session, spans in state["members"])
    own = ranges.get(row["session_id"], [])
    if not any(lo <= row["event_id"] <= hi for lo, hi in own):
        mismatch(f"members do not include the head's own event {row['event_id']}", field="members",
                 event_id=row["event_id"])
    for session, spans in ranges.items():
        if session not in sessions:
            mismatch(f"members name session {session!r}, which does not exist", field="members", member=session)
        elif spans and spans[-1][1] > events.get(session, 0):
            mismatch(f"members reach event {spans[-1][1]} of session {session!r}, whose last event is"
                     f" {events.get(session, 0)}", field="members", member=session, event_id=spans[-1][1])
