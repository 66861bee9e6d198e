"""Builders of session writes for tests (plain data, as a producer would send), and the CLI as a user runs it."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys

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


#: the CLI as a user runs it, in a subprocess
CLI = [sys.executable, "-m", "sessiondb.ops.cli"]


def run_cli(*args: str, root, **env_extra: str) -> subprocess.CompletedProcess:
    """`sessiondb ARGS --root ROOT` with no SESSIONDB_* from the caller's environment (plus `env_extra`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONDB_")} | env_extra
    return subprocess.run([*CLI, *args, "--root", str(root)], env=env, capture_output=True, text=True, timeout=120)
