"""How receipts travel from the writer back to the producer that sent the writes.

Design: every `SessionClient` owns one Redis list, `sessiondb:receipts:<client id>`,
named in each broker message it sends (`reply_to`). After a group commit is durable the
writer appends, per broker message, ONE JSON item `{"receipts": [...]}` to that list
(one pipelined round trip for the whole group, before the messages are acknowledged) and
refreshes the list's TTL. The client's receiver thread pops items with BLPOP and hands
each receipt to the waiting handle by write id. A redelivered message (writer killed
between commit and ack) produces the same receipts again from the store's write-id
table; the client ignores receipts it already has. Messages sent without `reply_to`
(a bare `celery call`) get their receipts as the Celery task result instead.

Owns the key names and the encode/decode of receipt items. It must never decide
anything about commits (that is the writer) or retries (that is the client).
"""

from __future__ import annotations

from typing import Any

import msgspec

PREFIX = "sessiondb:receipts:"


def reply_key(client_id: str) -> str:
    return PREFIX + client_id


_encode = msgspec.json.Encoder(enc_hook=str).encode


def encode(receipts: list[dict[str, Any]]) -> bytes:
    return _encode({"receipts": receipts})


def decode(item: bytes | str) -> list[dict[str, Any]]:
    return msgspec.json.decode(item)["receipts"]


def push(pipe: Any, key: str, receipts: list[dict[str, Any]], ttl_s: int) -> None:
    """Queue the append of one receipt item on a Redis pipeline (the caller executes it)."""
    pipe.rpush(key, encode(receipts))
    pipe.expire(key, ttl_s)
