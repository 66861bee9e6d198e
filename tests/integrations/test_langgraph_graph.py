"""A real compiled LangGraph `StateGraph` (add_messages, an interrupt, time travel) on `SessionDBSaver`
gives the same states as on LangGraph's `InMemorySaver`; what it stores grows with what changed."""

from __future__ import annotations

from typing import Annotated, Any

import pytest

pytest.importorskip("langgraph")

from langchain_core.messages import AIMessage, HumanMessage  # noqa: E402
from langgraph.checkpoint.memory import InMemorySaver  # noqa: E402
from langgraph.graph import END, START, StateGraph  # noqa: E402
from langgraph.graph.message import add_messages  # noqa: E402
from langgraph.types import Command, interrupt  # noqa: E402
from typing_extensions import TypedDict  # noqa: E402

from sessiondb import Store  # noqa: E402
from sessiondb.integrations.langgraph import SessionDBSaver  # noqa: E402


class State(TypedDict):
    messages: Annotated[list, add_messages]
    approved: bool


def agent(state: State) -> dict[str, Any]:
    last = state["messages"][-1]
    n = len(state["messages"])
    return {"messages": [AIMessage(content=f"echo {last.content}", id=f"ai-{n}")]}


def review(state: State) -> dict[str, Any]:
    answer = interrupt({"question": "approve?", "last": state["messages"][-1].content})
    return {"approved": answer == "yes"}


def build(saver):
    g = StateGraph(State)
    g.add_node("agent", agent)
    g.add_node("review", review)
    g.add_edge(START, "agent")
    g.add_edge("agent", "review")
    g.add_edge("review", END)
    return g.compile(checkpointer=saver)


def plain(snapshot) -> dict[str, Any]:
    values = dict(snapshot.values)
    values["messages"] = [(type(m).__name__, m.id, m.content) for m in values.get("messages", [])]
    return {"values": values, "next": snapshot.next, "step": snapshot.metadata.get("step"),
            "source": snapshot.metadata.get("source"),
            "interrupts": [i.value for t in snapshot.tasks for i in t.interrupts]}


def scenario(saver) -> list[Any]:
    graph = build(saver)
    cfg = {"configurable": {"thread_id": "t-1"}}
    seen: list[Any] = []
    out = graph.invoke({"messages": [HumanMessage(content="hi", id="h1")], "approved": False}, cfg)
    seen.append(("interrupted", "__interrupt__" in out))
    seen.append(plain(graph.get_state(cfg)))
    graph.invoke(Command(resume="yes"), cfg)
    seen.append(plain(graph.get_state(cfg)))
    graph.invoke({"messages": [HumanMessage(content="more", id="h2")]}, cfg)
    graph.invoke(Command(resume="no"), cfg)
    seen.append(plain(graph.get_state(cfg)))
    history = list(graph.get_state_history(cfg))
    seen.append([plain(s) for s in history])
    # time travel: replay from the checkpoint before the first agent step
    before_agent = next(s for s in history if s.next == ("agent",) and len(s.values["messages"]) == 1)
    graph.invoke(None, before_agent.config)
    seen.append(plain(graph.get_state(cfg)))
    # fork: update_state on an old checkpoint, then run on
    forked = graph.update_state(before_agent.config, {"messages": [HumanMessage(content="edited", id="h1")]})
    seen.append(plain(graph.get_state(forked)))
    graph.invoke(None, forked)
    graph.invoke(Command(resume="yes"), cfg)
    seen.append(plain(graph.get_state(cfg)))
    seen.append(len(list(graph.get_state_history(cfg))))
    return seen


def test_same_states_as_in_memory_saver(tmp_path):
    expected = scenario(InMemorySaver())
    with Store.open(tmp_path / "store") as store:
        saver = SessionDBSaver(store)
        got = scenario(saver)
        assert got == expected
        # a new process (a new saver on the store) sees the same thread
        again = build(SessionDBSaver(store))
        cfg = {"configurable": {"thread_id": "t-1"}}
        assert plain(again.get_state(cfg)) == expected[-2]
        assert [plain(s) for s in again.get_state_history(cfg)] == [plain(s) for s in
                                                                    build(saver).get_state_history(cfg)]
        # the forks are sessiondb branches: the session has abandoned heads beside the current branch
        session = saver.session_of("t-1")
        history = store.history_view(session)
        assert len(history["heads"]) > len(store.view(session)["heads"])
        assert store.view(session)["session"]["title"] == "t-1"


def test_delete_thread_starts_the_thread_over(tmp_path):
    with Store.open(tmp_path / "store") as store:
        saver = SessionDBSaver(store)
        graph = build(saver)
        cfg = {"configurable": {"thread_id": "gone"}}
        graph.invoke({"messages": [HumanMessage(content="hi", id="h1")], "approved": False}, cfg)
        old = saver.session_of("gone")
        saver.delete_thread("gone")
        assert graph.get_state(cfg).values == {}
        assert SessionDBSaver(store).get_tuple(cfg) is None
        graph.invoke({"messages": [HumanMessage(content="again", id="h9")], "approved": False}, cfg)
        assert [m.content for m in graph.get_state(cfg).values["messages"]] == ["again", "echo again"]
        assert saver.session_of("gone") != old


def payload_bytes(store: Store, session: str, after: int = 0) -> int:
    """The bytes of the payloads of the thread's log (its events after event `after`)."""
    import json

    total = 0
    for event in store.history_view(session)["events"]:
        if event["meta_blob"] and event["event_id"] > after:
            meta = json.loads(store.blob(event["meta_blob"]))
            if meta.get("payload"):
                total += len(store.blob(meta["payload"]))
    return total


def test_a_growing_message_list_costs_what_changed(tmp_path):
    """Each step adds one ~1 KiB message: what each step stores stays about the same."""

    class Chat(TypedDict):
        messages: Annotated[list, add_messages]

    def talk(state: Chat) -> dict[str, Any]:
        n = len(state["messages"])
        return {"messages": [AIMessage(content=f"{n:04d}" + "x" * 1000, id=f"m{n}")]}

    g = StateGraph(Chat)
    g.add_node("talk", talk)
    g.add_edge(START, "talk")
    g.add_edge("talk", END)
    with Store.open(tmp_path / "store") as store:
        saver = SessionDBSaver(store)
        graph = g.compile(checkpointer=saver)
        cfg = {"configurable": {"thread_id": "long"}}
        per_step, seen = [], 0
        for k in range(60):
            graph.invoke({"messages": [HumanMessage(content=f"q{k}", id=f"q{k}")]}, cfg)
            session = saver.session_of("long")
            per_step.append(payload_bytes(store, session, seen))
            seen = store.high_water_counters(session)["event"]
        assert len(graph.get_state(cfg).values["messages"]) == 120
        # whole-state saving would store ~60 KiB per step by the end; ours stays near one message pair
        assert max(per_step[-10:]) < 2 * max(per_step[:10]) and max(per_step[-10:]) < 12_000


def test_through_the_fleet_same_states(fleet):
    """Writes through a `SessionClient`, values read from the fleet's root (read-only)."""
    from sessiondb import SessionClient

    expected = scenario(InMemorySaver())
    fleet.writer()
    fleet.worker("reader")
    with SessionClient(fleet.settings) as client:
        saver = SessionDBSaver(client)
        try:
            assert scenario(saver) == expected
            session = saver.session_of("t-1")
        finally:
            saver.close()
    with fleet.store() as store:  # what the fleet's writer committed, read directly
        again = build(SessionDBSaver(store))
        assert plain(again.get_state({"configurable": {"thread_id": "t-1"}})) == expected[-2]
        assert store.view(session)["session"]["title"] == "t-1"
