"""The state a write is planned against: `GroupState` (the group so far, over the database)
and `WriteContext` (one write's staged changes), shared by the group commit (commit.py), the
event handlers (events.py) and the facts of a write (facts.py).

Planning reads rows through these overlays and stages every change in memory; nothing here
writes to the database (commit.py executes a finished plan).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec
from sqlalchemy import Connection, Table

from ..blobs import BlobStore, PayloadError, blob_id, canonical_json, inline, payload_bytes
from ..blobs.io import BlobBatch
from ..errors import NotFoundError, ValidationError
from ..rows import branch, hot, schema
from ..settings import Settings
from .model import ParsedWrite

#: the kinds of per-session ids whose high-water mark is kept in `counters`
COUNTER_KINDS = tuple(schema.ID_KINDS)
#: tables whose rows change after insert; they are written with INSERT OR REPLACE
UPDATABLE = {"sessions", "turns", "calls", "invocations"}
KEYS: dict[str, tuple[str, ...]] = {
    t.name: tuple(c.name for c in t.primary_key.columns) for t in schema.metadata.sorted_tables
}


@dataclass
class SessionState:
    row: dict[str, Any]
    branch: branch.Membership
    counters: dict[str, int]

    def copy(self) -> SessionState:
        return SessionState(dict(self.row), branch.copy(self.branch), dict(self.counters))


@dataclass
class GroupState:
    """What the writes planned so far in this group have done, over what the database holds."""

    conn: Connection
    blobs: BlobStore
    settings: Settings
    next_tx: int
    batch: BlobBatch  # the group's new blobs, on their way to disk
    cursor: Any  # the transaction's DBAPI cursor, for the hot reads (`rows.hot`)
    mark: str  # its paramstyle's placeholder
    sessions: dict[str, SessionState | None] = field(default_factory=dict)
    rows: dict[tuple[str, Any], dict[str, Any] | None] = field(default_factory=dict)
    members: dict[str, branch.Membership] = field(default_factory=dict)
    #: write id -> (receipt, content digest) of the writes committed by this group so far
    committed: dict[str, tuple[dict[str, Any], str | None]] = field(default_factory=dict)
    # what execute() will write
    appended: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    dirty: dict[str, dict[Any, dict[str, Any]]] = field(default_factory=dict)
    new_blobs: set[str] = field(default_factory=set)
    #: the group's new blobs of at most `inline_max_bytes`: stored in `blob_bytes` by execute()
    inline: dict[str, bytes] = field(default_factory=dict)
    #: ... and how many go to blob files (through `batch`)
    files: int = 0
    blob_rows: list[dict[str, Any]] = field(default_factory=list)
    dirty_sessions: set[str] = field(default_factory=set)

    def load_session(self, sid: str) -> SessionState | None:
        if sid not in self.sessions:
            data = hot.row_by_key(self.cursor, self.mark, schema.sessions, (sid,))
            if data is None:
                self.sessions[sid] = None
            else:
                found = dict(hot.rows_where(self.cursor, self.mark, schema.counters, ("kind", "value"),
                                            "session_id", [sid]))
                self.sessions[sid] = SessionState(
                    data,
                    branch.load(msgspec.json.decode(data["branch"])),
                    {k: found.get(k, 0) for k in COUNTER_KINDS},
                )
        return self.sessions[sid]

    def load_row(self, table: Table, key: tuple[Any, ...]) -> dict[str, Any] | None:
        cache_key = (table.name, key)
        if cache_key not in self.rows:
            self.rows[cache_key] = hot.row_by_key(self.cursor, self.mark, table, key)
        return self.rows[cache_key]


class WriteContext:
    """One write being planned: reads see the group's overlay, changes stay staged until it succeeds."""

    def __init__(self, group: GroupState, write: ParsedWrite, sid: str, session: SessionState | None) -> None:
        self.group = group
        self.write_id = write.write_id
        self.digest = write.digest
        self.sid = sid  # the session's id (the write may name it by an alias)
        self.named = write.session  # as the producer named it
        self.session = session.copy() if session is not None else None
        self.session_before = session.row if session is not None else None
        self.tx_id = group.next_tx
        self.index = 0
        self.at = ""
        self.staged: dict[tuple[str, Any], dict[str, Any] | None] = {}
        self.appended: list[tuple[str, dict[str, Any]]] = []
        self.dirty: list[tuple[str, Any]] = []
        self.members: dict[str, branch.Membership] = {}
        self.blobs: dict[str, tuple[bytes, str, str]] = {}
        self.event_ids: list[int] = []
        self.ids: dict[str, list[Any]] = {}
        self.head_moves: list[dict[str, Any]] = []
        self.new_sessions: dict[str, SessionState] = {}

    # -- reading through the overlay ----------------------------------------------------
    def get(self, table: Table, *key: Any) -> dict[str, Any] | None:
        cache_key = (table.name, key)
        if cache_key in self.staged:
            return self.staged[cache_key]
        return self.group.load_row(table, key)

    def other_session(self, sid: str) -> SessionState | None:
        if sid == self.sid:
            return self.session
        return self.group.load_session(sid)

    def require_session(self) -> SessionState:
        if self.session is None:
            raise NotFoundError("session", self.sid, event_index=self.index)
        return self.session

    def require(self, table: Table, what: str, *key: Any) -> dict[str, Any]:
        row = self.get(table, *key)
        if row is None:
            name = "/".join(str(k) for k in key)
            raise NotFoundError(what, name, event_index=self.index)
        return row

    def head_members(self, head_id: str) -> branch.Membership:
        for source in (self.members, self.group.members):
            if head_id in source:
                return source[head_id]
        row = self.require(schema.heads, "head", head_id)
        state = inline.read(self.group.conn, self.group.blobs, row["state_blob"])
        members = branch.load(msgspec.json.decode(state)["members"])
        self.group.members[head_id] = members
        return members

    # -- staging changes ----------------------------------------------------------------
    def insert(self, table: Table, row: dict[str, Any]) -> None:
        key = tuple(row[k] for k in KEYS[table.name])
        self.staged[(table.name, key)] = row
        if table.name in UPDATABLE:
            self.dirty.append((table.name, key))
        else:
            self.appended.append((table.name, row))

    def update(self, table: Table, row: dict[str, Any], **changes: Any) -> dict[str, Any]:
        new = {**row, **changes}
        key = tuple(new[k] for k in KEYS[table.name])
        self.staged[(table.name, key)] = new
        self.dirty.append((table.name, key))
        return new

    def next_id(self, kind: str, given: int | None) -> int:
        session = self.require_session()
        counters = session.counters
        value = given if given is not None else counters[kind] + 1
        if value > counters[kind]:
            counters[kind] = value
        self.ids.setdefault(kind, []).append(value)
        return value

    def stamp(self, kind: str, entity: str | None = None, entity_id: Any = None, *,
              status: str | None = None, meta_blob: str | None = None) -> int:
        """Record the current event in the audit log; returns its event id."""
        session = self.require_session()
        event_id = session.counters["event"] + 1
        session.counters["event"] = event_id
        branch.add(session.branch.setdefault(self.sid, []), event_id)
        session.row["updated_at"] = self.at
        self.appended.append(("events", {
            "session_id": self.sid, "event_id": event_id, "type": kind, "at": self.at,
            "write_id": self.write_id, "tx_id": self.tx_id, "entity": entity,
            "entity_id": None if entity_id is None else str(entity_id), "status": status,
            "meta_blob": meta_blob,
        }))
        self.event_ids.append(event_id)
        return event_id

    def payload(self, value: Any, kind: str, field_name: str) -> str:
        """Stage a payload as a blob and return its id."""
        settings = self.group.settings
        try:
            data, media = payload_bytes(value, settings.max_nesting_depth)
        except PayloadError as exc:
            raise ValidationError(str(exc), write_id=self.write_id, event_index=self.index,
                                  field=field_name) from None
        if len(data) > settings.max_payload_bytes:
            raise ValidationError(
                f"payload of {len(data)} bytes; at most {settings.max_payload_bytes}",
                write_id=self.write_id, event_index=self.index, field=field_name)
        bid = blob_id(data)
        if bid not in self.blobs:
            self.blobs[bid] = (data, kind, media)
        return bid

    def optional_payload(self, value: Any, kind: str, field_name: str) -> str | None:
        return None if value is None else self.payload(value, kind, field_name)

    def json_blob(self, value: Any, kind: str) -> str:
        data = canonical_json(value)
        bid = blob_id(data)
        self.blobs.setdefault(bid, (data, kind, "application/json"))
        return bid
