"""Branch membership: which events (and so which rows) belong to a head or a current branch.

A membership is `{session_id: [[lo, hi], ...]}`: sorted, disjoint, inclusive ranges of event
ids per session. Every row remembers the event that created it, so "the rows of a branch"
are the rows whose (session, event id) fall in these ranges. A session that appends
without ever restoring has one range; each restore that is continued from adds one; a
fork inherits its source's ranges under the source's session id without copying a row.
Pure functions on plain data; no I/O.
"""

from __future__ import annotations

Ranges = list[list[int]]
Membership = dict[str, Ranges]


def dump(membership: Membership) -> list[list[object]]:
    """The stored form: `[[session, ranges], ...]` in inheritance order (oldest ancestor first).

    A list, not an object, because canonical JSON sorts object keys and the order matters."""
    return [[session, ranges] for session, ranges in membership.items()]


def load(stored: list[list[object]]) -> Membership:
    return {session: ranges for session, ranges in stored}  # type: ignore[misc]


def add(ranges: Ranges, event_id: int) -> None:
    """Add one event id, in place. Appends (the normal case) are O(1)."""
    if ranges:
        last = ranges[-1]
        if last[1] + 1 == event_id:
            last[1] = event_id
            return
        if event_id > last[1]:
            ranges.append([event_id, event_id])
            return
    else:
        ranges.append([event_id, event_id])
        return
    merged = sorted([*map(list, ranges), [event_id, event_id]])
    ranges[:] = _normalize(merged)


def _normalize(ranges: Ranges) -> Ranges:
    out: Ranges = []
    for lo, hi in ranges:
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return out


def contains(membership: Membership, session: str, event_id: int) -> bool:
    return any(lo <= event_id <= hi for lo, hi in membership.get(session, ()))


def copy(membership: Membership) -> Membership:
    return {session: [list(r) for r in ranges] for session, ranges in membership.items()}


def inherit(own: Membership, inherited: Membership) -> Membership:
    """The membership of a fork: the source head's ranges plus the fork's own."""
    result = copy(inherited)
    for session, ranges in own.items():
        result[session] = _normalize(sorted(result.get(session, []) + [list(r) for r in ranges]))
    return result
