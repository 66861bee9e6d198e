"""Property: for random sequences of appends, heads, restores and forks, `view` equals a naive model.

The model copies whole message lists per branch and per head (what the compact membership
ranges avoid); the store must give the same answer for the current branch of every
session and for every head.
"""

from __future__ import annotations

import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sessiondb.store import Settings, Store


class Model:
    def __init__(self) -> None:
        self.branch: dict[str, list[tuple[str, int]]] = {}
        self.current: dict[str, str | None] = {}
        self.high: dict[str, int] = {}
        self.heads: dict[str, tuple[str, list[tuple[str, int]]]] = {}


def op_write(session: str, n: int, *events: dict) -> dict:
    return {"write_id": f"{session}-{n}", "session": session, "events": list(events)}


def test_views_match_a_naive_model(database_url, reset_database):
    # on PostgreSQL fewer examples (each commit is a round trip to the server and its fsync)
    @settings(max_examples=12 if database_url else 40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.data())
    def run(data):  # noqa: ANN001, ANN202
        views_match_the_model(data, database_url, reset_database)

    run()


def views_match_the_model(data, database_url, reset_database) -> None:  # noqa: ANN001
    model = Model()
    reset_database()  # each example starts from an empty store, on either backend
    with (tempfile.TemporaryDirectory() as root,
          Store.open(root, Settings.from_env(root=root, database_url=database_url)) as store):
        n = 0
        sessions = ["s0"]
        store.commit(op_write("s0", n, {"type": "session/started"}))
        model.branch["s0"], model.current["s0"], model.high["s0"] = [], None, 0
        for _ in range(data.draw(st.integers(5, 30))):
            n += 1
            session = data.draw(st.sampled_from(sessions))
            own_heads = [h for h, (s, _) in model.heads.items() if s == session]
            kind = data.draw(st.sampled_from(["append", "append", "head", "resume", "fork"]))
            if kind == "append":
                count = data.draw(st.integers(1, 3))
                store.commit(op_write(session, n, *[{"type": "message/added", "role": "user", "content": f"{n}.{i}"}
                                                    for i in range(count)]))
                for _ in range(count):
                    model.high[session] += 1
                    model.branch[session].append((session, model.high[session]))
            elif kind == "head":
                head = f"h{n}"
                store.commit(op_write(session, n, {"type": "head/created", "head_id": head,
                                                   "expected_head": model.current[session]}))
                model.heads[head] = (session, list(model.branch[session]))
                model.current[session] = head
            elif kind == "resume" and own_heads:
                head = data.draw(st.sampled_from(own_heads))
                store.commit(op_write(session, n, {"type": "session/restored", "kind": "resume", "source_head": head,
                                                   "expected_head": model.current[session]}))
                model.branch[session] = list(model.heads[head][1])
                model.current[session] = head
            elif kind == "fork" and model.heads:
                head = data.draw(st.sampled_from(sorted(model.heads)))
                fork = f"f{n}"
                store.commit(op_write(fork, n, {"type": "session/started"},
                                      {"type": "session/restored", "kind": "fork", "source_head": head}))
                sessions.append(fork)
                model.branch[fork], model.current[fork], model.high[fork] = list(model.heads[head][1]), None, 0

        def ids(view: dict) -> list[tuple[str, int]]:
            return [(m["session_id"], m["message_id"]) for m in view["messages"]]

        for session in sessions:
            assert ids(store.view(session)) == model.branch[session], session
            assert store.high_water_counters(session)["message"] == model.high[session]
        for head, (session, messages) in model.heads.items():
            assert ids(store.view(session, head=head)) == messages, head
