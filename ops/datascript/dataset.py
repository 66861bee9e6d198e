"""Seeded generator of session-like tx data (shared by the differential tests and the benchmark)."""

from __future__ import annotations

import random
from typing import Any

SCHEMA: dict[str, dict[str, str]] = {
    "session/id": {"db/unique": "db.unique/identity"},
    "session/tags": {"db/cardinality": "db.cardinality/many"},
    "session/parent": {"db/valueType": "db.type/ref"},
    "message/id": {"db/unique": "db.unique/identity"},
    "message/session": {"db/valueType": "db.type/ref"},
    "message/turn": {"db/valueType": "db.type/ref"},
    "turn/id": {"db/unique": "db.unique/identity"},
    "turn/session": {"db/valueType": "db.type/ref"},
    "head/id": {"db/unique": "db.unique/identity"},
    "head/session": {"db/valueType": "db.type/ref"},
    "head/basis": {"db/valueType": "db.type/ref"},
    "call/id": {"db/unique": "db.unique/identity"},
    "call/session": {"db/valueType": "db.type/ref"},
    "call/turn": {"db/valueType": "db.type/ref"},
    "invocation/id": {"db/unique": "db.unique/identity"},
    "invocation/caller": {"db/valueType": "db.type/ref"},
    "invocation/callee": {"db/valueType": "db.type/ref"},
    "derivation/id": {"db/unique": "db.unique/identity"},
    "derivation/source-head": {"db/valueType": "db.type/ref"},
    "derivation/target": {"db/valueType": "db.type/ref"},
}

IDENTITIES = [a for a, p in SCHEMA.items() if p.get("db/unique") == "db.unique/identity"]
ROLES = ["system", "user", "assistant", "observation"]
STATUSES = ["running", "stopped", "error"]
MODELS = ["gpt-a", "gpt-b", "claude-c", "local-d"]
TAGS = ["alpha", "beta", "gamma", "delta"]


def session_txs(
    seed: int, sessions: int, messages: int = 6, turns: int = 3, heads: int = 5, calls: int = 2
) -> list[list[dict[str, Any]]]:
    """One transaction per session (plus one for cross-session invocations/derivations)."""
    rnd = random.Random(seed)
    txs: list[list[dict[str, Any]]] = []
    all_heads: list[str] = []
    for s in range(sessions):
        sid = f"s{s}"
        tx: list[dict[str, Any]] = []
        sess: dict[str, Any] = {
            "session/id": sid,
            "session/title": f"session {s} {rnd.choice(['alpha', 'beta', 'gamma'])}",
            "session/status": rnd.choice(STATUSES),
            "session/created": rnd.randrange(1_000_000),
            "session/tags": rnd.sample(TAGS, rnd.randrange(0, 3)),
        }
        if not sess["session/tags"]:
            del sess["session/tags"]
        if s and rnd.random() < 0.3:
            sess["session/parent"] = ["session/id", f"s{rnd.randrange(s)}"]
        tx.append(sess)
        nturns = rnd.randrange(1, turns + 1)
        for t in range(nturns):
            tx.append(
                {
                    "turn/id": f"{sid}:t{t}",
                    "turn/session": sid,
                    "turn/status": rnd.choice(["final", "error", "running"]),
                    "turn/index": t,
                }
            )
        for m in range(rnd.randrange(1, messages + 1)):
            tx.append(
                {
                    "message/id": f"{sid}:m{m}",
                    "message/session": sid,
                    "message/role": rnd.choice(ROLES),
                    "message/chars": rnd.randrange(1, 5000),
                    "message/turn": f"{sid}:t{rnd.randrange(nturns)}",
                }
            )
        hs: list[str] = []
        for h in range(rnd.randrange(1, heads + 1)):
            hid = f"{sid}:h{h}"
            head: dict[str, Any] = {
                "head/id": hid,
                "head/session": sid,
                "head/kind": "initial" if h == 0 else rnd.choice(["turn-final", "compaction"]),
            }
            if hs:  # branching ancestry: usually the previous head, sometimes an older one
                head["head/basis"] = hs[-1] if rnd.random() < 0.8 else rnd.choice(hs)
            hs.append(hid)
            tx.append(head)
        all_heads += hs
        for c in range(rnd.randrange(0, calls + 1)):
            tx.append(
                {
                    "call/id": f"{sid}:c{c}",
                    "call/session": sid,
                    "call/model": rnd.choice(MODELS),
                    "call/tokens": rnd.randrange(10, 4000),
                    "call/status": rnd.choice(["ok", "failed"]),
                    "call/turn": f"{sid}:t{rnd.randrange(nturns)}",
                }
            )
        # the tempid of each entity is its identity string, so refs inside a tx are just those strings
        txs.append(_resolve_refs(tx))
    extra: list[dict[str, Any]] = []
    for i in range(max(1, sessions // 4)):
        a, b = rnd.randrange(sessions), rnd.randrange(sessions)
        extra.append(
            {
                "invocation/id": f"inv{i}",
                "invocation/caller": ["session/id", f"s{a}"],
                "invocation/callee": ["session/id", f"s{b}"],
                "invocation/status": rnd.choice(["ok", "failed"]),
            }
        )
        src = rnd.choice(all_heads)
        extra.append(
            {
                "derivation/id": f"d{i}",
                "derivation/source-head": ["head/id", src],
                "derivation/target": ["session/id", f"s{b}"],
                "derivation/kind": rnd.choice(["fork", "resume"]),
            }
        )
    txs.append(extra)
    return txs


def _resolve_refs(tx: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for ent in tx:
        ident_attr = next(a for a in ent if a in IDENTITIES)
        out.append({"db/id": ent[ident_attr], **ent})
    return out
