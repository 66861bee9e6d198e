"""kombu's Redis transport, with the `writes` queue popped so that no message is ever only in a socket.

kombu takes a message off a Redis list with BRPOP and records it as unacknowledged (the
`unacked` hash) afterwards, on the client. In between, the message is nowhere in Redis:
it is in the consumer's socket buffer. kombu keeps a BRPOP outstanding while the worker is
busy, so for the writer that window lasts as long as a group commit, and a `kill -9` in it
loses every message Redis handed over meanwhile.

Here a consumer of exactly the `writes` queue (the writer: only the holder of the writer
lock consumes it) pops with `BLMOVE writes writes.inflight`: Redis moves the message to
the in-flight list in the same step. Recording it as unacknowledged removes it from the
in-flight list in the same MULTI/EXEC. So at every instant a `writes` message is in exactly
one of: the `writes` list, `writes.inflight`, the `unacked` hash; `workers.takeover` gives
back what a dead writer left in the last two, oldest first.

Every other queue, every producer and every other worker use kombu's transport as it is.
This module never decides anything about writes.
"""

from __future__ import annotations

from time import monotonic, time

from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import dumps, loads

from .routing import WRITES

#: where a `writes` message sits between leaving `writes` and being recorded in `unacked`
INFLIGHT = WRITES + ".inflight"


class QoS(kombu_redis.QoS):
    def append(self, message, delivery_tag):  # noqa: ANN001 - kombu's signature
        item = self.channel._popped
        if item is None:
            return super().append(message, delivery_tag)
        self.channel._popped = None
        delivery = message.delivery_info
        record = dumps([message._raw, delivery["exchange"], delivery["routing_key"]])
        with self.pipe_or_acquire() as pipe:  # a transaction: recorded and out of in-flight together
            pipe.zadd(self.unacked_index_key, {delivery_tag: time()}) \
                .hset(self.unacked_key, delivery_tag, record) \
                .lrem(INFLIGHT, 1, item) \
                .execute()
        virtual.QoS.append(self, message, delivery_tag)

    def restore_unacked(self, client=None):  # noqa: ANN001 - kombu's signature
        if self.channel._moved_writes:
            # kombu restores a closing channel's unacknowledged messages newest first (one
            # RPUSH each, oldest first, onto the consuming end), which reverses a group. The
            # writer's stay in `unacked` instead; the next writer (only a lock holder
            # consumes `writes`) restores them oldest first (workers/takeover.py).
            self._delivered.clear()
            return
        super().restore_unacked(client)


class Channel(kombu_redis.Channel):
    QoS = QoS
    _popped: bytes | None = None  # the raw message BLMOVE just moved to INFLIGHT, until recorded
    _blmove = False  # the outstanding blocking pop is a BLMOVE (its reply is the item alone)
    _moved_writes = False  # this channel consumes `writes` with BLMOVE (it is the writer's)

    def _moves_writes(self, queues: list[str]) -> bool:
        return queues == [WRITES] and list(self.priority_steps) == [0] and not self.global_keyprefix

    def _brpop_start(self, timeout=None):  # noqa: ANN001 - kombu's signature
        queues = self._queue_cycle.consume(len(self.active_queues))
        if not self._moves_writes(list(queues)):
            return super()._brpop_start(timeout)
        self._in_poll = self.client.connection
        self._brpop_sent_at = monotonic()
        self._blmove = self._moved_writes = True
        timeout = self.brpop_timeout if timeout is None else timeout
        self.client.connection.send_command("BLMOVE", WRITES, INFLIGHT, "RIGHT", "LEFT", timeout or 0)

    def _poll_error(self, type, **options):  # noqa: A002, ANN001, ANN003 - kombu's signature
        # the connection failed with a pop outstanding: a moved item stays in INFLIGHT, where
        # the consumer's restart (workers.writer_step) gives it back
        self._blmove = False
        return super()._poll_error(type, **options)

    def _brpop_read(self, **options):  # noqa: ANN003 - kombu's signature
        if not self._blmove:
            return super()._brpop_read(**options)
        self._blmove = False
        try:
            try:
                item = self.client.parse_response(self.client.connection, "BLMOVE", **options)
            except self.connection_errors:
                self.client.connection.disconnect()  # the next iteration reconnects
                raise
            if item is None:
                raise kombu_redis.Empty()
            self._queue_cycle.rotate(WRITES)
            self._popped = item
            try:
                self.connection._deliver(loads(bytes_to_str(item)), WRITES)
            finally:
                if self._popped is not None:  # never recorded: give it back to the front of the queue
                    self._popped = None
                    with self.conn_or_acquire() as client:
                        client.pipeline().rpush(WRITES, item).lrem(INFLIGHT, 1, item).execute()
            return True
        finally:
            self._in_poll = None
            self._flush_brpop_reauth()


class Transport(kombu_redis.Transport):
    Channel = Channel


def queue_ack(pipe, messages: list) -> list:  # noqa: ANN001 - a redis-py pipeline
    """Queue the acknowledgement of `messages` on `pipe` (the writer's one pipeline per group).

    kombu acknowledges a Redis message with one MULTI/EXEC round trip each (ZREM + HDEL of
    `unacked`); here the whole group's go on the caller's pipeline, after its receipts, so a
    group's receipts and acks are one round trip. Returns the messages queued; the caller
    runs the pipeline, then `settle_acked` on them. Messages of another transport (or already
    settled) are not queued: they are acknowledged with their own `ack()`."""
    by_qos: dict[int, tuple[QoS, list]] = {}
    for message in messages:
        qos = getattr(getattr(message, "channel", None), "qos", None)
        if isinstance(qos, QoS) and not message.acknowledged:
            by_qos.setdefault(id(qos), (qos, []))[1].append(message)
    queued = []
    for qos, group in by_qos.values():
        tags = [m.delivery_tag for m in group]
        pipe.zrem(qos.unacked_index_key, *tags).hdel(qos.unacked_key, *tags)
        queued += group
    return queued


def settle_acked(messages: list) -> None:
    """kombu's local bookkeeping of an ack, for messages whose ack commands `queue_ack` queued and ran."""
    for message in messages:
        virtual.QoS.ack(message.channel.qos, message.delivery_tag)
        message._state = "ACK"
