"""Transcript check: in a turn marked final, every assistant tool call has its result and back.

A runtime that resumes a session whose final turn holds a tool call without its result (or
a result without its call) sends the model a transcript the provider rejects, so this is
flagged as a warning for the runtime to repair before resuming.

How a tool call is recognised (only JSON message contents are inspected, i.e. content that
a producer sent as an object or a list; plain text is never parsed):
  call side, in messages whose role is `assistant`:
    - OpenAI chat: an object with `tool_calls: [{"id": ...}, ...]`;
    - OpenAI legacy: an object with `function_call: {"name": ...}` (key `function:<name>`);
    - Anthropic: content blocks `{"type": "tool_use", "id": ...}`;
    - OpenAI Responses: items `{"type": "function_call", "call_id": ...}`;
  result side, in messages of any role:
    - OpenAI chat: an object with `tool_call_id` (e.g. `{"role": "tool", "tool_call_id": ...}`);
    - OpenAI legacy: an object with `role: "function"` and `name` (key `function:<name>`);
    - Anthropic: content blocks `{"type": "tool_result", "tool_use_id": ...}`;
    - OpenAI Responses: items `{"type": "function_call_output", "call_id": ...}`.
The content may be one message object, a list of messages or blocks, or an object whose
`content` is a list of blocks. Calls and results pair by id within the turn (messages whose
`turn` is the turn). Read-only.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec
from sqlalchemy import Connection, and_, select

from ...blobs import BlobStore, inline
from ...blobs.canonical import JSON
from ...errors import CorruptBlobError
from ...rows import schema
from ..findings import Report


def check(conn: Connection, blobs: BlobStore, report: Report) -> None:
    m, t, b = schema.messages, schema.turns, schema.blobs
    query = (
        select(m.c.session_id, m.c.turn_id, m.c.message_id, m.c.role, m.c.content_blob)
        .join(t, and_(t.c.session_id == m.c.session_id, t.c.turn_id == m.c.turn_id))
        .join(b, b.c.blob_id == m.c.content_blob)
        .where(t.c.status == "final", b.c.media_type == JSON)
        .order_by(m.c.session_id, m.c.turn_id, m.c.message_id)
    )
    turn: tuple[str, int] | None = None
    calls: dict[str, list[int]] = {}  # tool call key -> the messages that open it
    results: dict[str, list[int]] = {}  # tool call key -> the messages that answer it
    for session, turn_id, message_id, role, blob_id in conn.execute(query):
        if (session, turn_id) != turn:
            if turn is not None:
                _pair(turn, calls, results, report)
            turn, calls, results = (session, turn_id), {}, {}
        try:
            content = msgspec.json.decode(inline.read(conn, blobs, blob_id))
        except (CorruptBlobError, msgspec.DecodeError):
            report.count("transcript_unreadable")  # the blob scan reports the blob itself
            continue
        report.count("transcript_messages")
        for key in tool_calls(content) if role == "assistant" else []:
            calls.setdefault(key, []).append(message_id)
        for key in tool_results(content):
            results.setdefault(key, []).append(message_id)
    if turn is not None:
        _pair(turn, calls, results, report)


def _pair(turn: tuple[str, int], calls: dict[str, list[int]], results: dict[str, list[int]],
          report: Report) -> None:
    """Pair by key and count (a legacy `function:<name>` key may be called, and answered, twice)."""
    session, turn_id = turn
    report.count("final_turns_with_json")
    for key in calls:
        for message_id in calls[key][len(results.get(key, ())):]:
            report.add("transcript/unpaired-call", f"session {session!r} turn {turn_id}: tool call {key!r} has no"
                       " result", session=session, turn=turn_id, tool_call=key, message=message_id, missing="result")
    for key in results:
        for message_id in results[key][len(calls.get(key, ())):]:
            report.add("transcript/unpaired-call", f"session {session!r} turn {turn_id}: result for tool call {key!r}"
                       " has no call", session=session, turn=turn_id, tool_call=key, message=message_id,
                       missing="call")


def _objects(content: Any) -> Iterator[dict[str, Any]]:
    """The message objects and content blocks in a message's content (two levels deep)."""
    top = content if isinstance(content, list) else [content]
    for item in top:
        if isinstance(item, dict):
            yield item
            inner = item.get("content")
            if isinstance(inner, list):
                yield from (block for block in inner if isinstance(block, dict))


def tool_calls(content: Any) -> list[str]:
    """The tool-call keys an assistant message's content opens."""
    keys: list[str] = []
    for obj in _objects(content):
        for call in obj.get("tool_calls") or []:
            if isinstance(call, dict) and isinstance(call.get("id"), str):
                keys.append(call["id"])
        function_call = obj.get("function_call")
        if isinstance(function_call, dict) and isinstance(function_call.get("name"), str):
            keys.append(f"function:{function_call['name']}")
        if obj.get("type") == "tool_use" and isinstance(obj.get("id"), str):
            keys.append(obj["id"])
        if obj.get("type") == "function_call" and isinstance(obj.get("call_id"), str):
            keys.append(obj["call_id"])
    return keys


def tool_results(content: Any) -> list[str]:
    """The tool-call keys a message's content answers."""
    keys: list[str] = []
    for obj in _objects(content):
        if isinstance(obj.get("tool_call_id"), str):
            keys.append(obj["tool_call_id"])
        elif obj.get("role") == "function" and isinstance(obj.get("name"), str):
            keys.append(f"function:{obj['name']}")
        if obj.get("type") == "tool_result" and isinstance(obj.get("tool_use_id"), str):
            keys.append(obj["tool_use_id"])
        if obj.get("type") == "function_call_output" and isinstance(obj.get("call_id"), str):
            keys.append(obj["call_id"])
    return keys
