"""`SessionClient`: the producer side of sessiondb — batched writes, receipts, remote reads.

    client = SessionClient()                      # broker from Settings (SESSIONDB_BROKER_URL)
    handle = client.write("s1", [{"type": "message/added", "role": "user", "content": "hi"}])
    handle.receipt(timeout=10)                    # waits for the writer's receipt
    client.view("s1")                             # a read through the `reads` queue

Batching works like a Kafka producer with Nagle's rule: a write that finds none of this
client's earlier writes waiting for its receipt is published at once, as its own
`writes.commit` message, from the caller's thread (no hand-off; while the broker answers —
otherwise by the sender thread, which retries). Other writes go to a buffer that a sender
thread publishes as ONE message when it holds `batch_max` writes or `batch_bytes` bytes, or
`linger_ms` after its first write, or as soon as no write is in flight any more. So a lone
write never waits, and under load the writes that arrive while others are in flight share
a message (each message costs the writer Celery and Redis work, whatever it holds).

Receipts come back on this client's own Redis list (`tasks.receipts`). A write id the
store had already applied comes back as its stored receipt (`status` "committed", the
original `tx_id`) with `"duplicate": true`. A write that has
no receipt after `resend_after_s` is sent again with the SAME write id, so a lost message
can never apply twice (the store answers a known write id with its stored receipt).
Writes of one client reach the writer in the order of `write()` calls; only a resend
(after a lost message) can land behind newer writes, so a producer that needs strict order
across a failure waits for a receipt before sending a dependent write.

One client per process (create it after a fork). Owns buffering, publishing, receipt
dispatch and resends. It must never open the store or decide commits.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import msgspec
import redis
from celery import Celery
from celery.exceptions import TimeoutError as CeleryTimeoutError

from sessiondb.store import Settings, ValidationError, raise_for
from sessiondb.store.writes.values import check_values

from . import receipts, routing
from .broker import check_broker, printable_url
from .celery_app import BROKER_FILE, configured_broker, make_app
from .errors import BrokerUnreachableError, ClientClosedError, NoBrokerError, ReceiptTimeout

log = logging.getLogger(__name__)

_json_size = msgspec.json.Encoder(enc_hook=str).encode  # 8x faster than json.dumps for a 1 KiB write


def _check_depth(events: list[dict[str, Any]], write_id: str, max_depth: int) -> None:
    """Nesting below each event field bounded as the store bounds it (an iterative walk of the
    containers only: a 10,000-deep payload must not exhaust the producer's stack)."""
    for index, event in enumerate(events):
        for name, value in event.items():
            stack = [(value, 1)]
            while stack:
                item, depth = stack.pop()
                if depth > max_depth:
                    raise ValidationError(f"nested deeper than {max_depth} levels", write_id=write_id,
                                          event_index=index, field=name)
                if isinstance(item, dict):
                    stack.extend((sub, depth + 1) for sub in item.values())
                elif isinstance(item, list | tuple):
                    stack.extend((sub, depth + 1) for sub in item)


def check_shape(write: Any, settings: Settings) -> None:
    """The cheap producer-side checks of a write, before it is published: an object with string
    ids, a list of event objects, nesting bounded. Raises the store's `ValidationError` with the
    fields the store would use; everything else is the writer's to check (its rejection receipt)."""
    if not isinstance(write, dict):
        raise ValidationError(f"Expected `object`, got `{type(write).__name__}`: a write must be a JSON object")
    write_id = write.get("write_id")
    if not isinstance(write_id, str) or not write_id:
        raise ValidationError(f"a write needs a non-empty string write_id, got {type(write_id).__name__}",
                              field="write_id")
    if not isinstance(write.get("session"), str):
        raise ValidationError("Expected `str` session", write_id=write_id, field="session")
    events = write.get("events")
    if not isinstance(events, list):
        raise ValidationError(f"Expected `array`, got `{type(events).__name__}`", write_id=write_id, field="events")
    for index, event in enumerate(events):
        if not isinstance(event, dict):
            raise ValidationError(f"Expected `object`, got `{type(event).__name__}`: an event must be a JSON object",
                                  write_id=write_id, event_index=index)
    _check_depth(events, write_id, settings.max_nesting_depth)


def _size_of(write: dict[str, Any], settings: Settings) -> int:
    """About the bytes the message will carry for `write`; a write with no JSON form (a lone
    surrogate) is refused here, naming the field as the store would."""
    try:
        return len(_json_size(write))
    except (UnicodeEncodeError, TypeError, ValueError, OverflowError) as exc:
        check_values(write, settings)  # raises the store's ValidationError naming the field
        raise ValidationError(f"the write has no JSON form: {exc}", write_id=write["write_id"]) from None
PUBLISH_RETRY = {"max_retries": 30, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 2.0}


class WriteHandle:
    """The pending result of one write: `.receipt(timeout)` waits for the writer's receipt."""

    def __init__(self, write_id: str, session: str,
                 broker_error: Callable[[], BrokerUnreachableError | None] = lambda: None) -> None:
        self.write_id, self.session = write_id, session
        self._broker_error = broker_error
        self._done = threading.Event()
        self._receipt: dict[str, Any] | None = None
        #: time.monotonic() of write() and of the receipt's arrival (for latency measurements)
        self.sent_at, self.resolved_at = time.monotonic(), 0.0

    def _resolve(self, receipt: dict[str, Any]) -> None:
        if not self._done.is_set():
            self._receipt = receipt
            self.resolved_at = time.monotonic()
            self._done.set()

    def done(self) -> bool:
        """Has the receipt arrived?"""
        return self._done.is_set()

    def receipt(self, timeout: float | None = None, raise_on_reject: bool = False) -> dict[str, Any]:
        """Wait for the writer's receipt of this write.

        Args:
            timeout: seconds to wait; None waits for ever.
            raise_on_reject: raise a rejection as its `sessiondb.StoreError` (for instance
                `HeadConflictError`) instead of returning it.

        Returns:
            The receipt: `{"status": "committed", "tx_id", "event_ids", "ids", ...}` or
            `{"status": "rejected", "error": {"type", "message", ...}}` (see `Store.commit_many`).

        Raises:
            ReceiptTimeout: no receipt within `timeout` (the write may still be committed
                later; the client keeps waiting for it and resends it with the same id).
            StoreError: with `raise_on_reject`, the write was rejected.
        """
        if not self._done.wait(timeout):
            # No receipt: say why when we know it (the broker is gone), not "is the writer running?"
            raise self._broker_error() or ReceiptTimeout(self.write_id, timeout)
        assert self._receipt is not None
        return raise_for(self._receipt) if raise_on_reject else self._receipt

    def __repr__(self) -> str:
        return f"<WriteHandle {self.write_id} {'done' if self.done() else 'pending'}>"


class _Pending:
    __slots__ = ("write", "size", "sent_at", "queued_at", "handles")

    def __init__(self, write: dict[str, Any], size: int) -> None:
        self.write, self.size, self.sent_at, self.queued_at = write, size, 0.0, 0.0
        self.handles: list[WriteHandle] = []


class SessionClient:
    """A producer: sends session writes to the fleet's writer and reads through the fleet.

    `write()` returns at once with a `WriteHandle`; a sender thread batches buffered writes
    into `writes.commit` messages (at once when none of this client's writes is waiting for
    a receipt, else at `batch_max` writes, `batch_bytes` bytes or `linger_ms` after the
    first), and a receiver thread resolves the handles from this client's receipt list in
    Redis. Writes with no receipt after `resend_after_s` are sent again with the same write
    id, which the store applies at most once. Reads (`view`, `history_view`, ...) are remote
    calls through the `reads` queue, answered by a `reader` worker.

    Create one client per process (after a fork, not before) and `close()` it, or use it as
    a context manager. The contract is docs/spec.md; the batching and receipts are
    described in docs/fleet.md.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        app: Celery | None = None,
        batch_max: int | None = None,
        batch_bytes: int | None = None,
        linger_ms: float | None = None,
        resend_after_s: float | None = None,
    ) -> None:
        """Connect to the fleet's broker.

        Args:
            settings: where the broker is and the defaults below; default:
                `Settings.from_env()` (`SESSIONDB_BROKER_URL`, or the broker URL a running
                `sessiondb up` left in `<SESSIONDB_ROOT>/fleet/broker_url`).
            app: a Celery app to publish with (default: one made from `settings`).
            batch_max: at most this many writes per message (`SESSIONDB_CLIENT_BATCH_MAX`, 500).
            batch_bytes: at most about this many bytes per message (`SESSIONDB_CLIENT_BATCH_BYTES`, 4 MiB).
            linger_ms: how long a write waits for others while earlier writes are in flight
                (`SESSIONDB_CLIENT_LINGER_MS`, 20).
            resend_after_s: resend a write that has no receipt after this long
                (`SESSIONDB_CLIENT_RESEND_AFTER_S`, 60).

        Raises:
            NoBrokerError: no broker is configured.
        """
        self.settings = settings or Settings.from_env()
        s = self.settings
        batch_max = s.client_batch_max if batch_max is None else batch_max
        batch_bytes = s.client_batch_bytes if batch_bytes is None else batch_bytes
        linger_ms = s.client_linger_ms if linger_ms is None else linger_ms
        resend_after_s = s.client_resend_after_s if resend_after_s is None else resend_after_s
        broker = configured_broker(self.settings)
        if not broker:
            raise NoBrokerError()
        self.app = app or make_app(self.settings)
        self.client_id = uuid.uuid4().hex
        self.reply_key = receipts.reply_key(self.client_id)
        self.batch_max, self.batch_bytes = batch_max, batch_bytes
        self.linger_s, self.resend_after_s = linger_ms / 1000.0, resend_after_s
        self.broker_url = broker
        # A bounded connect: an address that drops packets must not hang the receiver for minutes.
        self._redis = redis.Redis.from_url(broker, socket_connect_timeout=5.0)
        self._broker_down: str | None = None  # why the receiver's last Redis call failed, if it did
        self._cond = threading.Condition()
        self._send_lock = threading.Lock()
        self._buffer: list[_Pending] = []
        self._buffer_bytes = 0
        self._first_at = 0.0
        self._pending: dict[str, _Pending] = {}
        self._direct_ok = False  # the last publish went through: a lone write may be sent by its caller
        self._closed = False
        self._threads: list[threading.Thread] = []

    # -- writes -------------------------------------------------------------------------
    def write(self, session: str, events: Iterable[dict[str, Any]], write_id: str | None = None) -> WriteHandle:
        """Enqueue one session write; returns at once.

        Args:
            session: a session id or an alias. A new session's first write starts it with a
                `session/started` event.
            events: the write's events, applied in order, all or nothing (docs/store.md).
            write_id: the write's idempotency key. Left out, the client picks a random one:
                its own resends stay safe, but sending the same write again yourself (after
                a crash or a timeout) applies it twice. Give one when you may resend.

        Returns:
            A `WriteHandle`: `.receipt(timeout)` waits for the writer's receipt. A write id
            this client is still waiting for is not sent again: the new handle gets that
            write's receipt.

        Raises:
            ValidationError: the write's shape is wrong (see `submit`).
            ClientClosedError: the client was closed.
        """
        if isinstance(events, str | bytes | dict) or not isinstance(events, Iterable):
            raise ValidationError(f"Expected `array`, got `{type(events).__name__}`", write_id=write_id,
                                  field="events")
        return self.submit({"write_id": write_id or uuid.uuid4().hex, "session": session, "events": list(events)})

    def write_many(self, writes: Iterable[dict[str, Any]]) -> list[WriteHandle]:
        """Enqueue many writes, in order; like `write` for each.

        Args:
            writes: `{"session": str, "events": [...], "write_id": str}` each; a missing
                or empty `write_id` gets a random one (see `write`).

        Returns:
            One `WriteHandle` per write, in order.
        """
        return [self.submit({**w, "write_id": w.get("write_id") or uuid.uuid4().hex} if isinstance(w, dict) else w)
                for w in writes]

    def submit(self, write: dict[str, Any]) -> WriteHandle:
        """Enqueue a complete write, `{"write_id": str, "session": str, "events": [...]}`, as given.

        Returns:
            Its `WriteHandle`.

        Raises:
            ValidationError: the write is not an object with a non-empty string `write_id`, a
                string `session` and a list of event objects, or it is nested too deep
                (`write/invalid`, with the fields the store would name).
            ClientClosedError: the client was closed.
        """
        check_shape(write, self.settings)
        write_id = write["write_id"]
        handle = WriteHandle(write_id, write["session"], self._broker_unreachable)
        size = _size_of(write, self.settings)  # what the message will carry, about
        with self._cond:
            if self._closed:
                raise ClientClosedError()
            self._start_threads()
            known = self._pending.get(write_id)
            if known is not None:  # the same write id again: share the receipt, send nothing new
                known.handles.append(handle)
                return handle
            entry = _Pending(write, size)
            entry.handles.append(handle)
            # A lone write (nothing in flight, nothing buffered) is published from this thread, at
            # once: no hand-off to the sender thread. Only while the broker answers (a publish
            # that must retry, or connect to a broker that is away, is the sender thread's).
            direct = self._direct_ok and not self._buffer and not self._in_flight()
            self._pending[write_id] = entry
            self._enqueue(entry, wake=not direct)
        if direct:
            self._send_direct()
        return handle

    def ping(self, timeout: float = 5.0) -> None:
        """Return once the broker answers; `BrokerUnreachableError` if it does not within `timeout` s."""
        try:
            check_broker(self.broker_url, timeout)
        except BrokerUnreachableError as exc:
            if self.settings.broker_url:
                raise
            # The URL came from the file a `sessiondb up` left in the root: most likely that fleet is gone.
            where = Path(self.settings.root) / BROKER_FILE
            raise BrokerUnreachableError(exc.url, f"{exc.reason} (the URL is from {where}, written by a"
                                         " `sessiondb up` that may no longer run)", timeout) from None

    def _broker_unreachable(self) -> BrokerUnreachableError | None:
        reason = self._broker_down
        return BrokerUnreachableError(printable_url(self.broker_url), reason) if reason else None

    def flush(self) -> None:
        """Publish everything buffered now, without waiting for the linger or for receipts."""
        while self._send_once():
            pass

    def close(self, timeout: float = 5.0) -> None:
        """Flush, stop the sender and receiver threads (receipts not yet received are dropped)."""
        self.flush()
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout)
        self._redis.close()

    def __enter__(self) -> SessionClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _enqueue(self, entry: _Pending, wake: bool = True) -> None:
        entry.queued_at = time.monotonic()
        if not self._buffer:
            self._first_at = entry.queued_at
        self._buffer.append(entry)
        self._buffer_bytes += entry.size
        if not wake:
            return
        if len(self._buffer) >= self.batch_max or self._buffer_bytes >= self.batch_bytes:
            self._cond.notify_all()
        elif len(self._buffer) == 1:
            self._cond.notify_all()

    def _take(self) -> list[_Pending]:
        """Up to one message's worth of the buffer (`batch_max` writes / `batch_bytes`)."""
        count, size = 0, 0
        for entry in self._buffer:
            if count and (count >= self.batch_max or size + entry.size > self.batch_bytes):
                break
            count, size = count + 1, size + entry.size
        batch, self._buffer = self._buffer[:count], self._buffer[count:]
        self._buffer_bytes -= size
        if self._buffer:  # the rest lingers from its own first write, not from the batch just taken
            self._first_at = self._buffer[0].queued_at
        return batch

    def _send_once(self) -> bool:
        """Take one message's worth and publish it; one sender at a time keeps the order."""
        with self._send_lock:
            with self._cond:
                batch = self._take()
            self._publish(batch)
        return bool(batch)

    def _send_direct(self) -> None:
        """Publish what is buffered from the caller's thread, once, without retries; on failure
        give it back to the front of the buffer for the sender thread (which retries)."""
        with self._send_lock:
            with self._cond:
                batch = self._take()
            if not batch:
                return
            try:
                self._send(batch, retry=False)
            except Exception:  # noqa: BLE001 - the broker is away or the connection went stale
                with self._cond:
                    self._direct_ok = False
                    for entry in batch:
                        entry.sent_at = 0.0
                    self._buffer[:0] = batch
                    self._buffer_bytes += sum(e.size for e in batch)
                    self._first_at = batch[0].queued_at
                    self._cond.notify_all()

    def _send(self, batch: list[_Pending], retry: bool) -> None:
        now = time.monotonic()
        for entry in batch:
            entry.sent_at = now
        self.app.send_task(routing.COMMIT, args=[[e.write for e in batch], self.reply_key],
                           ignore_result=True, retry=retry, retry_policy=PUBLISH_RETRY)
        self._direct_ok = True

    def _publish(self, batch: list[_Pending]) -> None:
        if not batch:
            return
        try:
            self._send(batch, retry=True)
        except Exception:  # noqa: BLE001 - broker unreachable for long: the resend loop tries again
            now = time.monotonic()
            for entry in batch:
                entry.sent_at = now - self.resend_after_s + 1.0

    def _start_threads(self) -> None:
        if not self._threads:
            for target, name in ((self._send_loop, "sender"), (self._receive_loop, "receiver")):
                thread = threading.Thread(target=target, name=f"sessiondb-client-{name}", daemon=True)
                thread.start()
                self._threads.append(thread)

    def _send_loop(self) -> None:
        while True:
            with self._cond:
                while not self._closed:
                    if self._buffer:
                        full = len(self._buffer) >= self.batch_max or self._buffer_bytes >= self.batch_bytes
                        wait = self._first_at + self.linger_s - time.monotonic()
                        if full or wait <= 0 or not self._in_flight():
                            break
                        self._cond.wait(wait)
                    else:
                        self._cond.wait()
                if self._closed and not self._buffer:
                    return
            self._send_once()

    def _receive_loop(self) -> None:
        last_check = time.monotonic()
        while True:
            with self._cond:
                if self._closed:
                    return
            try:
                item = self._redis.blpop([self.reply_key], timeout=1)
            except redis.RedisError as exc:
                self._broker_down = str(exc) or type(exc).__name__
                time.sleep(0.5)
                continue
            self._broker_down = None
            if item is not None:
                self._dispatch(receipts.decode(item[1]))
            if time.monotonic() - last_check > 1.0:
                last_check = time.monotonic()
                self._resend_overdue()

    def _in_flight(self) -> bool:
        """Is a write that was published still waiting for its receipt? (Call under `_cond`.)"""
        return len(self._pending) > len(self._buffer)

    def _dispatch(self, items: list[dict[str, Any]]) -> None:
        with self._cond:
            entries = [(r, self._pending.pop(str(r.get("write_id")), None)) for r in items]
            if self._buffer and not self._in_flight():
                self._cond.notify_all()  # the last receipt is in: what waits in the buffer goes now
        for receipt, entry in entries:
            for n, handle in enumerate(entry.handles if entry else ()):
                # a later submit of a pending write id shared the first one's message: it wrote nothing
                again = n > 0 and receipt.get("status") == "committed"
                handle._resolve({**receipt, "duplicate": True} if again else receipt)

    def _resend_overdue(self) -> None:
        now = time.monotonic()
        with self._cond:
            overdue = [e for e in self._pending.values() if e.sent_at and now - e.sent_at > self.resend_after_s]
            buffered = {id(e) for e in self._buffer}
            for entry in overdue:
                if id(entry) not in buffered:
                    entry.sent_at = 0.0
                    self._enqueue(entry)

    # -- remote reads (the `reads` queue) ------------------------------------------------
    def read(self, name: str, *args: Any, timeout: float = 30.0) -> Any:
        """Call the remote read `reads.<name>(*args)` and wait for its answer.

        Args:
            name: a read of `Store` (`view`, `history_view`, `event_view`,
                `message_records`, `high_water_counters`, `current_head_id`,
                `call_records`, `attached_from`, `resolve`) or `query`.
            timeout: seconds to wait for a reader worker's answer.

        Returns:
            The read's value, as JSON (tuples become lists).

        Raises:
            StoreError: the read failed in the store, as its own class (`NotFoundError` ...).
            celery.exceptions.TimeoutError: no answer within `timeout` (is a reader running?).
        """
        result = self.app.send_task(routing.READS_PREFIX + name, args=list(args))
        envelope = result.get(timeout=timeout)
        result.forget()  # a read's value holds contents: it must not linger in the result backend
        if "error" in envelope:
            raise_for({"status": "rejected", "error": envelope["error"]})
        return envelope["ok"]

    def delete_session(self, session: str, *, cascade: bool = False, detach: bool = False,
                       reason: str | None = None, dry_run: bool = False, write_id: str | None = None,
                       timeout: float = 120.0) -> dict[str, Any]:
        """`Store.delete_session` through the fleet: a `session/deleted` write on the `writes`
        queue (serialized with every other write; the same `write_id` again is a duplicate),
        or with `dry_run` a read on the `reads` queue. After the delete commits, stored read
        results that name a deleted session are removed from Redis (`scrub_results`).

        Returns:
            The delete's receipt (see `Store.delete_session`), plus `"redis_scrubbed"`: how many
            stored results the reader removed (None: no reader answered within 30 s; they then
            expire within a day); with `dry_run`, the plan.

        Raises:
            DependantsError, SessionDeletedError, NotFoundError: as `Store.delete_session`.
            ReceiptTimeout: no receipt within `timeout`.
        """
        if dry_run:
            return self.read("delete_plan", session, cascade, detach, timeout=timeout)
        event: dict[str, Any] = {"type": "session/deleted", "cascade": cascade, "detach": detach}
        if reason is not None:
            event["reason"] = reason
        handle = self.submit({"write_id": write_id or f"delete-{uuid.uuid4().hex}", "session": session,
                              "events": [event]})
        receipt = handle.receipt(timeout, raise_on_reject=True)
        try:
            scrubbed: int | None = self.scrub_results(receipt.get("deleted") or [receipt["session"]], timeout=30.0)
        except CeleryTimeoutError:  # committed all the same; stored results expire within a day
            log.warning("delete of %s committed, but no reader answered to scrub Redis's stored results",
                        receipt["session"])
            scrubbed = None
        return {**receipt, "redis_scrubbed": scrubbed}

    def scrub_results(self, sessions: list[str], timeout: float = 120.0) -> int:
        """Have the reader remove the stored task results that name one of `sessions` from Redis
        (`tasks.scrub`); the keys removed."""
        return self.read("scrub_results", sessions, timeout=timeout)

    def view(self, session: str, head: str | None = None, timeout: float = 30.0) -> dict[str, Any]:
        """`Store.view` through the `reads` queue: the current branch, or one head's."""
        return self.read("view", session, head, timeout=timeout)

    def history_view(self, session: str, timeout: float = 30.0) -> dict[str, Any]:
        """`Store.history_view` through the `reads` queue: everything, abandoned branches included."""
        return self.read("history_view", session, timeout=timeout)

    def event_view(self, session: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        """`Store.event_view` through the `reads` queue: the audit log of every branch."""
        return self.read("event_view", session, timeout=timeout)

    def message_records(self, session: str, include_content: bool = False, timeout: float = 30.0) -> list[Any]:
        """`Store.message_records` of the current branch through the `reads` queue."""
        return self.read("message_records", session, include_content, timeout=timeout)

    def high_water_counters(self, session: str, timeout: float = 30.0) -> dict[str, int]:
        """`Store.high_water_counters` through the `reads` queue."""
        return self.read("high_water_counters", session, timeout=timeout)

    def current_head_id(self, session: str, timeout: float = 30.0) -> str | None:
        """`Store.current_head_id` through the `reads` queue."""
        return self.read("current_head_id", session, timeout=timeout)

    def call_records(self, session: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        """`Store.call_records` through the `reads` queue."""
        return self.read("call_records", session, timeout=timeout)

    def attached_from(self, session: str, timeout: float = 30.0) -> dict[str, Any] | None:
        """`Store.attached_from` through the `reads` queue."""
        return self.read("attached_from", session, timeout=timeout)

    def query(self, edn: str, *args: Any, catch_up: bool = False, timeout: float = 30.0) -> Any:
        """A Datalog query over the derived index, answered by a reader worker.

        Args:
            edn: the query, e.g. `'[:find ?m (count ?c) :where [?c :call/model ?m]]'`
                (docs/queries.md, docs/datalog.md).
            args: inputs for the query's `:in` slots after `$`, in order.
            catch_up: apply the batches committed since the index's watermark first, so
                the answer covers every write committed before the call.
            timeout: seconds to wait for the answer.

        Returns:
            The query's result as JSON (tuples become lists).
        """
        return self.read("query", edn, list(args), catch_up, timeout=timeout)
