"""sessiondb's task layer: the Celery app, routing, task definitions and the producer client.

    from sessiondb.tasks import SessionClient     # producers
    celery -A sessiondb.tasks worker -Q writes -P solo   # the standard Celery form of `sessiondb worker writer`

Data flows one way: producers -> tasks -> workers -> store. This package must never
import workers/ (the writer's strategy and step are named by string) and never commits.
"""

from .celery_app import app, make_app
from .client import SessionClient, WriteHandle
from .errors import ClientClosedError, FleetError, NoBrokerError, ReceiptTimeout

__all__ = ["ClientClosedError", "FleetError", "NoBrokerError", "ReceiptTimeout", "SessionClient", "WriteHandle",
           "app", "make_app"]
