"""OpenAI Agents SDK sessions in sessiondb: `SessionDBSession`, a drop-in for `SQLiteSession`.

    from agents import Agent, Runner
    from sessiondb import Store
    from sessiondb.integrations.openai_agents import SessionDBSession

    session = SessionDBSession("user-42", Store.open("var/store"))    # or a SessionClient
    await Runner.run(agent, "hello", session=session)

Owns the mapping of the SDK's session protocol (`get_items`, `add_items`, `pop_item`,
`clear_session`, `session_id`, `session_settings`) onto session writes and reads. It never
writes outside the sessions it maps its session id to.

The layout, in the session `oa:<key>:<generation>` (`_names`):

* the first write starts the session with the SDK's id as its title and an `initial` head;
* every item is one message (its role mapped: user → user, assistant → assistant,
  system/developer → system, a tool's or function's output → observation, anything else
  → assistant) whose content is the item itself, as JSON: `get_items` returns it as it
  was given; each message is followed by a head, so every item is a point to go back to;
* `pop_item` is a resume to the head before the last item: the popped item leaves the
  current branch (and `get_items`) but stays in the session's history;
* `clear_session` forgets the session (`_forget`) and the id starts over on the next
  generation.

Needs `pip install "sessiondb[openai-agents]"`.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from typing import Any

try:
    from agents.memory.session import SessionABC
    from agents.memory.session_settings import SessionSettings, coerce_session_settings, resolve_session_limit
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "sessiondb.integrations.openai_agents needs the OpenAI Agents SDK: pip install \"sessiondb[openai-agents]\""
    ) from exc

from ..store import HeadConflictError, SessionDeletedError
from . import _forget, _names
from ._backend import Backend

PREFIX = "oa"
_ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}
_OUTPUT_TYPES = ("function_call_output", "computer_call_output", "local_shell_call_output",
                 "shell_call_output", "apply_patch_call_output", "custom_tool_call_output", "mcp_approval_response")


def role_of(item: dict[str, Any]) -> str:
    """The sessiondb role of an SDK input item."""
    role = item.get("role")
    if isinstance(role, str) and role in _ROLES:
        return _ROLES[role]
    kind = item.get("type")
    if isinstance(kind, str) and (kind in _OUTPUT_TYPES or kind.endswith("_output")):
        return "observation"
    return "assistant"


class SessionDBSession(SessionABC):
    """An OpenAI Agents session kept in sessiondb.

    Args:
        session_id: the SDK's session id (any string; see `_names` for how it is mapped).
        target: a `sessiondb.Store` (embedded: this process owns the root) or a
            `sessiondb.SessionClient` (writes through the fleet, reads through its `reads`
            queue: a `reader` worker must run).
        session_settings: the SDK's `SessionSettings` (its `limit` is `get_items`' default).
        receipt_timeout: with a `SessionClient`, how long a write waits for its receipt.
    """

    def __init__(self, session_id: str, target: Any, *,
                 session_settings: SessionSettings | dict[str, Any] | None = None,
                 receipt_timeout: float = 60.0) -> None:
        self.session_id = session_id
        self.session_settings = coerce_session_settings(session_settings) if session_settings is not None \
            else SessionSettings()
        self._key = _names.key(session_id)
        self._backend = Backend(target, receipt_timeout=receipt_timeout)
        self._lock = threading.Lock()
        self._loaded = False
        self._heads_known = False
        self._generation = 1
        self._exists = False
        self._head: str | None = None

    # -- where the session is -------------------------------------------------------------
    @property
    def sessiondb_session(self) -> str:
        """The sessiondb session this SDK session writes to now."""
        with self._lock:
            self._load()
            return self._sid

    @property
    def _sid(self) -> str:
        return _names.session_name(PREFIX, self.session_id, self._generation)

    def _load(self, again: bool = False, heads: bool = True) -> None:
        """Find the generation the id writes to now; with `heads`, where its head is (a read
        that only needs the generation skips that read)."""
        if not self._loaded or again:
            generation, exists = _forget.current_generation(
                self._backend, lambda n: _names.session_name(PREFIX, self.session_id, n))
            if (generation, exists) != (self._generation, self._exists) or (again and heads):
                self._heads_known = False  # (a head moved by another writer shows as a conflict, then reloads)
            self._generation, self._exists, self._loaded = generation, exists, True
        if heads and not self._heads_known:
            self._head = self._backend.current_head(self._sid) if self._exists else None
            self._heads_known = True

    def _head_event(self, expected: str | None, kind: str = "turn-final") -> dict[str, Any]:
        # a fresh id: two writers of one id never make the same head (an existing head id
        # would be taken as the same head, not as a conflict)
        head = f"{self._sid}.h{uuid.uuid4().hex[:16]}"
        return {"type": "head/created", "head_id": head, "kind": kind, "expected_head": expected}

    # -- the protocol -----------------------------------------------------------------------
    async def get_items(self, limit: int | None = None) -> list[Any]:
        """The current branch's items, oldest first; with `limit`, the latest `limit` of them."""
        limit = resolve_session_limit(limit, self.session_settings)
        return await asyncio.to_thread(self._get_items, limit)

    def _get_items(self, limit: int | None) -> list[Any]:
        with self._lock:
            self._load(again=True, heads=False)  # another process may have written or cleared it
            if not self._exists:
                return []
            rows = self._backend.messages(self._sid)
        items = [row["content"] for row in rows]
        if limit is None:
            return items
        return items[-limit:] if limit > 0 else []

    async def add_items(self, items: list[Any]) -> None:
        """Append `items` in one write: a message and a head per item."""
        if not items:
            return
        # as the SDK's SQLiteSession stores them: their JSON form
        plain = [json.loads(json.dumps(item)) for item in items]
        await asyncio.to_thread(self._add_items, plain)

    def _add_items(self, items: list[dict[str, Any]]) -> None:
        with self._lock:
            self._load()
            for attempt in range(5):
                events = []
                if not self._exists:
                    events += [{"type": "session/started", "title": self.session_id[:200]},
                               self._head_event(None, "initial")]
                    head = events[-1]["head_id"]
                else:
                    head = self._head
                for item in items:
                    events.append({"type": "message/added", "role": role_of(item), "content": item})
                    events.append(self._head_event(head))
                    head = events[-1]["head_id"]
                try:
                    self._backend.write(self._sid, events)
                except (HeadConflictError, SessionDeletedError):
                    if attempt == 4:
                        raise
                    self._load(again=True)  # another writer moved the head (or cleared the id): look again
                    continue
                self._exists, self._head = True, head
                return

    async def pop_item(self) -> Any | None:
        """Take the latest item off the current branch (a resume to the head before it) and
        return it; None when the session is empty. The item stays in the history."""
        return await asyncio.to_thread(self._pop_item)

    def _pop_item(self) -> Any | None:
        with self._lock:
            for attempt in range(5):
                self._load(again=True)
                if not self._exists:
                    return None
                view = self._backend.view(self._sid)
                messages, heads = view["messages"], view["heads"]
                if not messages or len(heads) < 2:
                    return None
                rows = self._backend.messages(self._sid)
                if not rows:
                    return None
                current = view["refs"]["current_head"]
                back = heads[-2]["head_id"]
                try:
                    self._backend.write(self._sid, [{"type": "session/restored", "kind": "resume", "source": self._sid,
                                                     "source_head": back, "expected_head": current}])
                except HeadConflictError:
                    if attempt == 4:
                        raise
                    continue
                self._head = back
                return rows[-1]["content"]
        return None  # pragma: no cover

    async def clear_session(self) -> None:
        """Forget this session's items: the id starts over on a fresh sessiondb session."""
        await asyncio.to_thread(self._clear)

    def _clear(self) -> None:
        with self._lock:
            self._load(again=True)
            if self._exists:
                _forget.forget(self._backend, self._sid)
            self._loaded = False
            self._load()
