"""What each event type does to the rows of a session: the handler table.

One small function per event type, registered in `HANDLERS`. A handler reads through the
`WriteContext` overlay, raises a `StoreError` when the event breaks a rule (the whole write
is then rejected), and stages rows, blobs and the audit event. The compare-and-set on a
session's current head lives in one place: `move_head`. Handlers never touch SQLite or the
filesystem directly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from ..errors import AliasConflictError, ConflictError, HeadConflictError, NotFoundError, ValidationError
from ..rows import branch, schema
from .context import KEYS, SessionState, WriteContext
from .model import (
    AliasSet,
    Annotation,
    CallPut,
    CallStarted,
    EvalAdded,
    Event,
    HeadCreated,
    InvocationCompleted,
    InvocationFailed,
    InvocationStarted,
    MessageAdded,
    RefUpdated,
    SessionError,
    SessionRestored,
    SessionStarted,
    SessionStatus,
    SnapshotAdded,
    TurnPut,
    TurnStarted,
)

PREVIEW_CHARS = 200
ANNOTATION_META_MAX = 64 * 1024
Handler = Callable[[WriteContext, Any], None]
HANDLERS: dict[type, Handler] = {}


def handles(model: type) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        HANDLERS[model] = fn
        return fn

    return register


def apply_event(ctx: WriteContext, event: Event | Annotation) -> None:
    if not isinstance(event, SessionStarted):
        ctx.require_session()
    HANDLERS[type(event)](ctx, event)


# -- shared rules -------------------------------------------------------------------------


def same_or_conflict(ctx: WriteContext, what: str, existing: dict[str, Any], mine: dict[str, Any]) -> None:
    """A re-sent id is a no-op only when every field in `mine` equals the stored row's.

    `what` names the thing, e.g. "message s/1" or "head 'h1'"."""
    for name, value in mine.items():
        if existing.get(name) != value:
            raise ConflictError(f"{what} already exists with a different {name}",
                                event_index=ctx.index, id=what.split(" ", 1)[1].strip("'"), field=name)


def next_or_given(ctx: WriteContext, kind: str, given: int | None) -> int:
    """The producer's id, or the next one above the session's high-water mark for `kind`."""
    return given if given is not None else ctx.require_session().counters[kind] + 1


def require_entity(ctx: WriteContext, table: schema.Table, what: str, entity_id: int | None) -> None:
    if entity_id is not None:
        ctx.require(table, what, ctx.sid, entity_id)


def require_head(ctx: WriteContext, head_id: str | None, session: str | None = None) -> dict[str, Any] | None:
    if head_id is None:
        return None
    row = ctx.require(schema.heads, "head", head_id)
    if session is not None and row["session_id"] != session:
        raise ConflictError(
            f"head {head_id!r} belongs to session {row['session_id']!r}, not {session!r}",
            event_index=ctx.index, head=head_id, session=session,
        )
    return row


def move_head(ctx: WriteContext, head_id: str, expected: str | None, event_id: int, *, rebase: bool) -> None:
    """THE compare-and-set on a session's current head.

    It runs inside the writer's single SQLite transaction, so nothing can move the ref
    between this check and the commit. `rebase` resets the branch to the head's state (a
    restore); a head just created from the current branch already equals it."""
    session = ctx.require_session()
    actual = session.row["current_head"]
    if actual != expected:
        raise HeadConflictError(ctx.sid, expected, actual, event_index=ctx.index)
    session.row["current_head"] = head_id
    if rebase:
        session.branch = branch.copy(ctx.head_members(head_id))
        branch.add(session.branch.setdefault(ctx.sid, []), event_id)
    ctx.head_moves.append({"session": ctx.sid, "from": actual, "to": head_id})


def expected_head_given(ctx: WriteContext, expected: Any) -> str | None:
    if expected is msgspec.UNSET:
        raise ValidationError(
            "moving the current head needs 'expected_head' (null when the session has none yet)",
            write_id=ctx.write_id, event_index=ctx.index, field="expected_head",
        )
    return expected


def preview(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else repr(value)
    return text[:PREVIEW_CHARS]


def text_length(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, bytes | bytearray):
        return len(value)
    return len(repr(value))


# -- session ------------------------------------------------------------------------------


@handles(SessionStarted)
def session_started(ctx: WriteContext, ev: SessionStarted) -> None:
    if ctx.named != ctx.sid:
        raise AliasConflictError(ctx.named, f"{ctx.named!r} is already an alias; a session id may not equal an alias",
                                 existing=ctx.sid, event_index=ctx.index)
    if ctx.session is not None:
        same_or_conflict(ctx, f"session {ctx.sid!r}", ctx.session.row,
                         {name: getattr(ev, name) for name in ("title", "kind", "origin", "parent")})
        return
    if ev.parent is not None and ctx.other_session(ev.parent) is None:
        raise NotFoundError("session", ev.parent, event_index=ctx.index)
    ctx.session = SessionState(
        {
            "session_id": ctx.sid, "title": ev.title, "status": "running", "kind": ev.kind,
            "origin": ev.origin, "parent": ev.parent, "created_at": ctx.at, "updated_at": ctx.at,
            "ended_at": None, "current_head": None, "error_blob": None, "branch": "[]",
        },
        {},
        dict.fromkeys(schema.ID_KINDS, 0),
    )
    ctx.stamp(ev.type, "session", ctx.sid, status="running")


@handles(SessionStatus)
def session_status(ctx: WriteContext, ev: SessionStatus) -> None:
    row = ctx.require_session().row
    row["status"] = ev.status
    row["ended_at"] = ctx.at if ev.status in ("stopped", "error") else None
    ctx.stamp(ev.type, "session", ctx.sid, status=ev.status)


@handles(SessionError)
def session_error(ctx: WriteContext, ev: SessionError) -> None:
    row = ctx.require_session().row
    if ev.error is None:
        raise ValidationError("an error payload is required", write_id=ctx.write_id, event_index=ctx.index,
                              field="error")
    row["error_blob"] = ctx.payload(ev.error, "session-error", "error")
    row["status"] = "error"
    row["ended_at"] = ctx.at
    ctx.stamp(ev.type, "session", ctx.sid, status="error")


# -- messages, turns, evals, calls, snapshots ---------------------------------------------


@handles(MessageAdded)
def message_added(ctx: WriteContext, ev: MessageAdded) -> None:
    if ev.content is None:
        raise ValidationError("message content is required", write_id=ctx.write_id, event_index=ctx.index,
                              field="content")
    require_entity(ctx, schema.turns, "turn", ev.turn)
    require_entity(ctx, schema.calls, "call", ev.call)
    content = ctx.payload(ev.content, "message", "content")
    message_id = next_or_given(ctx, "message", ev.message_id)
    row = {"session_id": ctx.sid, "message_id": message_id, "event_id": 0, "role": ev.role,
           "content_blob": content, "chars": text_length(ev.content), "turn_id": ev.turn,
           "call_id": ev.call, "at": ctx.at}
    _create_entity(ctx, schema.messages, row, "message", ev.type)


def _create_entity(ctx: WriteContext, table: schema.Table, row: dict[str, Any], kind: str, event_type: str,
                   status: str | None = None, compare: tuple[str, ...] = ()) -> bool:
    """Shared tail of every 'X/added' and 'X/started': no-op, conflict, or a new row + event.

    `compare`: the fields an identical re-send must match (default: every field but the
    event id and times)."""
    id_col = KEYS[table.name][1]
    # an id above the session's high-water mark was never used on any branch: no lookup needed
    existing = (ctx.get(table, ctx.sid, row[id_col]) if row[id_col] <= ctx.require_session().counters[kind]
                else None)
    if existing is not None:
        names = compare or [n for n in row if n not in ("event_id", "at", "started_at")]
        same_or_conflict(ctx, f"{kind} {ctx.sid}/{row[id_col]}", existing, {n: row[n] for n in names})
        return False
    ctx.next_id(kind, row[id_col])
    row["event_id"] = ctx.stamp(event_type, kind, row[id_col], status=status)
    ctx.insert(table, row)
    return True


@handles(TurnStarted)
def turn_started(ctx: WriteContext, ev: TurnStarted) -> None:
    require_head(ctx, ev.head_before, ctx.sid)
    turn_id = next_or_given(ctx, "turn", ev.turn_id)
    row = {"session_id": ctx.sid, "turn_id": turn_id, "event_id": 0, "status": "running",
           "head_before": ev.head_before, "head_after": None, "final_blob": None, "final_preview": None,
           "started_at": ctx.at, "ended_at": None}
    _create_entity(ctx, schema.turns, row, "turn", ev.type, status="running", compare=("head_before",))


@handles(TurnPut)
def turn_put(ctx: WriteContext, ev: TurnPut) -> None:
    row = ctx.require(schema.turns, "turn", ctx.sid, ev.turn_id)
    require_head(ctx, ev.head_after, ctx.sid)
    changes: dict[str, Any] = {"status": ev.status}
    if ev.final is not None:
        changes["final_blob"] = ctx.payload(ev.final, "turn-final", "final")
        changes["final_preview"] = preview(ev.final)
    if ev.head_after is not None:
        changes["head_after"] = ev.head_after
    if ev.status in ("final", "error"):
        changes["ended_at"] = ctx.at
    ctx.update(schema.turns, row, **changes)
    ctx.stamp(ev.type, "turn", ev.turn_id, status=ev.status)


@handles(EvalAdded)
def eval_added(ctx: WriteContext, ev: EvalAdded) -> None:
    if ev.code is None:
        raise ValidationError("eval code is required", write_id=ctx.write_id, event_index=ctx.index, field="code")
    require_entity(ctx, schema.turns, "turn", ev.turn)
    require_entity(ctx, schema.messages, "message", ev.message)
    eval_id = next_or_given(ctx, "eval", ev.eval_id)
    row = {"session_id": ctx.sid, "eval_id": eval_id, "event_id": 0, "turn_id": ev.turn,
           "message_id": ev.message, "status": ev.status,
           "code_blob": ctx.payload(ev.code, "eval-code", "code"),
           "result_blob": ctx.optional_payload(ev.result, "eval-result", "result"),
           "error_blob": ctx.optional_payload(ev.error, "eval-error", "error"),
           "final_blob": ctx.optional_payload(ev.final, "eval-final", "final"), "at": ctx.at}
    _create_entity(ctx, schema.evals, row, "eval", ev.type, status=ev.status)


@handles(CallStarted)
def call_started(ctx: WriteContext, ev: CallStarted) -> None:
    require_entity(ctx, schema.turns, "turn", ev.turn)
    require_entity(ctx, schema.evals, "eval", ev.eval)
    if ev.child_session is not None and ctx.other_session(ev.child_session) is None:
        raise NotFoundError("session", ev.child_session, event_index=ctx.index)
    call_id = next_or_given(ctx, "call", ev.call_id)
    row = {"session_id": ctx.sid, "call_id": call_id, "event_id": 0, "turn_id": ev.turn, "eval_id": ev.eval,
           "call_type": ev.call_type, "status": "running", "model": ev.model, "provider": ev.provider,
           "input_tokens": None, "output_tokens": None, "cost": None,
           "request_blob": ctx.optional_payload(ev.request, "call-request", "request"),
           "response_blob": None, "result_blob": None, "error_blob": None,
           "child_session": ev.child_session, "started_at": ctx.at, "ended_at": None}
    _create_entity(ctx, schema.calls, row, "call", ev.type, status="running",
                   compare=("turn_id", "eval_id", "call_type", "model", "provider", "request_blob"))


@handles(CallPut)
def call_put(ctx: WriteContext, ev: CallPut) -> None:
    row = ctx.require(schema.calls, "call", ctx.sid, ev.call_id)
    if ev.child_session is not None and ctx.other_session(ev.child_session) is None:
        raise NotFoundError("session", ev.child_session, event_index=ctx.index)
    changes: dict[str, Any] = {"status": ev.status}
    for name in ("input_tokens", "output_tokens", "cost", "child_session"):
        if getattr(ev, name) is not None:
            changes[name] = getattr(ev, name)
    for name in ("response", "result", "error"):
        value = getattr(ev, name)
        if value is not None:
            changes[f"{name}_blob"] = ctx.payload(value, f"call-{name}", name)
    if ev.status in ("completed", "failed"):
        changes["ended_at"] = ctx.at
    ctx.update(schema.calls, row, **changes)
    ctx.stamp(ev.type, "call", ev.call_id, status=ev.status)


@handles(SnapshotAdded)
def snapshot_added(ctx: WriteContext, ev: SnapshotAdded) -> None:
    if ev.vars is None:
        raise ValidationError("snapshot vars are required", write_id=ctx.write_id, event_index=ctx.index,
                              field="vars")
    require_entity(ctx, schema.turns, "turn", ev.turn)
    snapshot_id = next_or_given(ctx, "snapshot", ev.snapshot_id)
    var_count = ev.var_count if ev.var_count is not None else (len(ev.vars) if isinstance(ev.vars, dict) else None)
    row = {"session_id": ctx.sid, "snapshot_id": snapshot_id, "event_id": 0, "turn_id": ev.turn,
           "vars_blob": ctx.payload(ev.vars, "snapshot-vars", "vars"), "var_count": var_count, "at": ctx.at}
    _create_entity(ctx, schema.snapshots, row, "snapshot", ev.type)


# -- heads, refs, lineage -----------------------------------------------------------------


@handles(HeadCreated)
def head_created(ctx: WriteContext, ev: HeadCreated) -> None:
    session = ctx.require_session()
    expected = expected_head_given(ctx, ev.expected_head) if ev.advance else None
    require_entity(ctx, schema.snapshots, "snapshot", ev.snapshot)
    require_entity(ctx, schema.turns, "turn", ev.turn)
    runtime = ctx.optional_payload(ev.state, "head-runtime", "state")
    final = ctx.optional_payload(ev.final, "head-final", "final")
    existing = ctx.get(schema.heads, ev.head_id)
    if existing is not None:
        same_or_conflict(ctx, f"head {ev.head_id!r}", existing, {
            "session_id": ctx.sid, "kind": ev.kind, "runtime_blob": runtime, "final_blob": final,
            "snapshot_id": ev.snapshot, "turn_id": ev.turn, "fingerprint": ev.fingerprint})
        return
    if ctx.get(schema.aliases, ev.head_id) is not None:
        raise ConflictError(f"head id {ev.head_id!r} is an alias name", event_index=ctx.index, head=ev.head_id)
    if ev.advance and session.row["current_head"] != expected:
        raise HeadConflictError(ctx.sid, expected, session.row["current_head"], event_index=ctx.index)
    seq = ctx.next_id("head", None)
    ctx.ids["head"][-1] = ev.head_id
    event_id = ctx.stamp(ev.type, "head", ev.head_id)
    members = branch.copy(session.branch)
    basis = session.row["current_head"]
    state = {"head": ev.head_id, "session": ctx.sid, "basis": basis, "kind": ev.kind, "members": branch.dump(members),
             "runtime": runtime, "final": final, "snapshot": ev.snapshot, "turn": ev.turn,
             "fingerprint": ev.fingerprint}
    ctx.members[ev.head_id] = members
    ctx.insert(schema.heads, {
        "head_id": ev.head_id, "session_id": ctx.sid, "seq": seq, "event_id": event_id, "basis": basis,
        "kind": ev.kind, "state_blob": ctx.json_blob(state, "head-state"), "runtime_blob": runtime,
        "final_blob": final, "snapshot_id": ev.snapshot, "turn_id": ev.turn, "fingerprint": ev.fingerprint,
        "at": ctx.at})
    if ev.advance:
        move_head(ctx, ev.head_id, expected, event_id, rebase=False)


@handles(RefUpdated)
def ref_updated(ctx: WriteContext, ev: RefUpdated) -> None:
    require_head(ctx, ev.head, ctx.sid)
    event_id = ctx.stamp(ev.type, "head", ev.head)
    move_head(ctx, ev.head, ev.expected_head, event_id, rebase=True)


@handles(SessionRestored)
def session_restored(ctx: WriteContext, ev: SessionRestored) -> None:
    session = ctx.require_session()
    if ev.kind == "resume":
        if ev.source_head is None:
            raise ValidationError("a resume names the 'source_head' to continue from", write_id=ctx.write_id,
                                  event_index=ctx.index, field="source_head")
        require_head(ctx, ev.source_head, ctx.sid)
        expected = expected_head_given(ctx, ev.expected_head)
        source = ctx.sid
    else:
        source = ev.source
        head = require_head(ctx, ev.source_head, source)
        if source is None:
            if head is None:
                raise ValidationError(f"a {ev.kind} names its 'source' session or 'source_head'",
                                      write_id=ctx.write_id, event_index=ctx.index, field="source")
            source = head["session_id"]
        source_state = ctx.other_session(source)
        if source_state is None:
            raise NotFoundError("session", source, event_index=ctx.index)
        if source == ctx.sid:
            raise ConflictError(f"a {ev.kind} derives a session from another session", event_index=ctx.index)
        source_head = ev.source_head or source_state.row["current_head"]
        if ev.kind in ("fork", "continue"):
            if source_head is None:
                raise ConflictError(f"session {source!r} has no head to {ev.kind} from", event_index=ctx.index)
            if session.row["current_head"] is not None or set(session.branch) - {ctx.sid}:
                raise ConflictError(f"session {ctx.sid!r} already has a state; {ev.kind} a new session",
                                    event_index=ctx.index)
            session.branch = branch.inherit(session.branch, ctx.head_members(source_head))
        ev = SessionRestored(type=ev.type, at=ev.at, kind=ev.kind, source=source, source_head=source_head)
    event_id = ctx.stamp(ev.type, "derivation", None, status=ev.kind)
    derivation_id = f"{ev.kind}:{ctx.sid}:{source}#{ev.source_head or ''}"
    if ctx.get(schema.derivations, derivation_id) is None:
        ctx.insert(schema.derivations, {
            "derivation_id": derivation_id, "kind": ev.kind, "target_session": ctx.sid, "source_session": source,
            "source_head": ev.source_head, "event_id": event_id, "at": ctx.at})
    if ev.kind == "resume":
        move_head(ctx, ev.source_head, expected, event_id, rebase=True)  # type: ignore[arg-type]


@handles(InvocationStarted)
def invocation_started(ctx: WriteContext, ev: InvocationStarted) -> None:
    if ctx.other_session(ev.callee) is None:
        raise NotFoundError("session", ev.callee, event_index=ctx.index)
    require_head(ctx, ev.caller_head_before, ctx.sid)
    require_head(ctx, ev.callee_head_before, ev.callee)
    row = {"invocation_id": ev.invocation_id, "caller_session": ctx.sid, "event_id": 0,
           "callee_session": ev.callee, "invocation_type": ev.invocation_type, "status": "running",
           "caller_head_before": ev.caller_head_before, "caller_head_after": None,
           "callee_head_before": ev.callee_head_before, "callee_head_after": None,
           "input_blob": ctx.optional_payload(ev.input, "invocation-input", "input"),
           "final_blob": None, "error_blob": None, "started_at": ctx.at, "ended_at": None}
    existing = ctx.get(schema.invocations, ev.invocation_id)
    if existing is not None:
        same_or_conflict(ctx, f"invocation {ev.invocation_id!r}", existing, {
            name: row[name] for name in ("caller_session", "callee_session", "invocation_type",
                                         "caller_head_before", "callee_head_before", "input_blob")})
        return
    row["event_id"] = ctx.stamp(ev.type, "invocation", ev.invocation_id, status="running")
    ctx.insert(schema.invocations, row)


def _invocation_of_caller(ctx: WriteContext, invocation_id: str) -> dict[str, Any]:
    row = ctx.require(schema.invocations, "invocation", invocation_id)
    if row["caller_session"] != ctx.sid:
        raise ConflictError(f"invocation {invocation_id!r} was started by session {row['caller_session']!r};"
                            " write its outcome there", event_index=ctx.index, id=invocation_id)
    return row


@handles(InvocationCompleted)
def invocation_completed(ctx: WriteContext, ev: InvocationCompleted) -> None:
    row = _invocation_of_caller(ctx, ev.invocation_id)
    require_head(ctx, ev.caller_head_after, ctx.sid)
    require_head(ctx, ev.callee_head_after, row["callee_session"])
    ctx.update(schema.invocations, row, status="completed", caller_head_after=ev.caller_head_after,
               callee_head_after=ev.callee_head_after, ended_at=ctx.at,
               final_blob=ctx.optional_payload(ev.final, "invocation-final", "final"))
    ctx.stamp(ev.type, "invocation", ev.invocation_id, status="completed")


@handles(InvocationFailed)
def invocation_failed(ctx: WriteContext, ev: InvocationFailed) -> None:
    row = _invocation_of_caller(ctx, ev.invocation_id)
    ctx.update(schema.invocations, row, status="failed", ended_at=ctx.at,
               error_blob=ctx.optional_payload(ev.error, "invocation-error", "error"))
    ctx.stamp(ev.type, "invocation", ev.invocation_id, status="failed")


@handles(AliasSet)
def alias_set(ctx: WriteContext, ev: AliasSet) -> None:
    existing = ctx.get(schema.aliases, ev.alias)
    if existing is not None:
        if existing["session_id"] == ctx.sid:
            return
        raise AliasConflictError(ev.alias, f"alias {ev.alias!r} already names session {existing['session_id']!r}",
                                 existing=existing["session_id"], event_index=ctx.index)
    if ctx.other_session(ev.alias) is not None:
        raise AliasConflictError(ev.alias, f"{ev.alias!r} is a session id; an alias may not equal a session id",
                                 event_index=ctx.index)
    ctx.insert(schema.aliases, {"name": ev.alias, "session_id": ctx.sid, "at": ctx.at})
    ctx.stamp(ev.type, "alias", ev.alias)


@handles(Annotation)
def annotation(ctx: WriteContext, ev: Annotation) -> None:
    fields = dict(ev.fields)
    payload = fields.pop("payload", None)
    meta: dict[str, Any] = {"fields": fields}
    if payload is not None:
        meta["payload"] = ctx.payload(payload, "annotation-payload", "payload")
    blob = ctx.payload(meta, "event-meta", "fields")
    if len(ctx.blobs[blob][0]) > ANNOTATION_META_MAX:
        raise ValidationError("annotation metadata is over 64 KiB; put large data in 'payload'",
                              write_id=ctx.write_id, event_index=ctx.index, field="fields")
    ctx.stamp(ev.type, None, None, meta_blob=blob)
