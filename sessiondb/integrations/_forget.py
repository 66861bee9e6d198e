"""What becomes of a framework id's session when the framework clears or deletes it.

Owns the one "forget the old session" step of the integrations and the check for it; the
generation scheme (`_names`) moves the framework id on to a fresh session afterwards. It
never changes the rows of a session it forgets.

Today the old session is only made unreachable from the framework id: it gets the alias
`<session>.forgotten`, and a session with that alias is skipped when the id is looked up.
Its rows stay in the store (`sessiondb history` still shows them).
"""

from __future__ import annotations

from ._backend import Backend


def forgotten_alias(session: str) -> str:
    return f"{session}.forgotten"


def forget(backend: Backend, session: str) -> None:
    """Forget `session` (it exists): the framework id that named it starts over."""
    # TODO(merge): Store.delete_session — call backend.target.delete_session(session, reason=...)
    backend.write(session, [{"type": "alias/set", "alias": forgotten_alias(session)}],
                  write_id=f"forget:{session}")


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
