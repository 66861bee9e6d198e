"""One group commit: many broker messages' writes -> ONE `store.commit_many` -> receipts per message.

Owns the mapping between broker messages and the flat list of writes handed to the
store. Bad input is the store's to reject (it validates every write and answers each bad
one with a rejection receipt, in order). An unexpected exception from the store is retried
write by write so that one poison write cannot stall the group; an environmental failure
(disk, SQLite busy/IO) is raised as `RetryLater` so that the caller requeues the messages
instead of rejecting good writes.
Must never talk to the broker.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import OperationalError

from sessiondb.store import InternalError, Store
from sessiondb.store.writes.commit import rejection

log = logging.getLogger(__name__)

Receipt = dict[str, Any]


class RetryLater(Exception):
    """The store could not commit for an environmental reason; requeue, do not reject."""


@dataclass
class Delivery:
    """One broker message in the group: its writes and where their receipts go."""

    task_id: str
    writes: list[Any]
    reply_to: str | None
    message: Any = None
    ack: Any = None
    reject: Any = None
    receipts: list[Receipt] = field(default_factory=list)
    widened: bool = False  # the prefetch window was widened for it (narrowed again when it is settled)
    size: int = 0  # bytes of its raw body (the group's bytes are bounded)
    generation: int = 0  # the consumer generation it was delivered in (`WriterRuntime.generation`)


def commit_group(store: Store, deliveries: Sequence[Delivery]) -> None:
    """Commit every write of every delivery in one transaction; fills `delivery.receipts`."""
    batches = [d.writes if isinstance(d.writes, list) else [d.writes] for d in deliveries]
    receipts = iter(_commit(store, [write for batch in batches for write in batch]))
    for delivery, batch in zip(deliveries, batches, strict=True):
        delivery.receipts = [next(receipts) for _ in batch]


def _commit(store: Store, writes: list[dict[str, Any]]) -> list[Receipt]:
    if not writes:
        return []
    try:
        return store.commit_many(writes)
    except (OperationalError, OSError) as exc:
        raise RetryLater(str(exc)) from exc
    except Exception:  # noqa: BLE001 - isolate the poison write below
        log.exception("group commit of %d writes failed; retrying them one by one", len(writes))
    receipts = []
    for write in writes:
        try:
            receipts.extend(store.commit_many([write]))
        except (OperationalError, OSError) as exc:
            raise RetryLater(str(exc)) from exc
        except Exception as exc:  # noqa: BLE001 - the writer must outlive any input
            log.exception("write %r could not be committed", getattr(write, "get", lambda _: None)("write_id"))
            receipts.append(rejection(write, InternalError(f"{type(exc).__name__}: {exc}")))
    return receipts
