"""Task-level errors: what a producer can meet besides the store's own `StoreError`s.

Owns the small hierarchy rooted in `FleetError`. It must never import Celery internals
or anything from workers/.
"""

from __future__ import annotations


class FleetError(Exception):
    """Base of the errors raised by the producer client and the fleet launcher."""


class NoBrokerError(FleetError):
    def __init__(self) -> None:
        super().__init__("no broker configured: start the fleet with `sessiondb up` or set SESSIONDB_BROKER_URL")


class ReceiptTimeout(FleetError, TimeoutError):
    def __init__(self, write_id: str, timeout: float | None) -> None:
        super().__init__(f"no receipt for write {write_id!r} within {timeout}s (is `sessiondb worker writer` running?)")
        self.write_id, self.timeout = write_id, timeout


class ClientClosedError(FleetError):
    def __init__(self) -> None:
        super().__init__("this SessionClient is closed")
