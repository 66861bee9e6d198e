"""Realistic simulated agent traffic: the session writes an agent runtime would send.

`agent_session(session, turns)` yields the writes of one agent: a session that runs turns
(user message, an LLM call with token counts, a code eval, an assistant answer, a REPL
snapshot, an immutable head per turn), then resumes from an older head and continues on a
new branch. `fork_and_invoke(parent, child)` forks a session from a head and invokes a
child session. Used by `sessiondb demo`, the tests and the benchmarks. Produces plain data
only; it never talks to a store or a broker.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

Write = dict[str, Any]


def _w(session: str, write_id: str, *events: dict[str, Any]) -> Write:
    return {"write_id": write_id, "session": session, "events": list(events)}


def agent_session(session: str, turns: int = 3, seed: int = 0, resume: bool = True) -> Iterator[Write]:
    rng = random.Random(seed)
    yield _w(session, f"{session}:start", {"type": "session/started", "title": f"demo agent {session}"},
             {"type": "message/added", "role": "system", "content": "You are a careful coding agent."})
    head = None
    heads: list[str] = []
    for turn in range(1, turns + 1):
        tokens_in, tokens_out = rng.randint(200, 4000), rng.randint(20, 800)
        new_head = f"{session}-h{turn}"
        yield _w(session, f"{session}:turn{turn}",
                 {"type": "turn/started", "head_before": head},
                 {"type": "message/added", "role": "user", "content": f"task {turn}: sum the first {turn * 10} squares",
                  "turn": turn},
                 {"type": "call/started", "turn": turn, "model": rng.choice(["gpt-5", "claude-5", "gemini-3"]),
                  "provider": "demo", "request": {"messages": turn * 2, "temperature": 0.2}},
                 {"type": "call/put", "call_id": turn, "status": "completed", "input_tokens": tokens_in,
                  "output_tokens": tokens_out, "cost": round((tokens_in + 4 * tokens_out) * 1e-6, 6),
                  "response": {"content": f"sum(i*i for i in range({turn * 10}))"}},
                 {"type": "eval/added", "turn": turn, "code": f"sum(i*i for i in range({turn * 10}))",
                  "result": sum(i * i for i in range(turn * 10))},
                 {"type": "message/added", "role": "assistant", "turn": turn,
                  "content": f"The answer is {sum(i * i for i in range(turn * 10))}."},
                 {"type": "snapshot/added", "turn": turn, "vars": {"n": turn * 10, "last": turn}},
                 {"type": "head/created", "head_id": new_head, "turn": turn, "snapshot": turn,
                  "final": f"answer {turn}", "expected_head": head},
                 {"type": "turn/put", "turn_id": turn, "status": "final", "final": f"answer {turn}",
                  "head_after": new_head})
        heads.append(new_head)
        head = new_head
    if resume and len(heads) >= 2:
        older = heads[-2]
        yield _w(session, f"{session}:resume",
                 {"type": "session/restored", "kind": "resume", "source_head": older, "expected_head": head},
                 {"type": "message/added", "role": "user", "content": "let's try that last step differently"})


def fork_and_invoke(parent: str, fork: str, child: str) -> Iterator[Write]:
    """A fork of `parent` from its first head, and `parent` invoking a child session."""
    yield _w(fork, f"{fork}:start", {"type": "session/started", "title": f"fork of {parent}"},
             {"type": "session/restored", "kind": "fork", "source_head": f"{parent}-h1"},
             {"type": "message/added", "role": "user", "content": "continue from the first answer, in the fork"})
    yield _w(child, f"{child}:start", {"type": "session/started", "title": "child helper", "kind": "child",
                                       "origin": "invocation", "parent": parent},
             {"type": "message/added", "role": "user", "content": "compute 2**10"},
             {"type": "head/created", "head_id": f"{child}-h1", "kind": "initial", "expected_head": None})
    yield _w(parent, f"{parent}:invoke", {"type": "invocation/started", "invocation_id": f"{parent}-inv1",
                                          "callee": child, "input": {"expr": "2**10"}})
    yield _w(parent, f"{parent}:invoked", {"type": "invocation/completed", "invocation_id": f"{parent}-inv1",
                                           "callee_head_after": f"{child}-h1", "final": 1024})
