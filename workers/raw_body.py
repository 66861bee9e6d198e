"""What the writer learns from a broker message without decoding it.

`max_write_bytes` is enforced on the raw message body before it is decoded: a 200 MB message
decoded into Python objects took the writer to 1.77 GiB. For a message over the limit
(`Settings.message_limit`), and for one whose body cannot be decoded at all (not JSON, or
JSON nested 10,000 deep), `undecoded_writes` finds the write ids and the reply list it names
with bounded regular-expression scans of the raw bytes (no Python object per value), so each
write still gets a rejection receipt and a dead-letter row. A write id is only found where it
is a JSON key, `"write_id": "<name>"` (an escaped quote inside a string cannot match); a nested
payload object with a `write_id` key yields one extra rejection for an id nobody waits for.
Must never commit anything.
"""

from __future__ import annotations

import re
from typing import Any

from sessiondb.store.errors import echo
from sessiondb.store.writes.model import Undecoded
from sessiondb.tasks import receipts

_WRITE_ID = re.compile(rb'"write_id"\s*:\s*"([A-Za-z0-9][A-Za-z0-9._:-]{0,127})"')
_REPLY_TO = re.compile(rb'"(' + re.escape(receipts.PREFIX.encode()) + rb'[A-Za-z0-9._:-]{1,200})"')
#: the reply list is the task's last argument: it is found in the body's tail
_TAIL_BYTES = 4096


def body_size(message: Any) -> int:
    """Bytes of the message's raw (still encoded) body."""
    body = getattr(message, "body", None)
    if isinstance(body, str):
        return len(body)  # at least as many bytes as characters; the exact count would copy it
    return len(body) if isinstance(body, bytes | bytearray | memoryview) else 0


def _raw(message: Any) -> bytes:
    body = message.body
    return body.encode("utf-8", "surrogatepass") if isinstance(body, str) else bytes(body)


def oversize_reason(size: int, limit: int) -> str:
    return f"message of {size} bytes; at most {limit}: not decoded (send smaller writes or fewer per message)"


def undecodable_reason(exc: BaseException) -> str:
    """Why a body could not be decoded, in one line (never the body itself: it may hold payloads)."""
    cause = exc.__cause__ or exc.__context__ or exc
    if isinstance(cause, RecursionError):
        detail = "nested too deeply to decode"
    else:
        detail = str(cause).splitlines()[0][:200] if str(cause) else type(cause).__name__
    return f"message body is not valid JSON ({detail}): not decoded"


#: how much of an undecodable body its dead letters keep (never the log: it may hold payloads)
EXCERPT_BYTES = 120


def body_excerpt(message: Any) -> str:
    """The start of the raw body, bounded and printable (`echo`): what a dead letter keeps of a
    body that could not be decoded, so that an operator can see what was sent."""
    raw = _raw(message)
    return echo(raw[:EXCERPT_BYTES].decode("utf-8", "backslashreplace")) + ("…" if len(raw) > EXCERPT_BYTES else "")


def undecoded_writes(message: Any, reason: str, max_writes: int) -> tuple[list[Undecoded], str | None]:
    """(one `Undecoded` per write id found in the raw body, at least one; the reply list or None),
    each to be rejected with `reason`."""
    raw = _raw(message)
    ids = []
    for match in _WRITE_ID.finditer(raw):
        ids.append(match.group(1).decode("ascii"))
        if len(ids) >= max_writes:
            break
    reply = _REPLY_TO.search(raw, max(0, len(raw) - _TAIL_BYTES))
    writes = [Undecoded(write_id, reason) for write_id in dict.fromkeys(ids)] or [Undecoded(None, reason)]
    return writes, reply.group(1).decode("ascii") if reply else None
