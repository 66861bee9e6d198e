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


class BrokerUnreachableError(FleetError, ConnectionError):
    """Nobody answers at the broker URL (within the time the caller gave)."""

    def __init__(self, url: str, reason: str, timeout: float | None = None) -> None:
        within = f" within {timeout:g}s" if timeout is not None else ""
        super().__init__(f"cannot reach the broker at {url}{within}: {reason}")
        self.url, self.reason, self.timeout = url, reason, timeout


class FleetAlreadyRunningError(FleetError):
    """`sessiondb up` on a root where another `sessiondb up` runs."""

    def __init__(self, root: str, pid: int | None, broker_url: str, flower_url: str) -> None:
        super().__init__(
            f"a fleet is already running on {root}: launcher pid {pid or '?'}, broker {broker_url or '(starting)'},"
            f" Flower {flower_url or '(none)'}; stop it (Ctrl-C in its terminal, or kill {pid or 'it'}) first")
        self.root, self.pid, self.broker_url, self.flower_url = root, pid, broker_url, flower_url


class FleetStartError(FleetError):
    """The fleet did not become ready (a child exited, or the writer did not take its lock in time);
    everything that was started has been stopped again."""


class ReceiptTimeout(FleetError, TimeoutError):
    def __init__(self, write_id: str, timeout: float | None) -> None:
        super().__init__(f"no receipt for write {write_id!r} within {timeout}s (is `sessiondb worker writer` running?)")
        self.write_id, self.timeout = write_id, timeout


class ClientClosedError(FleetError):
    def __init__(self) -> None:
        super().__init__("this SessionClient is closed")
