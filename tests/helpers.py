"""Builders of session writes for tests (plain data, as a producer would send)."""

from __future__ import annotations

import itertools

_ids = itertools.count(1)


def write(session: str, *events: dict, write_id: str | None = None) -> dict:
    """A session write with a fresh write id."""
    return {"write_id": write_id or f"w{next(_ids)}", "session": session, "events": list(events)}


def started(session: str, **fields) -> dict:
    return write(session, {"type": "session/started", **fields})


def message(content="hi", role="user", **fields) -> dict:
    return {"type": "message/added", "role": role, "content": content, **fields}


def head(head_id: str, expected, **fields) -> dict:
    return {"type": "head/created", "head_id": head_id, "expected_head": expected, **fields}
