"""What becomes of a framework id's session when the framework clears or deletes it.

Owns the one "forget the old session" step of the integrations and the check for it; the
generation scheme (`_names`) moves the framework id on to a fresh session afterwards.

Forgetting is the store's real delete (`Store.delete_session` / `SessionClient.delete_session`,
docs/forgetting.md): the session's rows, its unshared payloads, its facts in the log and the
index go, a tombstone stays, and the id is never written again — so the framework id starts
over on its next generation. With `detach`: a session that depends on it (a LangGraph
`copy_thread`, a fork) keeps what it inherited.
"""

from __future__ import annotations

from ..store import NotFoundError, SessionDeletedError
from ._backend import Backend

REASON = "cleared or deleted through a framework integration"


def forget(backend: Backend, session: str) -> None:
    """Delete `session` for real; the framework id that named it starts over."""
    try:
        backend.target.delete_session(session, detach=True, reason=REASON)
    except SessionDeletedError:
        pass  # deleted meanwhile (another process of the same framework): as wanted


def state(backend: Backend, session: str) -> str:
    """`"live"`, `"forgotten"` (deleted: its id is never written again), or `"free"` (never
    written: the next generation to use)."""
    try:
        backend.resolve(session)
    except SessionDeletedError:
        return "forgotten"
    except NotFoundError:
        return "free"
    return "live"


def current_generation(backend: Backend, name_of) -> tuple[int, bool]:
    """The generation a framework id writes to now, and whether its session exists yet.

    `name_of(n)` is the session name of generation n.
    """
    n = 1
    while True:
        s = state(backend, name_of(n))
        if s == "free":
            return n, False
        if s == "live":
            return n, True
        n += 1
