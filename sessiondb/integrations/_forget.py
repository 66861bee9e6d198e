"""What becomes of a framework id's session when the framework clears or deletes it.

Owns the one "forget the old session" step of the integrations and the check for it; the
generation scheme (`_names`) moves the framework id on to a fresh session afterwards. It
never changes the rows of a session it forgets.

Today the old session is only made unreachable from the framework id: it gets the alias
`<session>.forgotten` (a session with that alias is skipped when the id is looked up) and
the head `<session>.forgotten-head`. Its rows stay in the store (`sessiondb history` shows them).
"""

from __future__ import annotations

from ..store import HeadConflictError
from ._backend import Backend


def forgotten_alias(session: str) -> str:
    return f"{session}.forgotten"


def forget(backend: Backend, session: str) -> None:
    """Forget `session` (it exists): the framework id that named it starts over.

    Besides the alias, the session's current head moves on to the head
    `<session>.forgotten-head`, so a writer elsewhere that still appends to it by compare-and-set on the head it knew
    gets a head conflict, looks the id up again and moves on to the new generation."""
    # TODO(merge): Store.delete_session — call backend.target.delete_session(session, reason=...)
    # (a deleted session rejects every later write, which replaces the head trick below)
    for attempt in range(5):
        current = backend.current_head(session)
        try:
            backend.write(session, [{"type": "alias/set", "alias": forgotten_alias(session)},
                                    {"type": "head/created", "head_id": f"{session}.forgotten-head",
                                     "kind": "turn-final", "expected_head": current}])
            return
        except HeadConflictError:
            if attempt == 4:
                raise


def state(backend: Backend, session: str) -> str:
    """`"live"`, `"forgotten"`, or `"free"` (never written: the next generation to use)."""
    # TODO(merge): Store.delete_session — a deleted (tombstoned) session is "forgotten" too
    if not backend.exists(session):
        return "free"
    return "forgotten" if backend.exists(forgotten_alias(session)) else "live"


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
