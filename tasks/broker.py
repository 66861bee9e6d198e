"""Is the broker there? One Redis PING with a deadline, and broker URLs fit to print.

Producers (`SessionClient.ping`, `sessiondb write`) and the launcher (`sessiondb up`) ask
this before they rely on the broker, so that a broker nobody listens on is reported as
such within the caller's timeout, instead of as a missing receipt much later. Owns only
that check; it must never send a task.
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit, urlunsplit

import redis

from .errors import BrokerUnreachableError


def printable_url(url: str) -> str:
    """The URL with its password masked (it ends up in error messages and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def check_broker(url: str, timeout: float) -> None:
    """Return once the Redis at `url` answers PING; `BrokerUnreachableError` if it does not within
    `timeout` seconds (retrying meanwhile: a broker that is just starting is not an error)."""
    if urlsplit(url).scheme not in ("redis", "rediss", "unix"):
        return  # not a Redis broker: Celery's own connection retries are all we have
    deadline = time.monotonic() + max(0.0, timeout)
    reason = "no answer"
    while True:
        left = deadline - time.monotonic()
        # Each attempt is bounded by what is left of the deadline: an address that drops packets
        # would otherwise hang in connect() for the kernel's timeout (minutes).
        step = min(max(left, 0.1), 2.0)
        client = redis.Redis.from_url(url, socket_connect_timeout=step, socket_timeout=step)
        try:
            if client.ping():
                return
        except (redis.RedisError, OSError) as exc:
            reason = str(exc) or type(exc).__name__
        finally:
            client.close()
        if time.monotonic() + 0.2 >= deadline:
            raise BrokerUnreachableError(printable_url(url), reason, timeout)
        time.sleep(0.2)
