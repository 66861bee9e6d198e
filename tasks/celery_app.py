"""The one Celery application of sessiondb, built from `store.Settings`.

Owns the Celery configuration: broker and result backend, serializers (JSON only; the
workers refuse pickle and anything else), late acknowledgement, the Redis visibility
timeout, queues and routes (from `tasks.routing`), the beat schedule (from
`tasks.schedule`) and the writer's consumer step. It must never open a store or talk to
the broker at import time.
"""

from __future__ import annotations

from pathlib import Path

from celery import Celery

from sessiondb.store import Settings

from . import routing, schedule

#: written by `sessiondb up` when it starts its private Redis, read by later commands: the
#: producers' URL (a Redis user that can only publish writes and reads and take its receipts) ...
BROKER_FILE = "fleet/broker_url"
#: ... and the workers' (beat's, Flower's) URL, for a worker started by hand beside that fleet
WORKER_BROKER_FILE = "fleet/worker_broker_url"
#: kombu's Redis transport with an atomic pop of the `writes` queue (see tasks/transport.py)
BROKER_TRANSPORT = "sessiondb.tasks.transport:Transport"
#: the conventional local Redis: only a last resort for a bare `celery -A sessiondb.tasks ...`
FALLBACK_BROKER = "redis://127.0.0.1:6379/0"

TASK_MODULES = ("sessiondb.tasks.writes", "sessiondb.tasks.index", "sessiondb.tasks.integrity", "sessiondb.tasks.reads")


def configured_broker(settings: Settings, *, worker: bool = False) -> str:
    """The broker URL: `SESSIONDB_BROKER_URL`, else the one a running `sessiondb up` wrote (its
    workers' URL for a `worker`, else its producers'), else ""."""
    if settings.broker_url:
        return settings.broker_url
    for name in (WORKER_BROKER_FILE, BROKER_FILE) if worker else (BROKER_FILE,):
        try:
            return (Path(settings.root) / name).read_text(encoding="utf-8").strip()
        except OSError:
            continue
    return ""


def make_app(settings: Settings, *, worker: bool = False) -> Celery:
    """The app for a producer (`SessionClient`), or with `worker` for a worker, beat or Flower
    (which take a `sessiondb up`'s workers' URL when they find no `SESSIONDB_BROKER_URL`)."""
    broker = configured_broker(settings, worker=worker) or FALLBACK_BROKER
    app = Celery("sessiondb", broker=broker, backend=settings.result_backend or broker, include=TASK_MODULES)
    transport = {"visibility_timeout": settings.visibility_timeout_s}
    # body_encoding utf-8: a JSON body travels as it is, not base64 inside the JSON envelope
    # (a third less to send and store, no base64 on either side); messages of either kind decode
    # priority_steps [0]: one Redis list per queue (no priorities), so the writer can pop `writes`
    # with one atomic BLMOVE (tasks/transport.py)
    broker_transport = {**transport, "body_encoding": "utf-8", "priority_steps": [0]}
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        event_serializer="json",
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        broker_transport_options=broker_transport,
        broker_transport=BROKER_TRANSPORT if broker.startswith(("redis://", "rediss://")) else None,
        result_backend_transport_options=transport,
        broker_connection_retry_on_startup=True,
        task_queues=routing.TASK_QUEUES,
        task_routes=routing.TASK_ROUTES,
        task_default_queue=routing.READS,
        task_create_missing_queues=False,
        worker_send_task_events=settings.task_events,  # Flower enables them when it watches
        result_expires=24 * 3600,
        result_extended=False,
        timezone="UTC",
        enable_utc=True,
        beat_schedule=schedule.beat_schedule(settings),
    )
    app.sessiondb_settings = settings
    # The writer's flock + takeover step; a string so that tasks/ never imports workers/.
    app.steps["consumer"].add("sessiondb.workers.writer_step:WriterLockStep")
    return app


def run_celery(app: Celery, argv: list[str]) -> int:
    """Run a `celery` sub-command (worker, beat, flower) on `app` in this process; its exit code.

    As `app.start(argv)` does, but keeping the exit code: Celery's `start` and `worker_main`
    drop it, so a worker that died of an unrecoverable error (its store would not open)
    would otherwise exit 0 and look like a clean stop to a supervisor."""
    from celery.bin.celery import celery

    celery.params[0].default = app
    try:
        code = celery.main(args=argv, standalone_mode=False)
    finally:
        celery.params[0].default = None
    return code if isinstance(code, int) else 0


def settings_of(app: Celery) -> Settings:
    """The Settings an app was built from (workers read their store root from here)."""
    return app.sessiondb_settings


#: the application every worker, beat and Flower in this process uses (`celery -A sessiondb.tasks`)
app = make_app(Settings.from_env(), worker=True)
