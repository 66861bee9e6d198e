"""The Datalog facts of a write: its transaction batch, and the index schema they follow.

Each committed write appends one batch to the `tx` table: a list of entity maps in the
DataScript style (`{"message/key": "s1/5", "message/role": "user", "message/session":
["session/id", "s1"], ...}`), attribute names without a leading colon, references as
lookup refs on unique identities. The batch starts with one identity-only map per entity
it touches, so references inside the batch resolve in any order. The mapping from rows to
attributes is the table `ENTITIES`; `SCHEMA` is derived from it. Pure data; no I/O.
"""

from __future__ import annotations

from operator import itemgetter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .context import WriteContext

# per table: (namespace, identity attr, identity of a row, {column: (attr, ref-target)})
# ref-target: None = plain value, "blob" = blob ref, a namespace = ref to that entity

def _key(row: dict[str, Any], column: str) -> str:
    return f"{row['session_id']}/{row[column]}"


ENTITIES: dict[str, dict[str, Any]] = {
    "sessions": {"ns": "session", "id": "session/id", "key": lambda r: r["session_id"], "cols": {
        "title": ("title", None), "status": ("status", None), "kind": ("kind", None), "origin": ("origin", None),
        "parent": ("parent", "session"), "created_at": ("created-at", None),
        "ended_at": ("ended-at", None), "current_head": ("current-head", "head"), "error_blob": ("error", "blob")}},
    "messages": {"ns": "message", "id": "message/key", "key": lambda r: _key(r, "message_id"), "cols": {
        "message_id": ("id", None), "role": ("role", None), "content_blob": ("content", "blob"),
        "chars": ("chars", None), "turn_id": ("turn", "turn"), "call_id": ("call", "call"), "at": ("at", None)}},
    "turns": {"ns": "turn", "id": "turn/key", "key": lambda r: _key(r, "turn_id"), "cols": {
        "turn_id": ("id", None), "status": ("status", None), "head_before": ("head-before", "head"),
        "head_after": ("head-after", "head"), "final_blob": ("final", "blob"), "final_preview": ("preview", None),
        "started_at": ("started-at", None), "ended_at": ("ended-at", None)}},
    "evals": {"ns": "eval", "id": "eval/key", "key": lambda r: _key(r, "eval_id"), "cols": {
        "eval_id": ("id", None), "turn_id": ("turn", "turn"), "message_id": ("message", "message"),
        "status": ("status", None), "code_blob": ("code", "blob"), "result_blob": ("result", "blob"),
        "error_blob": ("error", "blob"), "final_blob": ("final", "blob"), "at": ("at", None)}},
    "calls": {"ns": "call", "id": "call/key", "key": lambda r: _key(r, "call_id"), "cols": {
        "call_id": ("id", None), "turn_id": ("turn", "turn"), "eval_id": ("eval", "eval"),
        "call_type": ("type", None), "status": ("status", None), "model": ("model", None),
        "provider": ("provider", None), "input_tokens": ("input-tokens", None),
        "output_tokens": ("output-tokens", None), "cost": ("cost", None), "request_blob": ("request", "blob"),
        "response_blob": ("response", "blob"), "result_blob": ("result", "blob"), "error_blob": ("error", "blob"),
        "child_session": ("child-session", "session"), "started_at": ("started-at", None),
        "ended_at": ("ended-at", None)}},
    "snapshots": {"ns": "snapshot", "id": "snapshot/key", "key": lambda r: _key(r, "snapshot_id"), "cols": {
        "snapshot_id": ("id", None), "turn_id": ("turn", "turn"), "vars_blob": ("vars", "blob"),
        "var_count": ("var-count", None), "at": ("at", None)}},
    "heads": {"ns": "head", "id": "head/id", "key": lambda r: r["head_id"], "cols": {
        "session_id": ("session", "session"), "seq": ("seq", None), "basis": ("basis", "head"),
        "kind": ("kind", None), "state_blob": ("state", "blob"), "runtime_blob": ("runtime", "blob"),
        "final_blob": ("final", "blob"), "snapshot_id": ("snapshot", "snapshot"), "turn_id": ("turn", "turn"),
        "fingerprint": ("fingerprint", None), "at": ("at", None)}},
    "invocations": {"ns": "invocation", "id": "invocation/id", "key": lambda r: r["invocation_id"], "cols": {
        "caller_session": ("caller", "session"), "callee_session": ("callee", "session"),
        "invocation_type": ("type", None), "status": ("status", None),
        "caller_head_before": ("caller-head-before", "head"), "caller_head_after": ("caller-head-after", "head"),
        "callee_head_before": ("callee-head-before", "head"), "callee_head_after": ("callee-head-after", "head"),
        "input_blob": ("input", "blob"), "final_blob": ("final", "blob"), "error_blob": ("error", "blob"),
        "started_at": ("started-at", None), "ended_at": ("ended-at", None)}},
    "derivations": {"ns": "derivation", "id": "derivation/id", "key": lambda r: r["derivation_id"], "cols": {
        "kind": ("kind", None), "target_session": ("target", "session"), "source_session": ("source", "session"),
        "source_head": ("source-head", "head"), "at": ("at", None)}},
    "aliases": {"ns": "alias", "id": "alias/name", "key": lambda r: r["name"], "cols": {
        "session_id": ("session", "session")}},
    "events": {"ns": "event", "id": "event/key", "key": lambda r: _key(r, "event_id"), "cols": {
        "event_id": ("id", None), "type": ("type", None), "at": ("at", None), "write_id": ("write", None),
        "tx_id": ("tx", None), "status": ("status", None), "meta_blob": ("meta", "blob")}},
}
IDENTITY = {spec["ns"]: spec["id"] for spec in ENTITIES.values()}
IDENTITY["blob"] = "blob/id"
# per-session entities also point at their session
SESSION_REF = {"messages", "turns", "evals", "calls", "snapshots", "events"}


def _schema() -> dict[str, dict[str, str]]:
    schema: dict[str, dict[str, str]] = {"blob/id": {":db/unique": ":db.unique/identity"}}
    for table, spec in ENTITIES.items():
        schema[spec["id"]] = {":db/unique": ":db.unique/identity"}
        if table in SESSION_REF:
            schema[f"{spec['ns']}/session"] = {":db/valueType": ":db.type/ref"}
        for attr, target in spec["cols"].values():
            if target is not None:
                schema[f"{spec['ns']}/{attr}"] = {":db/valueType": ":db.type/ref"}
    return schema


#: the Datalog schema of the derived index (DataScript npm form: attribute names without ':')
SCHEMA = _schema()


_SESSION_SCOPED_TARGETS = {"turn", "call", "eval", "message", "snapshot"}


def _compile(table: str, spec: dict[str, Any]) -> tuple[Any, ...]:
    """(identity attr, key of a row, session ref attr or None, [(column, attr, ref identity, scoped)])."""
    ns = spec["ns"]
    cols = [(column, f"{ns}/{attr}", None if target is None else IDENTITY[target], target in _SESSION_SCOPED_TARGETS)
            for column, (attr, target) in spec["cols"].items()]
    return spec["id"], spec["key"], f"{ns}/session" if table in SESSION_REF else None, cols


# `entity` runs for every row of every write: the attribute names are built once, here
_COMPILED = {table: _compile(table, spec) for table, spec in ENTITIES.items()}
_SESSION_FACTS = itemgetter(*ENTITIES["sessions"]["cols"])


def entity(table: str, row: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(identity-only map, full map) of one row."""
    id_attr, key, session_attr, cols = _COMPILED[table]
    ident = {id_attr: key(row)}
    full = dict(ident)
    if session_attr is not None:
        full[session_attr] = ["session/id", row["session_id"]]
    for column, attr, target, scoped in cols:
        value = row.get(column)
        if value is None:
            continue
        if target is None:
            full[attr] = value
        else:  # a lookup ref; per-session entities are keyed "<session>/<id>"
            full[attr] = [target, f"{row['session_id']}/{value}" if scoped else value]
    return ident, full


def facts_for(ctx: WriteContext) -> list[dict[str, Any]]:
    """The transaction batch of one planned write."""
    idents: list[dict[str, Any]] = []
    fulls: list[dict[str, Any]] = []
    for bid, (data, kind, media) in ctx.blobs.items():
        idents.append({"blob/id": bid, "blob/size": len(data), "blob/kind": kind, "blob/media-type": media})
    assert ctx.session is not None
    rows: list[tuple[str, dict[str, Any]]] = []
    before, after = ctx.session_before, ctx.session.row
    if before is None or _SESSION_FACTS(before) != _SESSION_FACTS(after):
        rows.append(("sessions", after))  # only when a fact of the session changed
    rows += ctx.appended
    rows += [(table, ctx.staged[(table, key)]) for table, key in dict.fromkeys(ctx.dirty)]  # type: ignore[misc]
    for table, row in rows:
        if table in ENTITIES:
            ident, full = entity(table, row)
            idents.append(ident)
            fulls.append(full)
    return idents + fulls
