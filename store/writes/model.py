"""The shape of a session write: typed records for every event type, and `parse_write`.

This is the schema check of a write (docs/spec.md, Writes: Validation; parse -> plan -> execute). A write
arrives as plain data (decoded JSON or msgpack); `parse_write` turns it into typed records
or raises one `ValidationError` naming the write, the event index and the field. An event
type in a namespace the store owns (`message/`, `head/`, ... : `OWNED_NAMESPACES`) must be
one of `EVENT_TYPES`, so a typo is rejected with the closest known type instead of being
kept as an annotation nobody reads; any other namespace (`agent/thought`) is an
`Annotation`. Nothing here touches disk or SQLite.
"""

from __future__ import annotations

import difflib
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec

from ..errors import ValidationError
from ..settings import Settings
from .values import check_values

# Names that end up in keys and CLI arguments: no '/', no '#', no path tricks, bounded.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
Name = Annotated[str, msgspec.Meta(pattern=NAME_PATTERN)]
Id = Annotated[int, msgspec.Meta(ge=1, le=2**53)]
Count = Annotated[int, msgspec.Meta(ge=0, le=2**53)]
Cost = Annotated[float, msgspec.Meta(ge=0)]
Short = Annotated[str, msgspec.Meta(max_length=200)]
#: ISO-8601 with a time zone, as every event's `at` (annotations' too)
AT_PATTERN = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$"
AT_RE = re.compile(AT_PATTERN)
At = Annotated[str, msgspec.Meta(pattern=AT_PATTERN)]
UNSET: Any = msgspec.UNSET


class Event(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Fields every event may carry. `at` defaults to the writer's clock."""

    type: str
    at: At | None = None


class SessionStarted(Event, kw_only=True):
    title: Annotated[str, msgspec.Meta(max_length=1000)] | None = None
    kind: Literal["root", "child"] = "root"
    origin: Literal["entry", "invocation"] = "entry"
    parent: Name | None = None


class SessionStatus(Event, kw_only=True):
    status: Literal["running", "stopped", "error"]


class SessionError(Event, kw_only=True):
    error: Any


class MessageAdded(Event, kw_only=True):
    message_id: Id | None = None
    role: Literal["system", "user", "assistant", "observation"]
    content: Any
    turn: Id | None = None
    call: Id | None = None


class TurnStarted(Event, kw_only=True):
    turn_id: Id | None = None
    head_before: Name | None = None


class TurnPut(Event, kw_only=True):
    turn_id: Id
    status: Literal["running", "final", "error"]
    final: Any = None
    head_after: Name | None = None


class EvalAdded(Event, kw_only=True):
    eval_id: Id | None = None
    turn: Id | None = None
    message: Id | None = None
    code: Any
    result: Any = None
    error: Any = None
    final: Any = None
    status: Literal["ok", "error"] = "ok"


class CallStarted(Event, kw_only=True):
    call_id: Id | None = None
    turn: Id | None = None
    eval: Id | None = None
    call_type: Short = "llm"
    model: Short | None = None
    provider: Short | None = None
    request: Any = None
    child_session: Name | None = None


class CallPut(Event, kw_only=True):
    call_id: Id
    status: Literal["running", "completed", "failed"]
    response: Any = None
    result: Any = None
    error: Any = None
    input_tokens: Count | None = None
    output_tokens: Count | None = None
    cost: Cost | None = None
    child_session: Name | None = None


class SnapshotAdded(Event, kw_only=True):
    snapshot_id: Id | None = None
    turn: Id | None = None
    vars: Any
    var_count: Count | None = None


class HeadCreated(Event, kw_only=True):
    head_id: Name
    kind: Literal["initial", "turn-final", "compaction"] = "turn-final"
    state: Any = None
    final: Any = None
    snapshot: Id | None = None
    turn: Id | None = None
    fingerprint: Short | None = None
    #: move the session's current head to the new head (compare-and-set on expected_head)
    advance: bool = True
    expected_head: Name | None = UNSET


class RefUpdated(Event, kw_only=True):
    head: Name
    expected_head: Name | None


class SessionRestored(Event, kw_only=True):
    kind: Literal["resume", "fork", "attached-child", "continue"]
    source: Name | None = None
    source_head: Name | None = None
    expected_head: Name | None = UNSET


class InvocationStarted(Event, kw_only=True):
    invocation_id: Name
    callee: Name
    invocation_type: Short = "call"
    caller_head_before: Name | None = None
    callee_head_before: Name | None = None
    input: Any = None


class InvocationCompleted(Event, kw_only=True):
    invocation_id: Name
    caller_head_after: Name | None = None
    callee_head_after: Name | None = None
    final: Any = None


class InvocationFailed(Event, kw_only=True):
    invocation_id: Name
    error: Any = None


class AliasSet(Event, kw_only=True):
    alias: Name


class SessionDeleted(Event, kw_only=True):
    """Delete the session for real (store/forget/): always the only event of its write."""

    cascade: bool = False
    detach: bool = False
    reason: Annotated[str, msgspec.Meta(max_length=1000)] | None = None


class Annotation(msgspec.Struct, kw_only=True):
    """Any other event type: kept in the audit log with its fields as a metadata blob."""

    type: str
    at: str | None = None
    fields: dict[str, Any]


EVENT_TYPES: dict[str, type[Event]] = {
    "session/started": SessionStarted,
    "session/status": SessionStatus,
    "session/error": SessionError,
    "message/added": MessageAdded,
    "turn/started": TurnStarted,
    "turn/put": TurnPut,
    "eval/added": EvalAdded,
    "call/started": CallStarted,
    "call/put": CallPut,
    "snapshot/added": SnapshotAdded,
    "head/created": HeadCreated,
    "session/ref-updated": RefUpdated,
    "session/restored": SessionRestored,
    "invocation/started": InvocationStarted,
    "invocation/completed": InvocationCompleted,
    "invocation/failed": InvocationFailed,
    "alias/set": AliasSet,
    "session/deleted": SessionDeleted,
}

#: Namespaces the store owns: an unknown type in one of them is a typo, never an annotation.
#: Every namespace a known type uses, plus `ref/` (the current-head ref: `session/ref-updated`
#: is easily misremembered as `ref/updated`).
OWNED_NAMESPACES: frozenset[str] = frozenset({kind.split("/", 1)[0] for kind in EVENT_TYPES} | {"ref"})

EVENT_TYPE_RE = re.compile(r"^[a-z][a-z0-9-]*(/[a-z][a-z0-9-]*)+$")


class SessionWrite(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    write_id: Name
    session: Name
    events: list[dict[str, Any]]


class ParsedWrite(msgspec.Struct):
    write_id: str
    session: str
    events: list[Event | Annotation]
    #: blake3 of the write's canonical content (`commit.content_digest`), set by the group commit
    digest: str | None = None


class Undecoded(msgspec.Struct):
    """A write that was never decoded: its broker message was over the size limit, so the writer
    only found its id in the raw body (or none). `parse_write` rejects it with `reason`."""

    write_id: str | None
    reason: str


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


#: msgspec names a missing or unknown field in its message, not in its path (`$`)
_NAMED_FIELD = re.compile(r"^Object (?:missing required|contains unknown) field `([^`]*)`")


def _field_of(exc: msgspec.ValidationError) -> tuple[str | None, str]:
    text = str(exc)
    match = re.search(r" - at `\$(?:\.([A-Za-z_]+))?.*`$", text)
    message = text[: match.start()] if match else text
    if "matching regex" in message and NAME_PATTERN in message:
        message = "must be 1-128 letters, digits, '.', '_', ':' or '-', starting with a letter or digit"
    if "matching regex" in message and AT_PATTERN in message:
        message = "expected an ISO-8601 timestamp with a time zone, like 2026-01-01T12:00:00Z"
    field = match.group(1) if match else None
    named = _NAMED_FIELD.match(message)
    return (field or (named.group(1) if named else None)), message


def closest_type(kind: str) -> str:
    """The known event type nearest to `kind` (there always is one: the cutoff is 0)."""
    return difflib.get_close_matches(kind, EVENT_TYPES, n=1, cutoff=0.0)[0]


def unknown_type(kind: str, write_id: str | None, index: int) -> ValidationError:
    namespace = kind.split("/", 1)[0]
    suggestion = closest_type(kind)
    return ValidationError(
        f"unknown event type {kind!r} (did you mean {suggestion}?); the store owns the {namespace}/ namespace,"
        " so annotations must use another one (e.g. 'agent/thought')",
        write_id=write_id, event_index=index, field="type", suggestion=suggestion)


def parse_write(raw: Any, settings: Settings) -> ParsedWrite:
    """Validate one write (plain data) into typed records, or raise ValidationError."""
    if isinstance(raw, Undecoded):
        raise ValidationError(raw.reason, write_id=raw.write_id)
    if not isinstance(raw, dict):
        raise ValidationError(f"Expected `object`, got `{type(raw).__name__}`: a write must be a JSON object")
    write_id = raw.get("write_id")
    write_id = write_id if isinstance(write_id, str) else None
    check_values(raw, settings)  # before typing: surrogates, NaN, depth and size, named by field
    try:
        write = msgspec.convert(raw, SessionWrite)
    except msgspec.ValidationError as exc:
        field, message = _field_of(exc)
        raise ValidationError(message, write_id=write_id, field=field) from None
    if not write.events:
        raise ValidationError("a write needs at least one event", write_id=write_id, field="events")
    if len(write.events) > settings.max_events_per_write:
        raise ValidationError(
            f"{len(write.events)} events; at most {settings.max_events_per_write} per write",
            write_id=write_id,
            field="events",
        )
    events: list[Event | Annotation] = []
    for index, data in enumerate(write.events):
        kind = data.get("type")
        if not isinstance(kind, str) or not EVENT_TYPE_RE.match(kind) or len(kind) > 100:
            raise ValidationError(
                "every event needs a 'type' like 'message/added'",
                write_id=write_id,
                event_index=index,
                field="type",
            )
        model = EVENT_TYPES.get(kind)
        if model is None and kind.split("/", 1)[0] in OWNED_NAMESPACES:
            raise unknown_type(kind, write_id, index)
        if model is None:
            at = data.get("at")
            if at is not None and not (isinstance(at, str) and len(at) <= 40 and AT_RE.match(at)):
                raise ValidationError("expected an ISO-8601 timestamp with a time zone, like 2026-01-01T12:00:00Z",
                                      write_id=write_id, event_index=index, field="at")
            fields = {k: v for k, v in data.items() if k not in ("type", "at")}
            events.append(Annotation(type=kind, at=at, fields=fields))
            continue
        try:
            events.append(msgspec.convert(data, model))
        except msgspec.ValidationError as exc:
            field, message = _field_of(exc)
            raise ValidationError(message, write_id=write_id, event_index=index, field=field) from None
    deletes = [i for i, ev in enumerate(events) if isinstance(ev, SessionDeleted)]
    if deletes and len(events) > 1:
        raise ValidationError("a session/deleted event must be the only event of its write", write_id=write_id,
                              event_index=deletes[0], field="type")
    if deletes and events[0].cascade and events[0].detach:  # type: ignore[union-attr]
        raise ValidationError("choose cascade or detach, not both", write_id=write_id, event_index=0,
                              field="detach")
    return ParsedWrite(write.write_id, write.session, events)


def is_delete(write: ParsedWrite) -> bool:
    """A write that deletes its session (`parse_write` made sure the event is alone)."""
    return len(write.events) == 1 and isinstance(write.events[0], SessionDeleted)
