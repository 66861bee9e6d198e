"""`sessiondb flower`: Flower for the fleet, with basic auth when configured and metrics.

Runs Flower inside this process (as `celery -A sessiondb.tasks flower` would) after registering
`ops.flower_metrics`, so Flower's `/metrics` carries Flower's task/worker metrics AND
sessiondb's queue depth and group-commit gauges. Must never start workers.
"""

from __future__ import annotations

from celery import Celery

from sessiondb.store import Settings
from sessiondb.tasks.celery_app import run_celery

from . import flower_metrics


def flower_argv(settings: Settings, port: int, address: str) -> list[str]:
    argv = ["flower", f"--port={port}", f"--address={address}"]
    if settings.flower_basic_auth:
        argv.append(f"--basic-auth={settings.flower_basic_auth}")
    return argv


def run_flower(app: Celery, settings: Settings, port: int | None = None, address: str = "127.0.0.1") -> int:
    """Run Flower until it is stopped; returns its exit code."""
    flower_metrics.register(app.conf.broker_url, settings.root)
    return run_celery(app, flower_argv(settings, port or settings.flower_port, address))
