"""The single serialized writer: a custom Celery consumer strategy that group-commits.

Celery's default strategy runs one task per message. For `writes.commit` the worker uses
`group_commit_strategy` instead (named on the task class): each delivered message is
decoded (JSON only — a pickled message raises `ContentDisallowed` here and Celery
rejects it; a body over `Settings.message_limit` is not decoded at all: its writes are
rejected from the raw bytes, `workers.raw_body`) and buffered. Groups form by themselves
("smart batching"): a message that arrives while nothing else is known to be queued is
committed at once — a lone write never waits for company. The round trip after each group
also counts the `writes` messages that piled up in Redis during its commit; the next group
is exactly those (already queued, so they arrive back to back), committed when the last of
them is delivered, or when it holds `Settings.group_commit_max` writes or
`group_commit_max_bytes` of message bodies (flushed before a message that would pass it).
`Settings.group_commit_wait_ms` is only an upper bound on waiting for counted messages
that do not come. A group is ONE `store.commit_many` call, in the consumer thread (like the
solo pool), then, in ONE pipelined Redis round trip and in this order:

1. receipts go to each producer's reply list (`tasks.receipts`), plus the writer's
   counters (`workers.stats`);
2. the messages are acknowledged (late ack: a writer killed before this point has its
   messages redelivered, and the store's write-id table turns the re-commit into a no-op
   that returns the same receipts; `tasks.transport.queue_ack`);
3. the queue's depth is read (the next group's size);

then the indexer is poked (debounced, never waited for).

A group that cannot be committed now (store.sqlite locked, disk failure) or whose
receipts cannot be delivered stays in the buffer, unacknowledged and in order, and is
retried with backoff (`RETRY_FIRST_S` .. `RETRY_MAX_S`); it is never requeued, so no
requeue can reorder or drop it. The `writes` queue is popped atomically into
`writes.inflight` (tasks/transport.py), so a kill at any moment leaves every message
somewhere the next writer restores it from (workers/takeover.py).

The prefetch window is widened by one per buffered message (as Celery does for ETA
tasks) so a group can span many messages. Only a process that holds the writer lock
(`store.writer_lock`, taken by `workers.writer_step`) ever commits. This module must never
be imported by producers.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
from celery import Celery
from kombu.exceptions import ContentDisallowed, DecodeError

from sessiondb.store import Store, receipt_counts
from sessiondb.store.writer_lock import WriterLock
from sessiondb.tasks import receipts, routing
from sessiondb.tasks.celery_app import settings_of
from sessiondb.tasks.transport import INFLIGHT, queue_ack, settle_acked

from . import stats
from .group_commit import Delivery, RetryLater, commit_group
from .notify import IndexNotifier
from .raw_body import body_excerpt, body_size, oversize_reason, undecodable_reason, undecoded_writes

log = logging.getLogger("sessiondb.writer")

#: a group that could not be committed is retried after this, doubling up to RETRY_MAX_S
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 10.0


class WriterRuntime:
    """Per-process state of the writer: its lock, store, Redis client and notifier."""

    _instances: dict[int, WriterRuntime] = {}

    def __init__(self, app: Celery) -> None:
        self.app = app
        self.settings = settings_of(app)
        self.lock = WriterLock(self.settings.root)
        self.redis = redis.Redis.from_url(app.conf.broker_url)
        self.store: Store | None = None
        self.notifier: IndexNotifier | None = None
        # +1 each time the consumer restarts after a lost broker connection: the messages
        # delivered before were all given back to the queue then (workers/writer_step.py) and
        # come again, so a group buffered from an older generation is dropped, never acknowledged
        # (its channel is gone: an ack there would kill the worker)
        self.generation = 0
        self.waiting = 0  # `writes` messages waiting in Redis when the last group was done

    @classmethod
    def of(cls, app: Celery) -> WriterRuntime:
        runtime = cls._instances.get(id(app))
        if runtime is None:
            runtime = cls._instances[id(app)] = cls(app)
        return runtime

    def ready(self) -> Store:
        if self.store is None:
            self.store = Store.open(self.settings.root, self.settings)
            self.notifier = IndexNotifier(self.app, self.settings.index_notify_debounce_ms / 1000.0)
        return self.store

    def run_group(self, deliveries: list[Delivery], consumer: Any) -> bool:
        """Commit one group, deliver its receipts, acknowledge it; False: keep it and retry later.

        A group that cannot be committed now (the database is locked or the disk fails) or
        whose receipts cannot be delivered (Redis is away) stays with the caller, in order and
        unacknowledged (so recorded in Redis' `unacked` hash: a crash meanwhile loses
        nothing), and is retried as a whole: write ids make a second commit of the same
        writes return their stored receipts. After a group, `self.waiting` is how many
        `writes` messages were waiting in Redis (the next group's size, in messages)."""
        self.waiting = 0
        if not self.lock.try_acquire():  # a worker that never took the lock must not write
            log.error("not the writer (writer.lock is held by another process): requeueing %d messages",
                      len(deliveries))
            self.requeue(deliveries, consumer)
            return True
        store = self.ready()
        started = time.perf_counter()
        try:
            commit_group(store, deliveries)
        except RetryLater as exc:
            log.error("group commit of %d messages failed; it is kept and retried: %s", len(deliveries), exc)
            return False
        seconds = time.perf_counter() - started
        counts = receipt_counts([r for d in deliveries for r in d.receipts])
        try:
            acked = self._deliver(deliveries, counts, seconds)
        except redis.RedisError:
            log.exception("could not deliver receipts of %d messages; the group is kept and retried",
                          len(deliveries))
            return False
        settle_acked(acked)
        acked_ids = {id(message) for message in acked}
        for delivery in deliveries:
            if id(delivery.message) not in acked_ids:  # not the writer's transport (a test's, ...): kombu's own ack
                delivery.ack(log, consumer.connection_errors)
            if delivery.widened:
                consumer.qos.decrement_eventually()
        assert self.notifier is not None
        self.notifier.poke()
        self._events(deliveries, consumer, seconds)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("group of %d writes in %d messages committed in %.1f ms (%s)",
                      sum(counts.values()), len(deliveries), seconds * 1000, counts)
        return True

    def _deliver(self, deliveries: list[Delivery], counts: dict[str, int], seconds: float) -> list[Any]:
        """ONE pipelined round trip after a commit: the receipts, the counters, the acks (in that
        order: a crash before the acks only redelivers, and the store answers the redelivery with the
        same receipts), and how many messages wait in Redis meanwhile. Returns the messages acked."""
        pipe = self.redis.pipeline(transaction=False)
        last_tx_id = 0
        for delivery in deliveries:
            if delivery.reply_to:
                receipts.push(pipe, delivery.reply_to, delivery.receipts, self.settings.receipt_ttl_s)
            for receipt in delivery.receipts:
                last_tx_id = max(last_tx_id, receipt.get("tx_id") or 0)
        stats.record_group(pipe, writes=sum(counts.values()), messages=len(deliveries), **counts, seconds=seconds,
                           last_tx_id=last_tx_id)
        for delivery in deliveries:  # a bare `celery call` (no reply list) gets its receipts as the task result
            if not delivery.reply_to and delivery.task_id:
                self.app.backend.store_result(delivery.task_id, delivery.receipts, "SUCCESS")
        acked = queue_ack(pipe, [d.message for d in deliveries])
        pipe.llen(routing.WRITES).llen(INFLIGHT)
        *_, queued, inflight = pipe.execute()
        self.waiting = queued + inflight
        return acked

    def requeue(self, deliveries: list[Delivery], consumer: Any) -> None:
        """Give the messages back at the FRONT of the queue, in order (a plain reject would requeue
        them behind newer messages and break per-producer order), then settle kombu's bookkeeping."""
        for delivery in reversed(deliveries):
            qos = getattr(getattr(delivery.message, "channel", None), "qos", None)
            if hasattr(qos, "restore_by_tag"):
                qos.restore_by_tag(delivery.message.delivery_tag, leftmost=False)
                delivery.reject(log, consumer.connection_errors, False)  # already restored: just forget it
            else:
                delivery.reject(log, consumer.connection_errors, True)
            if delivery.widened:
                consumer.qos.decrement_eventually()

    def _events(self, deliveries: list[Delivery], consumer: Any, seconds: float) -> None:
        eventer = consumer.event_dispatcher
        if not (eventer and eventer.enabled):
            return
        for delivery in deliveries:
            counts = receipt_counts(delivery.receipts)
            eventer.send("task-succeeded", uuid=delivery.task_id, runtime=seconds, result=repr(counts))


def _count(writes: Any) -> int:
    return len(writes) if isinstance(writes, list) else 1


def _unpack(message: Any, body: Any) -> tuple[Any, Any]:
    """(writes, reply_to) from a task message body, protocol 1 or 2."""
    payload = message.payload if body is None else body
    if isinstance(payload, dict):
        args, kwargs = payload.get("args") or [], payload.get("kwargs") or {}
    else:
        args, kwargs, _embed = payload
    writes = args[0] if args else kwargs.get("writes", [])
    reply_to = args[1] if len(args) > 1 else kwargs.get("reply_to")
    return writes, reply_to if isinstance(reply_to, str) and reply_to.startswith(receipts.PREFIX) else None


def group_commit_strategy(task: Any, app: Celery, consumer: Any, **_: Any) -> Any:
    runtime = WriterRuntime.of(app)
    max_writes = max(1, runtime.settings.group_commit_max)
    # an upper bound only: how long a group waits for the messages known to be queued behind it
    wait_s = max(0, runtime.settings.group_commit_wait_ms) / 1000.0
    eventer = consumer.event_dispatcher
    buffer: list[Delivery] = []
    max_bytes = max(1, runtime.settings.group_commit_max_bytes)
    # expect: messages known to wait in Redis (counted after the last group), not delivered yet
    state: dict[str, Any] = {"writes": 0, "bytes": 0, "timer": None, "retry_s": 0.0, "expect": 0}

    def on_timer() -> None:
        state["timer"] = None
        flush()

    def flush() -> None:
        if state["timer"] is not None:
            state["timer"].cancel()
            state["timer"] = None
        group = [d for d in buffer if d.generation == runtime.generation]
        if len(group) < len(buffer):
            log.warning("writer: %d buffered messages were delivered before the broker connection was lost;"
                        " they were given back to the queue and will come again", len(buffer) - len(group))
        buffer.clear()
        state["writes"] = state["bytes"] = 0
        if not group:
            state["retry_s"] = 0.0
            return
        try:
            done = runtime.run_group(group, consumer)
        except Exception:  # noqa: BLE001 - a bug here must not lose messages or stop the writer
            log.exception("group of %d messages failed unexpectedly; it is kept and retried", len(group))
            done = False
        if done:
            state["retry_s"] = 0.0
            state["expect"] = runtime.waiting  # they piled up during this commit: the next group
            return
        # Keep the group at the front of the buffer, unacknowledged, and try again later (backing
        # off); messages that arrive meanwhile queue up behind it, in order.
        buffer[:0] = group
        state["expect"] = 0
        state["writes"] = sum(_count(d.writes) for d in buffer)
        state["bytes"] = sum(d.size for d in buffer)
        state["retry_s"] = min(max(2 * state["retry_s"], RETRY_FIRST_S), RETRY_MAX_S)
        state["timer"] = consumer.timer.call_after(state["retry_s"], flush)

    def handler(message: Any, body: Any, ack: Any, reject: Any, callbacks: Any, **__: Any) -> None:
        size = body_size(message)
        if size > runtime.settings.message_limit:
            # never decoded: each write id found in the raw body gets a rejection receipt
            writes, reply_to = undecoded_writes(message, oversize_reason(size, runtime.settings.message_limit),
                                                max_writes)
        else:
            try:
                writes, reply_to = _unpack(message, body)
            except ContentDisallowed:
                state["expect"] = max(0, state["expect"] - 1)  # it was one of the messages counted
                stats.record_refused(runtime.redis)
                raise  # Celery logs and rejects it (never requeued, never executed)
            except DecodeError as exc:
                # not JSON, or too deep to decode: rejected like an oversize message (a receipt for
                # each write id found, a dead letter), never dropped with the body in the log
                reason = undecodable_reason(exc)
                log.warning("writer: message %s could not be decoded: %s", (message.headers or {}).get("id"), reason)
                writes, reply_to = undecoded_writes(message, f"{reason}; the body began {body_excerpt(message)}",
                                                    max_writes)
            except (TypeError, ValueError):
                writes, reply_to = [message.payload], None
        # it was one of the messages counted after the last group (a flush below counts afresh, without it)
        state["expect"] = max(0, state["expect"] - 1)
        if buffer and state["retry_s"] == 0 and state["bytes"] + size > max_bytes:
            flush()  # the group's bytes are bounded, not only its count: commit before taking more
        retrying = state["retry_s"] > 0
        task_id = (message.headers or {}).get("id") or ""
        delivery = Delivery(task_id, writes, reply_to, message, ack, reject, size=size,
                            generation=runtime.generation)
        buffer.append(delivery)
        state["bytes"] += size
        if not retrying:  # while a group waits for its retry, the prefetch window stops new deliveries
            consumer.qos.increment_eventually()
            delivery.widened = True
        state["writes"] += _count(writes)
        if eventer and eventer.enabled:
            eventer.send("task-received", uuid=task_id, name=routing.COMMIT,
                         args=f"[<{state['writes']} writes buffered>]", kwargs="{}", retries=0, eta=None)
        if retrying:
            return  # the retry timer flushes everything, in order
        if state["expect"] == 0 or state["writes"] >= max_writes or state["bytes"] >= max_bytes:
            flush()  # nothing more is known to be queued: commit now, never wait for company
        elif state["timer"] is None:
            state["timer"] = consumer.timer.call_after(wait_s, on_timer)

    return handler
