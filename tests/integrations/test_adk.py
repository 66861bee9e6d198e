"""Google ADK's session service contract: the same behaviour test against ADK's own
`InMemorySessionService` and against `SessionDBSessionService` on a `Store` and through a fleet."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

pytest.importorskip("google.adk")

from google.adk.errors.already_exists_error import AlreadyExistsError  # noqa: E402
from google.adk.errors.session_not_found_error import SessionNotFoundError  # noqa: E402
from google.adk.events.event import Event  # noqa: E402
from google.adk.events.event_actions import EventActions  # noqa: E402
from google.adk.sessions import InMemorySessionService  # noqa: E402
from google.adk.sessions.base_session_service import GetSessionConfig  # noqa: E402
from google.genai import types  # noqa: E402

from sessiondb import Store  # noqa: E402
from sessiondb.integrations.adk import SessionDBSessionService  # noqa: E402

BASE = float(int(time.time()) + 1000)  # event times after the sessions' creation


@pytest.fixture(params=["in-memory", "store", "fleet"])
def service(request, tmp_path):
    if request.param == "in-memory":
        yield InMemorySessionService()
    elif request.param == "store":
        store = Store.open(tmp_path / "store")
        yield SessionDBSessionService(store)
        store.close()
    else:
        from sessiondb import SessionClient

        fleet = request.getfixturevalue("fleet")
        fleet.writer()
        fleet.worker("reader")
        with SessionClient(fleet.settings) as client:
            svc = SessionDBSessionService(client)
            yield svc
            svc.close()


def event(n: int, author: str, text: str, delta: dict[str, Any] | None = None, call: bool = False) -> Event:
    if call:
        part = types.Part(function_response=types.FunctionResponse(id=f"c{n}", name="lookup",
                                                                   response={"result": text}))
    else:
        part = types.Part(text=text)
    return Event(id=f"e{n}", invocation_id="inv-1", author=author, timestamp=BASE + n,
                 content=types.Content(role="user" if author == "user" else "model", parts=[part]),
                 actions=EventActions(state_delta=delta or {}))


def run(coro):
    return asyncio.run(coro)


def dump(session) -> dict[str, Any]:
    return {"id": session.id, "app": session.app_name, "user": session.user_id, "state": session.state,
            "events": [e.model_dump(mode="json", exclude_none=True) for e in session.events]}


def test_create_append_get_with_state_scopes(service):
    s = run(service.create_session(app_name="app", user_id="u1", session_id="s1",
                                   state={"k": 1, "app:theme": "dark", "user:lang": "fr", "temp:x": 9}))
    assert s.state == {"k": 1, "app:theme": "dark", "user:lang": "fr"}
    run(service.append_event(s, event(1, "user", "hello")))
    run(service.append_event(s, event(2, "agent", "hi there", {"k": 2, "app:theme": "light", "user:lang": "de",
                                                              "temp:scratch": "gone", "turns": 1})))
    run(service.append_event(s, event(3, "tool", "42", call=True)))
    assert s.state["temp:scratch"] == "gone"  # the in-memory session keeps temp state for the invocation
    got = run(service.get_session(app_name="app", user_id="u1", session_id="s1"))
    assert got.state == {"k": 2, "turns": 1, "app:theme": "light", "user:lang": "de"}
    assert [e.id for e in got.events] == ["e1", "e2", "e3"]
    assert [e.content.parts[0].text for e in got.events[:2]] == ["hello", "hi there"]
    assert got.events[2].content.parts[0].function_response.response == {"result": "42"}
    assert "temp:scratch" not in got.events[1].actions.state_delta
    assert got.last_update_time == pytest.approx(BASE + 3)
    # app state is shared by every user of the app; user state by every session of the user
    other = run(service.create_session(app_name="app", user_id="u2", session_id="s2"))
    assert other.state == {"app:theme": "light"}
    mine = run(service.create_session(app_name="app", user_id="u1", session_id="s3"))
    assert mine.state == {"app:theme": "light", "user:lang": "de"}
    assert run(service.get_user_state(app_name="app", user_id="u1")) == {"lang": "de"}
    assert run(service.get_user_state(app_name="app", user_id="nobody")) == {}
    # an event appended twice is kept once
    run(service.append_event(got, got.events[0]))
    assert len(run(service.get_session(app_name="app", user_id="u1", session_id="s1")).events) == 3


def test_get_session_config(service):
    s = run(service.create_session(app_name="app", user_id="u", session_id="cfg"))
    for n in range(1, 6):
        run(service.append_event(s, event(n, "user" if n % 2 else "agent", f"m{n}")))

    def ids(config):
        return [e.id for e in run(service.get_session(app_name="app", user_id="u", session_id="cfg",
                                                      config=config)).events]

    assert ids(GetSessionConfig(num_recent_events=2)) == ["e4", "e5"]
    assert ids(GetSessionConfig(num_recent_events=0)) == []
    assert ids(GetSessionConfig(after_timestamp=BASE + 3)) == ["e3", "e4", "e5"]
    assert ids(GetSessionConfig(num_recent_events=10, after_timestamp=BASE + 4.5)) == ["e5"]
    assert ids(None) == ["e1", "e2", "e3", "e4", "e5"]


def test_list_delete_and_errors(service):
    a = run(service.create_session(app_name="app", user_id="u1", session_id="a", state={"n": 1}))
    run(service.create_session(app_name="app", user_id="u1", session_id="b"))
    run(service.create_session(app_name="app", user_id="u2", session_id="c"))
    run(service.create_session(app_name="other app/with spaces", user_id="u1", session_id="x y"))
    run(service.append_event(a, event(1, "user", "latest")))
    with pytest.raises(AlreadyExistsError):
        run(service.create_session(app_name="app", user_id="u1", session_id="a"))
    listed = run(service.list_sessions(app_name="app", user_id="u1")).sessions
    assert sorted(s.id for s in listed) == ["a", "b"] and listed[-1].id == "a"  # the most recent last
    assert all(s.events == [] for s in listed)
    assert next(s for s in listed if s.id == "a").state == {"n": 1}
    assert sorted(s.id for s in run(service.list_sessions(app_name="app")).sessions) == ["a", "b", "c"]
    assert [s.id for s in run(service.list_sessions(app_name="other app/with spaces")).sessions] == ["x y"]
    assert run(service.list_sessions(app_name="app", user_id="nobody")).sessions == []
    assert run(service.get_session(app_name="app", user_id="u2", session_id="a")) is None
    run(service.delete_session(app_name="app", user_id="u1", session_id="a"))
    run(service.delete_session(app_name="app", user_id="u1", session_id="never"))  # a no-op
    assert run(service.get_session(app_name="app", user_id="u1", session_id="a")) is None
    assert [s.id for s in run(service.list_sessions(app_name="app", user_id="u1")).sessions] == ["b"]
    with pytest.raises(SessionNotFoundError):
        run(service.append_event(a, event(2, "user", "into a deleted session")))
    again = run(service.create_session(app_name="app", user_id="u1", session_id="a"))
    assert again.state == {} and run(service.get_session(app_name="app", user_id="u1", session_id="a")).events == []


def test_same_sessions_as_in_memory(tmp_path):
    """One scenario, dumped, is the same on both services."""

    async def scenario(svc) -> list[Any]:
        s = await svc.create_session(app_name="app", user_id="u", session_id="s", state={"a": 1, "user:b": 2})
        for n in range(1, 4):
            await svc.append_event(s, event(n, "user" if n % 2 else "agent", f"t{n}", {"a": n, "app:c": n}))
        got = await svc.get_session(app_name="app", user_id="u", session_id="s")
        listed = await svc.list_sessions(app_name="app")
        return [dump(got), [dump(x) for x in listed.sessions]]

    expected = asyncio.run(scenario(InMemorySessionService()))
    with Store.open(tmp_path / "store") as store:
        svc = SessionDBSessionService(store)
        assert asyncio.run(scenario(svc)) == expected
        # the events are the session's messages; a new service on the store reads the same
        got = asyncio.run(SessionDBSessionService(store).get_session(app_name="app", user_id="u", session_id="s"))
        assert dump(got) == expected[0]
        assert [m["role"] for m in store.message_records("adk:app.u.s:1")] == ["user", "assistant", "user"]
        assert store.view("adk:app.u.s:1")["session"]["title"] == "app/u/s"
