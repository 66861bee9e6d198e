"""Framework ids (OpenAI Agents session ids, LangGraph thread ids, ADK app/user/session ids)
onto sessiondb session names.

Owns the escaping scheme and nothing else (it reads and writes nothing):

    <prefix>:<key>:<generation>

* `key` is the framework id itself when it is 1-96 characters of letters, digits, `.`, `_`
  and `-` (the store's id alphabet less `:`); any other id (longer, with `/`, `:`, spaces,
  non-ASCII ...) becomes `:` + the first 32 hex digits of its blake3 hash. A plain key
  never holds a `:`, so the two forms never collide. The original id is kept as the
  session's title, so it still shows in `sessiondb view`.
* `generation` starts at 1; clearing a framework id (`clear_session`, `delete_thread`,
  `delete_session`) forgets that session and the id starts over on generation + 1
  (a deleted session id is never written again).
"""

from __future__ import annotations

import re

from blake3 import blake3

_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")


def key(framework_id: str) -> str:
    """The id as it appears in session names (see the module docstring)."""
    if not isinstance(framework_id, str):
        raise TypeError(f"a framework id must be a string, got {type(framework_id).__name__}")
    if _PLAIN.fullmatch(framework_id):
        return framework_id
    return ":" + blake3(framework_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def session_name(prefix: str, framework_id: str, generation: int) -> str:
    return f"{prefix}:{key(framework_id)}:{generation}"
