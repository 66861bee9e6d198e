"""One synchronous interface over a `Store` (embedded) and a `SessionClient` (the fleet).

Owns: committing one write and waiting for its durable receipt (raising the store's own
`StoreError` on a rejection), and the few reads the integrations need. It never imports
Celery itself (a `SessionClient` brings it) and never writes anything but what it is given.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from ..store import NotFoundError, Store


class Backend:
    """A `Store` or a `SessionClient` behind the same blocking calls.

    With a `SessionClient`, a write waits for the writer's receipt (`receipt_timeout` s) and
    reads go through the fleet's `reads` queue (a `reader` worker must run).
    """

    def __init__(self, target: Any, *, receipt_timeout: float = 60.0, reader: Store | None = None) -> None:
        if isinstance(target, Backend):
            target = target.target
        if not isinstance(target, Store) and not (hasattr(target, "submit") and hasattr(target, "read")):
            raise TypeError(f"expected a sessiondb.Store or a sessiondb.SessionClient, got {type(target).__name__}")
        self.target = target
        self.embedded = isinstance(target, Store)
        self.receipt_timeout = receipt_timeout
        self._reader = target if self.embedded else reader
        self._own_reader = False

    def close(self) -> None:
        """Close the read-only store this backend opened itself (never the target)."""
        if self._own_reader and self._reader is not None:
            self._reader.close()
            self._reader, self._own_reader = None, False

    def write(self, session: str, events: list[dict[str, Any]], write_id: str | None = None) -> dict[str, Any]:
        """Commit one write; its receipt once durable. Raises the rejection's `StoreError`."""
        write = {"write_id": write_id or f"int-{uuid.uuid4().hex}", "session": session, "events": events}
        if self.embedded:
            return self.target.commit(write)
        return self.target.submit(write).receipt(self.receipt_timeout, raise_on_reject=True)

    def exists(self, name: str) -> bool:
        """Does a session or alias of this name exist?"""
        try:
            self.resolve(name)
        except NotFoundError:
            return False
        return True

    def resolve(self, name: str) -> tuple[str, str | None]:
        if self.embedded:
            return self.target.resolve(name)
        sid, head = self.target.read("resolve", name)
        return sid, head

    def view(self, session: str, head: str | None = None) -> dict[str, Any]:
        return self.target.view(session, head)

    def messages(self, session: str) -> list[dict[str, Any]]:
        """The current branch's message rows with their content."""
        return self.target.message_records(session, include_content=True)

    def current_head(self, session: str) -> str | None:
        return self.target.current_head_id(session)

    def counters(self, session: str) -> dict[str, int]:
        return self.target.high_water_counters(session)

    def history(self, session: str) -> dict[str, Any]:
        return self.target.history_view(session)

    def blob(self, blob_id: str) -> bytes:
        """A payload's bytes. With a `SessionClient` they are read from the fleet's root, opened
        read-only (the `reads` queue serves no payloads): the reader given, or the root of the
        client's settings."""
        if self._reader is None:
            self._reader = Store.open_readonly(self.target.settings.root)
            self._own_reader = True
        return self._reader.blob(blob_id)

    def annotations(self, history: dict[str, Any], types: tuple[str, ...],
                    after: int = 0) -> list[tuple[int, str, dict[str, Any], str | None]]:
        """The annotations of `types` in a `history_view`, after event `after`, in order:
        `(event id, type, fields, text payload or None)`."""
        out = []
        for event in history["events"]:
            if event["type"] in types and event["meta_blob"] and event["event_id"] > after:
                meta = json.loads(self.blob(event["meta_blob"]))
                payload = self.blob(meta["payload"]).decode("utf-8") if meta.get("payload") else None
                out.append((event["event_id"], event["type"], meta["fields"], payload))
        return out
