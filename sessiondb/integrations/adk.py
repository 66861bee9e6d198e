"""Google ADK sessions in sessiondb: `SessionDBSessionService`, a `BaseSessionService`.

    from google.adk.runners import Runner
    from sessiondb import Store
    from sessiondb.integrations.adk import SessionDBSessionService

    runner = Runner(agent=agent, app_name="my-app", session_service=SessionDBSessionService(Store.open("var/store")))

Owns the mapping of ADK's session service (`create_session`, `get_session` with its
`GetSessionConfig`, `list_sessions`, `delete_session`, `append_event`, `get_user_state`, and
the `app:` / `user:` / `temp:` state scopes as ADK defines them) onto session writes. It never
writes outside the sessions below.

* An ADK session is the sessiondb session `adk:<key>:<generation>`, `key` made from
  `app.user.session` when each part is 1-30 letters, digits, `_` or `-`, else hashed
  (`_names`); its title is `app/user/session`. Every event is one message, its content the
  event as JSON (`Event.model_dump(mode="json")`), its role user (author `user`),
  observation (a function response) or assistant, its time the event's timestamp. An event
  is written at most once (its write id is the hash of its content).
* Session state is the state given at creation plus the session-scoped `state_delta` of
  every event, in order. `temp:` keys are never stored.
* `app:` state is a log of deltas in the session `adk-app:<key(app)>:1`, `user:` state in
  `adk-user:<key(app, user)>:1` (annotations `adk/state`); which sessions an app has is the
  log `adk-index:<key(app)>:1` (`adk/session-created`, `adk/session-deleted`).
* `delete_session` forgets the session (`_forget`); the same ids may be created again, on the
  next generation.

Needs `pip install "sessiondb[adk]"`.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

try:
    from google.adk.errors.already_exists_error import AlreadyExistsError
    from google.adk.errors.session_not_found_error import SessionNotFoundError
    from google.adk.events.event import Event
    from google.adk.sessions import _session_util
    from google.adk.sessions.base_session_service import BaseSessionService, GetSessionConfig, ListSessionsResponse
    from google.adk.sessions.session import Session
    from google.adk.sessions.state import State
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "sessiondb.integrations.adk needs Google's ADK: pip install \"sessiondb[adk]\""
    ) from exc

from blake3 import blake3

from ..store import NotFoundError, Store
from . import _forget, _names
from ._backend import Backend

CREATED, DELETED, STATE = "adk/session-created", "adk/session-deleted", "adk/state"
_PART = re.compile(r"[A-Za-z0-9_-]{1,30}")


def _joined(*parts: str) -> str:
    """One framework id for several ADK ids (plain when every part is, else hashed by `_names`)."""
    if all(_PART.fullmatch(p) for p in parts):
        return ".".join(parts)
    return json.dumps(parts)  # never plain: `_names.key` hashes it


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


@dataclass
class _Log:
    """A folded annotation log (an app's index, or one app/user state), and how far it was read."""

    session: str
    known_event: int = 0
    exists: bool = False
    state: dict[str, Any] = field(default_factory=dict)
    entries: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)


class SessionDBSessionService(BaseSessionService):
    """An ADK session service that keeps every session in sessiondb.

    Args:
        target: a `sessiondb.Store` (embedded: this process owns the root) or a
            `sessiondb.SessionClient` (writes through the fleet; reads through its `reads`
            queue, payloads from the fleet's root opened read-only).
        reader: with a `SessionClient`, the read-only `Store` to read payloads from
            (default: `Store.open_readonly(client.settings.root)`).
        receipt_timeout: with a `SessionClient`, how long a write waits for its receipt.
    """

    def __init__(self, target: Any, *, reader: Store | None = None, receipt_timeout: float = 60.0) -> None:
        self._backend = Backend(target, receipt_timeout=receipt_timeout, reader=reader)
        self._lock = threading.RLock()
        self._logs: dict[str, _Log] = {}

    def close(self) -> None:
        """Close the read-only store this service opened (never the target)."""
        self._backend.close()

    # -- the logs ---------------------------------------------------------------------------
    def _log(self, session: str) -> _Log:
        """A log, brought up to date with what its session holds now."""
        log = self._logs.setdefault(session, _Log(session))
        try:
            count = self._backend.counters(session)["event"]
        except NotFoundError:
            return log
        if count != log.known_event:
            history = self._backend.history(session)
            for event_id, type_, fields, payload in self._backend.annotations(
                    history, (CREATED, DELETED, STATE), after=log.known_event):
                self._fold(log, type_, fields, payload)
                log.known_event = event_id
            log.known_event = history["counters"]["event"]
            log.exists = True
        return log

    @staticmethod
    def _fold(log: _Log, type_: str, fields: dict[str, Any], payload: str | None) -> None:
        if type_ == STATE:
            log.state.update(json.loads(payload or "{}"))
        elif type_ == CREATED:
            log.entries[(fields["user_id"], fields["session_id"])] = {
                "session": fields["session"], **json.loads(payload or "{}")}
        elif type_ == DELETED:
            log.entries.pop((fields["user_id"], fields["session_id"]), None)

    def _append(self, log: _Log, type_: str, fields: dict[str, Any], payload: Any, title: str) -> None:
        text = json.dumps(payload, separators=(",", ":"), sort_keys=True)
        events = [] if log.exists else [{"type": "session/started", "title": title}]
        events.append({"type": type_, **fields, "payload": text})
        ids = self._backend.write(log.session, events).get("event_ids") or []
        log.exists = True
        if ids and log.known_event == ids[0] - 1:  # nobody else wrote in between: no re-read
            log.known_event = max(ids)
            self._fold(log, type_, fields, text)

    def _index(self, app: str) -> _Log:
        return self._log(_names.session_name("adk-index", app, 1))

    def _app_state(self, app: str) -> _Log:
        return self._log(_names.session_name("adk-app", app, 1))

    def _user_state(self, app: str, user: str) -> _Log:
        return self._log(_names.session_name("adk-user", _joined(app, user), 1))

    def _save_scoped(self, app: str, user: str, deltas: dict[str, dict[str, Any]]) -> None:
        if deltas["app"]:
            self._append(self._app_state(app), STATE, {}, deltas["app"], f"{app} (app state)")
        if deltas["user"]:
            self._append(self._user_state(app, user), STATE, {}, deltas["user"], f"{app}/{user} (user state)")

    def _merged(self, app: str, user: str, state: dict[str, Any]) -> dict[str, Any]:
        out = dict(state)
        for k, v in self._app_state(app).state.items():
            out[State.APP_PREFIX + k] = v
        for k, v in self._user_state(app, user).state.items():
            out[State.USER_PREFIX + k] = v
        return out

    def _load(self, app: str, user: str, sid: str, entry: dict[str, Any]) -> tuple[list[Event], dict[str, Any]]:
        """The events of a session and its session-scoped state."""
        rows = self._backend.messages(entry["session"])
        events = [Event.model_validate(row["content"]) for row in rows]
        state = dict(entry.get("state", {}))
        for event in events:
            if event.actions and event.actions.state_delta:
                state.update(_session_util.extract_state_delta(event.actions.state_delta)["session"])
        return events, state

    # -- the service ------------------------------------------------------------------------
    async def create_session(self, *, app_name: str, user_id: str, state: dict[str, Any] | None = None,
                             session_id: str | None = None) -> Session:
        return await asyncio.to_thread(self._create, app_name, user_id, state, session_id)

    def _create(self, app: str, user: str, state: dict[str, Any] | None, session_id: str | None) -> Session:
        sid = (session_id.strip() if session_id else None) or uuid.uuid4().hex
        with self._lock:
            index = self._index(app)
            if (user, sid) in index.entries:
                raise AlreadyExistsError(f"Session with id {sid} already exists.")
            deltas = _session_util.extract_state_delta(state or {})
            session_state = _session_util.make_json_safe_state(deltas["session"])
            joined = _joined(app, user, sid)
            gen, _ = _forget.current_generation(self._backend, lambda n: _names.session_name("adk", joined, n))
            name = _names.session_name("adk", joined, gen)
            now = time.time()
            self._backend.write(name, [{"type": "session/started", "title": f"{app}/{user}/{sid}"[:200],
                                        "at": _iso(now)}])
            self._append(index, CREATED, {"user_id": user, "session_id": sid, "session": name},
                         {"state": session_state, "created": now}, f"{app} (sessions)")
            self._save_scoped(app, user, deltas)
            return Session(app_name=app, user_id=user, id=sid, state=self._merged(app, user, session_state),
                           last_update_time=now)

    async def get_session(self, *, app_name: str, user_id: str, session_id: str,
                          config: GetSessionConfig | None = None) -> Session | None:
        return await asyncio.to_thread(self._get, app_name, user_id, session_id, config)

    def _get(self, app: str, user: str, sid: str, config: GetSessionConfig | None) -> Session | None:
        sid = sid.strip() if sid else sid
        with self._lock:
            entry = self._index(app).entries.get((user, sid))
            if entry is None:
                return None
            events, state = self._load(app, user, sid, entry)
            last = events[-1].timestamp if events else entry["created"]
            if config:
                if config.num_recent_events is not None:
                    events = events[-config.num_recent_events:] if config.num_recent_events else []
                if config.after_timestamp is not None:
                    events = [e for e in events if e.timestamp >= config.after_timestamp]
            return Session(app_name=app, user_id=user, id=sid, state=self._merged(app, user, state),
                           events=events, last_update_time=last)

    async def list_sessions(self, *, app_name: str, user_id: str | None = None) -> ListSessionsResponse:
        return await asyncio.to_thread(self._list, app_name, user_id)

    def _list(self, app: str, user: str | None) -> ListSessionsResponse:
        with self._lock:
            out = []
            for (uid, sid), entry in list(self._index(app).entries.items()):
                if user is not None and uid != user:
                    continue
                events, state = self._load(app, uid, sid, entry)
                out.append(Session(app_name=app, user_id=uid, id=sid, state=self._merged(app, uid, state),
                                   last_update_time=events[-1].timestamp if events else entry["created"]))
            out.sort(key=lambda s: (s.last_update_time, s.user_id, s.id))
            return ListSessionsResponse(sessions=out)

    async def delete_session(self, *, app_name: str, user_id: str, session_id: str) -> None:
        await asyncio.to_thread(self._delete, app_name, user_id, session_id)

    def _delete(self, app: str, user: str, sid: str) -> None:
        sid = sid.strip() if sid else sid
        with self._lock:
            index = self._index(app)
            entry = index.entries.get((user, sid))
            if entry is None:
                return
            _forget.forget(self._backend, entry["session"])
            self._append(index, DELETED, {"user_id": user, "session_id": sid}, {}, f"{app} (sessions)")

    async def get_user_state(self, *, app_name: str, user_id: str) -> dict[str, Any]:
        return await asyncio.to_thread(lambda: dict(self._user_state(app_name, user_id).state))

    async def append_event(self, session: Session, event: Event) -> Event:
        if event.partial:
            return event
        entry = await asyncio.to_thread(self._entry, session.app_name, session.user_id, session.id)
        if entry is None:
            raise SessionNotFoundError(f"Session {session.id} not found.")
        if any(e == event for e in session.events if e.id == event.id):
            return event
        await super().append_event(session=session, event=event)  # temp state, the in-memory session
        session.last_update_time = event.timestamp
        await asyncio.to_thread(self._save_event, session, event, entry["session"])
        return event

    def _entry(self, app: str, user: str, sid: str) -> dict[str, Any] | None:
        with self._lock:
            return self._index(app).entries.get((user, sid))

    def _save_event(self, session: Session, event: Event, name: str) -> None:
        content = event.model_dump(mode="json", exclude_none=True)
        digest = blake3(json.dumps([name, content], sort_keys=True).encode()).hexdigest()[:48]
        with self._lock:
            self._backend.write(name, [{"type": "message/added", "role": role_of(event), "content": content,
                                        "at": _iso(event.timestamp)}], write_id=f"adk-{digest}")
            if event.actions and event.actions.state_delta:
                self._save_scoped(session.app_name, session.user_id,
                                  _session_util.extract_state_delta(event.actions.state_delta))


def role_of(event: Event) -> str:
    """The sessiondb role of an ADK event."""
    if event.author == "user":
        return "user"
    parts = (event.content.parts or []) if event.content else []
    if any(getattr(p, "function_response", None) is not None for p in parts):
        return "observation"
    return "assistant"
