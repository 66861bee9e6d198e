"""`reads.*` tasks: the store's read API as remote calls, for producers without the store root.

Each task returns an envelope: `{"ok": value}` or `{"error": StoreError.as_dict()}`, so a
"not found" reaches the producer as the same typed `StoreError` (see
`SessionClient.read`). Names and arguments mirror `Store` (docs/spec.md, Reads); `reads.query` asks
the derived Datalog index (`store.index`). This module must never write to the store.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from celery.worker.request import Request

from sessiondb.store import Store, StoreError
from sessiondb.store.datalog import DatalogError
from sessiondb.store.index import Index

from . import routing, scrub
from .celery_app import app, settings_of
from .stores import store_for


class ReadRequest(Request):
    """A read's request in the worker: its task events (what Flower shows) never carry the result,
    which holds message contents; only whether it was a value or an error."""

    def send_event(self, type: str, **fields: Any) -> None:
        if "result" in fields:
            fields["result"] = "'<read result not shown>'"
        super().send_event(type, **fields)


def _envelope(call: Callable[[Store], Any]) -> dict[str, Any]:
    try:
        return {"ok": call(store_for(app))}
    except StoreError as exc:
        return {"error": exc.as_dict()}


def _read_task(name: str):
    return app.task(name=routing.READS_PREFIX + name, acks_late=False, typing=True, Request=ReadRequest)


@_read_task("view")
def view(session: str, head: str | None = None) -> dict[str, Any]:
    return _envelope(lambda s: s.view(session, head))


@_read_task("history_view")
def history_view(session: str) -> dict[str, Any]:
    return _envelope(lambda s: s.history_view(session))


@_read_task("event_view")
def event_view(session: str) -> dict[str, Any]:
    return _envelope(lambda s: s.event_view(session))


@_read_task("message_records")
def message_records(session: str, include_content: bool = False, all_branches: bool = False) -> dict[str, Any]:
    return _envelope(lambda s: s.message_records(session, include_content, all_branches))


@_read_task("high_water_counters")
def high_water_counters(session: str) -> dict[str, Any]:
    return _envelope(lambda s: s.high_water_counters(session))


@_read_task("current_head_id")
def current_head_id(session: str) -> dict[str, Any]:
    return _envelope(lambda s: s.current_head_id(session))


@_read_task("call_records")
def call_records(session: str) -> dict[str, Any]:
    return _envelope(lambda s: s.call_records(session))


@_read_task("attached_from")
def attached_from(session: str) -> dict[str, Any]:
    return _envelope(lambda s: s.attached_from(session))


@_read_task("resolve")
def resolve(name: str) -> dict[str, Any]:
    return _envelope(lambda s: list(s.resolve(name)))


@_read_task("delete_plan")
def delete_plan(session: str, cascade: bool = False, detach: bool = False) -> dict[str, Any]:
    """`Store.delete_session(..., dry_run=True)`: what a delete would remove (it changes nothing)."""
    return _envelope(lambda s: s.delete_session(session, cascade=cascade, detach=detach, dry_run=True))


@_read_task("scrub_results")
def scrub_results(sessions: list[str]) -> dict[str, Any]:
    """Remove the stored results naming deleted `sessions` from Redis (`tasks.scrub`; not the store)."""
    return {"ok": scrub.scrub_results(app.conf.result_backend or app.conf.broker_url, sessions)}


def _plain(value: Any) -> Any:
    """Datalog results as JSON data: tuples and sets become lists, keywords and symbols strings."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


@_read_task("query")
def query(edn: str, args: list[Any] | None = None, catch_up: bool = False) -> dict[str, Any]:
    """A Datalog query over the derived index (docs/spec.md, The Datalog index).

    `catch_up` first applies the batches committed since the index's watermark."""
    root = settings_of(app).root
    if not (Path(root) / "store.sqlite").exists():
        return {"error": {"type": "not-found", "message": f"no store at {root}", "what": "store", "name": root}}
    try:
        with Index.open(root) as index:
            if catch_up:
                index.catch_up()
            return {"ok": _plain(index.q(edn, *(args or [])))}
    except DatalogError as exc:
        return {"error": {"type": "query/invalid", "message": str(exc)}}
