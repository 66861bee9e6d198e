"""Retention against a naive model (hypothesis): random appends, heads, resumes, forks, invocations,
retention runs and GC runs on a real store; after each run every remaining head's view and every
current branch equals what the model says it must be, nothing a rule protects is gone, and
`check` / `scan --full` stay clean.

The model is a list of message texts per head and per session's current branch: a head is a copy
of its session's branch when it was made; a resume makes the branch a copy of the head; a fork
starts with a copy of its source head; an append adds one text at the end. Nothing else.

Bounded for CI; `SESSIONDB_RETENTION_EXAMPLES=500` runs a longer search.
"""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from sessiondb.store import Store
from sessiondb.store.blobs.gc import collect_garbage
from sessiondb.store.forget.retention import apply_retention
from sessiondb.store.integrity import check_consistency, scan_blobs
from sessiondb.store.settings import Settings

EXAMPLES = int(os.environ.get("SESSIONDB_RETENTION_EXAMPLES", "10"))
LATER = timedelta(hours=2)  # retention's clock: everything written is older than its grace periods

_session = st.integers(0, 2)
op = st.one_of(
    st.tuples(st.just("append"), _session, st.integers(0, 5), st.booleans()),
    st.tuples(st.just("head"), _session),
    st.tuples(st.just("append"), _session, st.integers(0, 5), st.booleans()),
    st.tuples(st.just("head"), _session),
    st.tuples(st.just("resume"), st.just(0), st.integers(0, 20)),
    st.tuples(st.just("resume"), st.just(0), st.integers(0, 20)),
    st.tuples(st.just("fork"), st.just(0), st.integers(0, 20)),
    st.tuples(st.just("invoke"), _session, _session),
    st.tuples(st.just("retain"), st.integers(0, 3), st.booleans()),
    st.tuples(st.just("gc")),
)


class Model:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.sessions: list[str] = []
        self.current: dict[str, list[str]] = {}
        self.current_head: dict[str, str | None] = {}
        self.heads: dict[str, list[str]] = {}  # head -> its view's texts
        self.head_session: dict[str, str] = {}
        self.protected: set[str] = set()  # named by a derivation or an invocation
        self.n = 0

    def commit(self, session: str, *events: dict) -> None:
        self.n += 1
        receipt = self.store.commit({"write_id": f"w{self.n}", "session": session, "events": list(events)})
        assert receipt["status"] == "committed", receipt

    def session(self, i: int) -> str:
        if not self.sessions:
            self.new_session([])
        return self.sessions[i % len(self.sessions)]

    def new_session(self, texts: list[str], fork_of: str | None = None) -> str:
        sid = f"s{len(self.sessions)}"
        events: list[dict] = [{"type": "session/started"}]
        if fork_of is not None:
            events.append({"type": "session/restored", "kind": "fork", "source_head": fork_of})
            self.protected.add(fork_of)
        self.commit(sid, *events)
        self.sessions.append(sid)
        self.current[sid], self.current_head[sid] = list(texts), None
        return sid

    def heads_of(self, sid: str) -> list[str]:
        return [h for h, s in self.head_session.items() if s == sid]

    def apply(self, step: tuple) -> None:
        kind = step[0]
        if kind == "append":
            sid = self.session(step[1])
            body = f"{sid} message {step[2]} " + ("x" * 200 if step[3] else "")  # long: a blob file
            self.commit(sid, {"type": "message/added", "role": "user", "content": body})
            self.current[sid].append(body)
        elif kind == "head":
            sid = self.session(step[1])
            hid = f"{sid}-h{self.n}"
            self.commit(sid, {"type": "head/created", "head_id": hid, "expected_head": self.current_head[sid],
                              "final": f"final of {hid}"})
            self.heads[hid], self.head_session[hid] = list(self.current[sid]), sid
            self.current_head[sid] = hid
        elif kind in ("resume", "fork") and self.heads:
            hid = sorted(self.heads)[step[2] % len(self.heads)]
            if kind == "fork":
                self.new_session(self.heads[hid], fork_of=hid)
                return
            sid = self.head_session[hid]
            self.commit(sid, {"type": "session/restored", "kind": "resume", "source_head": hid,
                              "expected_head": self.current_head[sid]})
            self.current[sid], self.current_head[sid] = list(self.heads[hid]), hid
        elif kind == "invoke" and len(self.sessions) >= 1:
            caller, callee = self.session(step[1]), self.session(step[2])
            if caller == callee or self.current_head[caller] is None:
                return
            self.commit(caller, {"type": "invocation/started", "invocation_id": f"inv{self.n}", "callee": callee,
                                 "caller_head_before": self.current_head[caller]})
            self.protected.add(self.current_head[caller])  # type: ignore[arg-type]
        elif kind == "retain":
            before = self.stored_heads()
            report = apply_retention(self.store, keep_heads=step[1], abandoned_days=1 / 48 if step[2] else 0,
                                     now=datetime.now(UTC) + LATER)
            after = self.stored_heads()
            removed = before - after
            assert report.counts["heads_removed"] == len(removed)
            assert not removed & self.protected, removed & self.protected
            assert not removed & {h for h in self.current_head.values() if h}
            for hid in removed:
                del self.heads[hid], self.head_session[hid]
            removed_rows = sum(v for k, v in report.counts.items() if k.endswith("_removed"))
            event("retention removed something" if removed_rows else "retention removed nothing")
            self.verify()
        elif kind == "gc":
            collect_garbage(self.store, grace_hours=0)
            self.verify()

    def stored_heads(self) -> set[str]:
        with self.store.engine.connect() as conn, conn.begin():
            return set(conn.execute(text("SELECT head_id FROM heads")).scalars())

    def texts(self, view: dict) -> list[str]:
        blobs = {m["content_blob"] for m in view["messages"]}
        with self.store.engine.connect() as conn, conn.begin():
            from sessiondb.store.blobs import inline

            data = inline.read_many(conn, self.store.blobs, blobs)
        return [data[m["content_blob"]].decode() for m in view["messages"]]

    def verify(self) -> None:
        assert self.stored_heads() == set(self.heads)
        for sid in self.sessions:
            view = self.store.view(sid)
            assert self.texts(view) == self.current[sid], sid
            assert view["head"] == self.current_head[sid]
        for hid, want in self.heads.items():
            view = self.store.view(f"{self.head_session[hid]}#{hid}")
            assert self.texts(view) == want, hid
            assert {h["head_id"] for h in view["heads"]} <= set(self.heads)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op, min_size=6, max_size=30))
def test_retention_keeps_every_remaining_view_as_the_model_says(steps: list[tuple]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "store"
        store = Store.open(root, Settings.from_env(root=str(root), inline_max_bytes=128, retain_grace_hours=1,
                                                sqlite_synchronous="NORMAL"))
        try:
            model = Model(store)
            for step in [*steps, ("retain", 1, True), ("gc",)]:
                model.apply(step)
            check = check_consistency(store, save=False)  # once per example: it reads every table
            assert check.ok, check.findings
            scan = scan_blobs(store, full=True, grace_seconds=0)
            assert scan.ok, scan.findings
        finally:
            store.close()
