"""kombu's Redis transport, with the `writes` queue popped so that no message is ever only in a socket.

kombu takes a message off a Redis list with BRPOP and records it as unacknowledged (the
`unacked` hash) afterwards, on the client. In between, the message is nowhere in Redis:
it is in the consumer's socket buffer. kombu keeps a BRPOP outstanding while the worker is
busy, so for the writer that window lasts as long as a group commit, and a `kill -9` in it
loses every message Redis handed over meanwhile.

Here a consumer of exactly the `writes` queue (the writer: only the holder of the writer
lock consumes it) pops with `BLMOVE writes writes.inflight`: Redis moves the message to
the in-flight list in the same step, and it stays there, unacknowledged, until the writer
acknowledges it (an LREM, in the group's one pipelined round trip after its receipts:
`queue_ack`). So at every instant a `writes` message is in exactly one of: the `writes`
list, `writes.inflight` (or, written by an earlier version, the `unacked` hash);
`workers.takeover` gives back what a dead writer left in the last two, oldest first.

Every other queue, every producer and every other worker use kombu's transport as it is.
This module never decides anything about writes.
"""

from __future__ import annotations

from time import monotonic

from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads

from .routing import WRITES

#: where a `writes` message sits between leaving `writes` and being recorded in `unacked`
INFLIGHT = WRITES + ".inflight"


class QoS(kombu_redis.QoS):
    """kombu's Redis QoS, except for the `writes` messages this channel moved with BLMOVE: they stay
    in `writes.inflight` until they are acknowledged (an LREM), instead of being recorded again in
    `unacked` (one MULTI/EXEC round trip per message, which also sent the body a second time)."""

    def __init__(self, *args, **kwargs):  # noqa: ANN002, ANN003 - kombu's signature
        super().__init__(*args, **kwargs)
        self._moved: dict[str, bytes] = {}  # delivery tag -> its raw item in INFLIGHT, until settled

    def append(self, message, delivery_tag):  # noqa: ANN001 - kombu's signature
        item = self.channel._popped
        if item is None:
            return super().append(message, delivery_tag)
        self.channel._popped = None
        self._moved[delivery_tag] = item
        virtual.QoS.append(self, message, delivery_tag)

    def ack(self, delivery_tag):  # noqa: ANN001 - kombu's signature
        item = self._moved.pop(delivery_tag, None)
        if item is None:
            return super().ack(delivery_tag)
        with self.channel.conn_or_acquire() as client:
            client.lrem(INFLIGHT, -1, item)  # from the tail: the oldest, which is acked first
        virtual.QoS.ack(self, delivery_tag)

    def reject(self, delivery_tag, requeue=False):  # noqa: ANN001 - kombu's signature
        if delivery_tag not in self._moved:
            return super().reject(delivery_tag, requeue)
        if requeue:
            self.restore_by_tag(delivery_tag)
        else:
            item = self._moved.pop(delivery_tag)
            with self.channel.conn_or_acquire() as client:
                client.lrem(INFLIGHT, -1, item)
        virtual.QoS.ack(self, delivery_tag)

    def restore_by_tag(self, tag, client=None, leftmost=False):  # noqa: ANN001 - kombu's signature
        item = self._moved.pop(tag, None)
        if item is None:
            return super().restore_by_tag(tag, client, leftmost)
        # back to the consuming end (the front of the queue) and out of in-flight, together
        with self.channel.conn_or_acquire(client) as client:
            client.pipeline().rpush(WRITES, item).lrem(INFLIGHT, -1, item).execute()

    def restore_unacked(self, client=None):  # noqa: ANN001 - kombu's signature
        if self.channel._moved_writes:
            # kombu restores a closing channel's unacknowledged messages newest first (one
            # RPUSH each, oldest first, onto the consuming end), which reverses a group. The
            # writer's stay in `writes.inflight` instead; the next writer (only a lock holder
            # consumes `writes`) restores them oldest first (workers/takeover.py).
            self._delivered.clear()
            self._moved.clear()
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

    kombu acknowledges a Redis message with one round trip each; here the whole group's acks
    go on the caller's pipeline, after its receipts, so a group's receipts and acks are one
    round trip: an LREM from `writes.inflight` for each message this transport moved there,
    kombu's ZREM + HDEL of `unacked` for any other. Returns the messages queued; the caller
    runs the pipeline, then `settle_acked` on them. Messages of another transport (or already
    settled) are not queued: they are acknowledged with their own `ack()`."""
    queued = []
    by_qos: dict[int, tuple[QoS, list]] = {}
    for message in messages:
        qos = getattr(getattr(message, "channel", None), "qos", None)
        if not isinstance(qos, QoS) or message.acknowledged:
            continue
        item = qos._moved.get(message.delivery_tag)
        if item is not None:
            pipe.lrem(INFLIGHT, -1, item)
        else:
            by_qos.setdefault(id(qos), (qos, []))[1].append(message.delivery_tag)
        queued.append(message)
    for qos, tags in by_qos.values():
        pipe.zrem(qos.unacked_index_key, *tags).hdel(qos.unacked_key, *tags)
    return queued


def settle_acked(messages: list) -> None:
    """kombu's local bookkeeping of an ack, for messages whose ack commands `queue_ack` queued and ran."""
    for message in messages:
        qos = message.channel.qos
        qos._moved.pop(message.delivery_tag, None)
        virtual.QoS.ack(qos, message.delivery_tag)
        message._state = "ACK"
