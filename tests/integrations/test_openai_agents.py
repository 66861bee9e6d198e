"""The OpenAI Agents SDK's session behaviour, through its own `Runner` with a fake model (no network):
the same test against the SDK's `SQLiteSession` and against `SessionDBSession` on a `Store` and
on a `SessionClient` through a real fleet."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

agents = pytest.importorskip("agents")

from agents import Agent, ModelSettings, Runner, SQLiteSession  # noqa: E402
from agents.items import ModelResponse  # noqa: E402
from agents.models.interface import Model  # noqa: E402
from agents.usage import Usage  # noqa: E402
from openai.types.responses import ResponseOutputMessage, ResponseOutputText  # noqa: E402

from sessiondb import Store  # noqa: E402
from sessiondb.integrations.openai_agents import SessionDBSession, role_of  # noqa: E402


class EchoModel(Model):
    """Answers every turn with 'seen N: <last user text>' (N: how many items it was given)."""

    def __init__(self) -> None:
        self.inputs: list[list[Any]] = []

    async def get_response(self, system_instructions, input, model_settings, tools, output_schema, handoffs,
                           tracing, *, previous_response_id=None, conversation_id=None, prompt=None, **_kw):
        items = [{"role": "user", "content": input}] if isinstance(input, str) else list(input)
        self.inputs.append(items)
        last = next(i["content"] for i in reversed(items) if i.get("role") == "user")
        text = f"seen {len(items)}: {last}"
        message = ResponseOutputMessage(id=f"msg_{len(self.inputs)}", type="message", role="assistant",
                                        status="completed",
                                        content=[ResponseOutputText(type="output_text", text=text, annotations=[])])
        return ModelResponse(output=[message], usage=Usage(), response_id=None)

    def stream_response(self, *args, **kwargs):  # pragma: no cover - not used
        raise NotImplementedError


def texts(items: list[Any]) -> list[str]:
    out = []
    for item in items:
        content = item["content"]
        out.append(content if isinstance(content, str) else content[0]["text"])
    return out


@pytest.fixture(params=["sqlite", "store", "fleet"])
def make_session(request, tmp_path) -> Iterator[Any]:
    """A factory `make_session(session_id)` for one kind of session."""
    if request.param == "sqlite":
        made = []

        def sqlite(sid: str) -> Any:
            made.append(SQLiteSession(sid, str(tmp_path / "agents.sqlite")))
            return made[-1]

        yield sqlite
        for s in made:
            s.close()
    elif request.param == "store":
        store = Store.open(tmp_path / "store")
        yield lambda sid: SessionDBSession(sid, store)
        store.close()
    else:
        from sessiondb import SessionClient

        fleet = request.getfixturevalue("fleet")
        fleet.writer()
        fleet.worker("reader")
        client = SessionClient(fleet.settings)
        yield lambda sid: SessionDBSession(sid, client)
        client.close()


def run(agent: Agent, text: str, session: Any) -> str:
    return asyncio.run(Runner.run(agent, text, session=session)).final_output


def test_history_is_loaded_and_appended_across_runs(make_session):
    model = EchoModel()
    agent = Agent(name="echo", model=model, model_settings=ModelSettings())
    session = make_session("user-1")
    assert run(agent, "hello", session) == "seen 1: hello"
    assert run(agent, "again", session) == "seen 3: again"  # user, assistant, then the new user item
    # a new session object on the same id (a restart) sees the same history
    again = make_session("user-1")
    assert run(agent, "third", again) == "seen 5: third"
    items = asyncio.run(again.get_items())
    assert texts(items) == ["hello", "seen 1: hello", "again", "seen 3: again", "third", "seen 5: third"]
    assert [i["role"] for i in items] == ["user", "assistant"] * 3
    assert model.inputs[2][:4] == items[:4]  # the model was given the stored items as they were
    # another id is another session
    assert asyncio.run(make_session("user-2").get_items()) == []


def test_limit_pop_and_clear(make_session):
    session = make_session("conv:with spaces/and slashes")  # not a sessiondb name: escaped
    items = [{"role": "user", "content": f"u{k}"} for k in range(5)]
    asyncio.run(session.add_items(items[:2]))
    asyncio.run(session.add_items(items[2:]))
    assert asyncio.run(session.get_items()) == items
    assert asyncio.run(session.get_items(limit=2)) == items[3:]
    assert asyncio.run(session.get_items(limit=10)) == items
    assert asyncio.run(session.pop_item()) == items[4]
    assert asyncio.run(session.pop_item()) == items[3]
    assert asyncio.run(session.get_items()) == items[:3]
    asyncio.run(session.add_items([{"role": "user", "content": "new"}]))
    assert asyncio.run(session.get_items(limit=2)) == [items[2], {"role": "user", "content": "new"}]
    asyncio.run(session.clear_session())
    assert asyncio.run(session.get_items()) == []
    assert asyncio.run(session.pop_item()) is None
    asyncio.run(session.add_items([{"role": "user", "content": "after"}]))
    assert asyncio.run(make_session("conv:with spaces/and slashes").get_items()) == [{"role": "user",
                                                                                         "content": "after"}]


def test_session_settings_limit_is_the_default(make_session, tmp_path):
    session = make_session("limited")
    session.session_settings = type(session.session_settings)(limit=1)
    asyncio.run(session.add_items([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]))
    assert asyncio.run(session.get_items()) == [{"role": "user", "content": "b"}]
    assert len(asyncio.run(session.get_items(limit=5))) == 2


def test_items_round_trip_exactly_and_pop_keeps_history(tmp_path):
    store = Store.open(tmp_path / "store")
    session = SessionDBSession("tools", store)
    items = [
        {"role": "user", "content": [{"type": "input_text", "text": "ünïcode ✓"}]},
        {"type": "function_call", "call_id": "c1", "name": "add", "arguments": "{\"a\": 1.5, \"b\": null}"},
        {"type": "function_call_output", "call_id": "c1", "output": "2.5"},
        {"role": "developer", "content": "be brief"},
    ]
    asyncio.run(session.add_items(items))
    assert asyncio.run(session.get_items()) == items
    sid = session.sessiondb_session
    assert [m["role"] for m in store.message_records(sid)] == ["user", "assistant", "observation", "system"]
    assert [role_of(i) for i in items] == ["user", "assistant", "observation", "system"]
    assert asyncio.run(session.pop_item()) == items[3]
    # the popped item left the view, not the history
    assert len(store.message_records(sid)) == 3
    assert len(store.message_records(sid, all_branches=True)) == 4
    assert store.view(sid)["session"]["title"] == "tools"
    asyncio.run(session.clear_session())
    assert session.sessiondb_session != sid
    store.close()


def test_needs_a_store_or_a_client():
    with pytest.raises(TypeError, match="Store or a sessiondb.SessionClient"):
        SessionDBSession("x", "var/store")


def test_two_writers_on_one_id_append_after_each_other(tmp_path):
    """A second session object (another process, say) moved the head: the next add appends after it."""
    with Store.open(tmp_path / "store") as store:
        first, second = SessionDBSession("shared", store), SessionDBSession("shared", store)
        for k in range(3):
            asyncio.run(first.add_items([{"role": "user", "content": f"a{k}"}]))
            asyncio.run(second.add_items([{"role": "assistant", "content": f"b{k}"}]))
        assert [i["content"] for i in asyncio.run(first.get_items())] == ["a0", "b0", "a1", "b1", "a2", "b2"]
        assert asyncio.run(second.pop_item())["content"] == "b2"
        asyncio.run(first.add_items([{"role": "user", "content": "after the pop"}]))
        assert [i["content"] for i in asyncio.run(second.get_items(limit=2))] == ["a2", "after the pop"]
        asyncio.run(second.clear_session())
        asyncio.run(first.add_items([{"role": "user", "content": "fresh"}]))  # goes to the new generation
        assert asyncio.run(second.get_items()) == [{"role": "user", "content": "fresh"}]


def test_without_the_framework_the_import_error_names_the_extra():
    import subprocess
    import sys

    for module, hidden, extra in [("openai_agents", "agents", "openai-agents"), ("langgraph", "langgraph", "langgraph"),
                                  ("adk", "google.adk", "adk")]:
        code = (f"import sys; sys.modules[{hidden!r}] = None\n"
                f"try:\n    import sessiondb.integrations.{module}\n"
                f"except ImportError as e:\n    print(e)\n")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert f'pip install "sessiondb[{extra}]"' in out.stdout, (module, out.stdout, out.stderr)
