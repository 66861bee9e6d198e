"""`sessiondb flower`: Flower for the fleet, behind a login, with metrics.

Runs Flower inside this process (as `celery -A sessiondb.tasks flower` would) after registering
`ops.flower_metrics`, so Flower's `/metrics` carries Flower's task/worker metrics AND
sessiondb's queue depth and group-commit gauges. Must never start workers.

Flower always asks for a login (HTTP basic auth): `SESSIONDB_FLOWER_BASIC_AUTH`
("user:password"), else the Flower login generated once and kept 0600 in
`<root>/fleet/credentials` (`ops.credentials`, the same one `sessiondb up` prints when it
generates it). `/metrics` is behind the same login (Flower itself leaves it open); only
`/healthcheck` answers without one. The API calls that return a task's stored result are
closed (403): a read's result holds message contents. Binding an address beyond loopback needs an explicit
`SESSIONDB_FLOWER_BASIC_AUTH`: a generated password nobody was told is no login to publish.
The password is handed to Flower inside this process, never on a command line.
"""

from __future__ import annotations

import sys
from pathlib import Path

from celery import Celery

from sessiondb.store import Settings
from sessiondb.tasks.celery_app import run_celery

from . import credentials, flower_metrics

LOOPBACK = ("127.0.0.1", "localhost", "::1")


class FlowerAuthError(ValueError):
    """Flower would run without a usable login where one is needed."""


def basic_auth_for(settings: Settings, address: str, say=lambda line: print(line, file=sys.stderr)) -> str:
    """The "user:password" Flower asks for; `FlowerAuthError` for a bad one, or for an address beyond
    loopback without an explicit `SESSIONDB_FLOWER_BASIC_AUTH`."""
    auth = settings.flower_basic_auth
    if auth:
        user, _, password = auth.partition(":")
        if not (user and password):
            raise FlowerAuthError("SESSIONDB_FLOWER_BASIC_AUTH must be user:password (both non-empty)")
        return auth
    if address not in LOOPBACK:
        raise FlowerAuthError(f"refusing to bind Flower to {address} without a login: set "
                              "SESSIONDB_FLOWER_BASIC_AUTH=user:password (or bind 127.0.0.1)")
    creds, new = credentials.load_or_create(Path(settings.root))
    if new:
        say(f"flower: login {creds.flower_user} / {creds.flower_password} (printed once, kept in "
            f"{Path(settings.root) / credentials.CREDENTIALS_FILE})")
    return creds.flower_basic_auth


#: how long Flower waits for workers to answer an inspection (its default, 1 s, is shorter than a
#: busy 2-core machine needs: every miss is a WARNING "Inspect method ... failed" in its log)
INSPECT_TIMEOUT_MS = 10_000


def flower_argv(port: int, address: str, basic_auth: str) -> list[str]:
    return ["flower", f"--port={port}", f"--address={address}", f"--basic-auth={basic_auth}",
            f"--inspect_timeout={INSPECT_TIMEOUT_MS}"]


def _results_not_shown(*_args: object, **_kwargs: object) -> None:
    from tornado import web

    raise web.HTTPError(403, "sessiondb: task results are not shown here (reads carry session content)")


def protect_flower() -> None:
    """Put Flower's `/metrics` behind its login, as its API is (Flower serves it to anyone), and
    close the two API calls that return a task's stored result (`/api/task/result/<id>`, and
    `/api/task/apply/<name>`, which waits for one): a read's result holds message contents."""
    from flower.api import tasks
    from flower.views import monitor
    from tornado import web

    if getattr(monitor.Metrics.get, "sessiondb_authenticated", False):
        return
    monitor.Metrics.get = web.authenticated(monitor.Metrics.get)
    monitor.Metrics.get.sessiondb_authenticated = True
    tasks.TaskResult.get = web.authenticated(_results_not_shown)
    tasks.TaskApply.post = web.authenticated(_results_not_shown)


def run_flower(app: Celery, settings: Settings, port: int | None = None, address: str = "127.0.0.1") -> int:
    """Run Flower until it is stopped; returns its exit code."""
    basic_auth = basic_auth_for(settings, address)
    protect_flower()
    flower_metrics.register(app.conf.broker_url, settings.root)
    return run_celery(app, flower_argv(port or settings.flower_port, address, basic_auth))
