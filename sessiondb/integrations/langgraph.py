"""LangGraph checkpoints in sessiondb: `SessionDBSaver`, a `BaseCheckpointSaver`.

    from langgraph.graph import StateGraph
    from sessiondb import Store
    from sessiondb.integrations.langgraph import SessionDBSaver

    graph = builder.compile(checkpointer=SessionDBSaver(Store.open("var/store")))
    graph.invoke(inputs, {"configurable": {"thread_id": "t1"}})

Owns the mapping of LangGraph's checkpointer contract (`put`, `put_writes`, `get_tuple`,
`list`, `delete_thread`, `copy_thread`, `prune`, sync and async) onto session writes. It
never writes outside the sessions its thread ids map to.

* A thread is the session `lg:<key>:<generation>` (`_names`); `delete_thread` forgets it
  (`_forget`) and the thread id starts over on the next generation.
* A checkpoint of the root namespace is a head of that session, advancing the current head;
  a checkpoint whose parent is not the current one (time travel, `update_state` on an old
  checkpoint) first resumes the session at its parent's head, so LangGraph's forks are
  sessiondb branches. Checkpoints of subgraph namespaces are recorded, not heads.
* Only what changed is written: the values of the channels in `new_versions`, each a
  content-addressed payload, a list that grew as only its new items (`_langgraph_log`).

The saver mirrors each thread it touches in memory (built from the session's log on first
use, and again whenever the session has events this saver did not write). `list(None)`
lists the threads this saver has touched.

Needs `pip install "sessiondb[langgraph]"`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

try:
    from langchain_core.runnables import RunnableConfig
    from langgraph.checkpoint.base import (
        WRITES_IDX_MAP,
        BaseCheckpointSaver,
        ChannelVersions,
        Checkpoint,
        CheckpointMetadata,
        CheckpointTuple,
        get_checkpoint_id,
        get_checkpoint_metadata,
        writes_sort_key,
    )
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "sessiondb.integrations.langgraph needs LangGraph: pip install \"sessiondb[langgraph]\""
    ) from exc

import json

from blake3 import blake3

from ..store import HeadConflictError, Store
from . import _forget, _names
from ._backend import Backend
from ._langgraph_log import CHECKPOINT, PRUNED, TYPES, VALUE, WRITES, Thread, enc, text, text_id, version_key

PREFIX = "lg"
MAX_EVENTS = 5000  # per write when a copy replays a thread (the store's limit is 10,000)


def head_id(session: str, checkpoint_id: str) -> str:
    return "lg." + blake3(f"{session}\0{checkpoint_id}".encode()).hexdigest()[:40]


class SessionDBSaver(BaseCheckpointSaver[str]):
    """A LangGraph checkpointer that keeps every thread in a sessiondb session.

    Args:
        target: a `sessiondb.Store` (embedded: this process owns the root) or a
            `sessiondb.SessionClient` (writes through the fleet).
        reader: where values are read from with a `SessionClient`: a read-only `Store` of
            the fleet's root (default: `Store.open_readonly(client.settings.root)`; the
            fleet's `reads` queue does not serve payloads).
        serde: LangGraph's serializer (default: its JSON-plus/msgpack one).
        receipt_timeout: with a `SessionClient`, how long a write waits for its receipt.
    """

    def __init__(self, target: Any, *, reader: Store | None = None, serde: Any = None,
                 receipt_timeout: float = 60.0) -> None:
        super().__init__(serde=serde)
        self._backend = Backend(target, receipt_timeout=receipt_timeout, reader=reader)
        self._lock = threading.RLock()
        self._threads: dict[str, Thread] = {}

    def close(self) -> None:
        """Close the read-only store this saver opened (not the target)."""
        self._backend.close()

    # -- threads ----------------------------------------------------------------------------
    def session_of(self, thread_id: str) -> str:
        """The sessiondb session the thread `thread_id` is kept in now."""
        with self._lock:
            return self._thread(thread_id).session

    def _thread(self, thread_id: str, fresh: bool = True) -> Thread:
        """The mirror of a thread, brought up to date with its session when `fresh`."""
        thread_id = str(thread_id)
        thread = self._threads.get(thread_id)
        if thread is None:
            n, exists = _forget.current_generation(self._backend,
                                                   lambda g: _names.session_name(PREFIX, thread_id, g))
            thread = Thread(thread_id, _names.session_name(PREFIX, thread_id, n), exists=exists)
            self._threads[thread_id] = thread
            if exists:
                self._rebuild(thread)
        elif fresh and thread.exists and self._backend.counters(thread.session)["event"] != thread.known_event:
            self._rebuild(thread)  # someone else wrote to it
        return thread

    def _rebuild(self, thread: Thread) -> None:
        history = self._backend.history(thread.session)
        fresh = Thread(thread.thread_id, thread.session, exists=True)
        for _, type_, fields, payload in self._backend.annotations(history, TYPES):
            fresh.apply(type_, fields, payload)
        fresh.heads = {h["head_id"] for h in history["heads"]}
        fresh.head = history["refs"]["current_head"]
        fresh.known_event = history["counters"]["event"]
        for ns, cps in fresh.storage.items():  # the newest list of each channel: the base for the next
            if cps:
                ckpt = self.serde.loads_typed(cps[max(cps)][0])
                for ch, ver in ckpt.get("channel_versions", {}).items():
                    rid = fresh.values.get((ns, ch, version_key(ver)))
                    if rid is not None and "items" in fresh.records[rid]:
                        fresh.last_list[(ns, ch)] = (rid, fresh.materialize(rid, self.serde.loads_typed))
        self._threads[thread.thread_id] = fresh
        thread.__dict__.update(fresh.__dict__)

    def _write(self, thread: Thread, events: list[dict[str, Any]]) -> None:
        if not thread.exists:
            events = [{"type": "session/started", "title": thread.thread_id[:200]}, *events]
        receipt = self._backend.write(thread.session, events)
        thread.exists = True
        if receipt.get("event_ids"):
            thread.known_event = max(thread.known_event, max(receipt["event_ids"]))

    # -- reads ------------------------------------------------------------------------------
    def _tuple(self, thread: Thread, ns: str, cid: str) -> CheckpointTuple:
        ckpt_typed, meta_typed, parent = thread.storage[ns][cid]
        checkpoint = self.serde.loads_typed(ckpt_typed)
        stored = thread.writes.get((ns, cid), {})
        ordered = [stored[k] for k in sorted(stored, key=lambda k: writes_sort_key(stored[k][3], *k))]
        tid = thread.thread_id
        return CheckpointTuple(
            config={"configurable": {"thread_id": tid, "checkpoint_ns": ns, "checkpoint_id": cid}},
            checkpoint={**checkpoint, "channel_values": thread.channel_values(
                ns, checkpoint["channel_versions"], self.serde.loads_typed)},
            metadata=self.serde.loads_typed(meta_typed),
            parent_config={"configurable": {"thread_id": tid, "checkpoint_ns": ns, "checkpoint_id": parent}}
            if parent else None,
            pending_writes=[(t, c, self.serde.loads_typed(v)) for t, c, v, _ in ordered],
        )

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint `config` names (`checkpoint_id`), or the thread's latest in its namespace."""
        conf = config["configurable"]
        ns = conf.get("checkpoint_ns", "")
        with self._lock:
            thread = self._thread(conf["thread_id"])
            cps = thread.storage.get(ns, {})
            cid = get_checkpoint_id(config)
            if cid is None:
                if not cps:
                    return None
                cid = max(cps)
            elif cid not in cps:
                return None
            return self._tuple(thread, ns, cid)

    def list(self, config: RunnableConfig | None, *, filter: dict[str, Any] | None = None,
             before: RunnableConfig | None = None, limit: int | None = None) -> Iterator[CheckpointTuple]:
        """Checkpoints newest first, as `InMemorySaver.list` filters them."""
        with self._lock:
            if config is not None:
                threads = [self._thread(config["configurable"]["thread_id"])]
                want_ns = config["configurable"].get("checkpoint_ns")
                want_id = get_checkpoint_id(config)
            else:
                threads = [self._thread(t) for t in list(self._threads)]
                want_ns = want_id = None
            before_id = get_checkpoint_id(before) if before else None
            out = []
            for thread in threads:
                for ns, cps in thread.storage.items():
                    if want_ns is not None and ns != want_ns:
                        continue
                    for cid in sorted(cps, reverse=True):
                        if want_id and cid != want_id:
                            continue
                        if before_id and cid >= before_id:
                            continue
                        if filter:
                            metadata = self.serde.loads_typed(cps[cid][1])
                            if not all(metadata.get(k) == v for k, v in filter.items()):
                                continue
                        if limit is not None and len(out) >= limit:
                            break
                        out.append(self._tuple(thread, ns, cid))
        yield from out

    # -- writes -----------------------------------------------------------------------------
    def put(self, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata,
            new_versions: ChannelVersions) -> RunnableConfig:
        """Record a checkpoint: the changed channel values, the checkpoint, and (root namespace) a head."""
        conf = config["configurable"]
        ns = conf.get("checkpoint_ns", "")
        parent = conf.get("checkpoint_id")
        values = checkpoint.get("channel_values", {})
        c = {k: v for k, v in checkpoint.items() if k != "channel_values"}
        with self._lock:
            thread = self._thread(conf["thread_id"], fresh=False)
            for attempt in range(5):
                events, staged = self._value_events(thread, ns, values, new_versions)
                meta = get_checkpoint_metadata(config, metadata)
                ckpt_payload = text({"checkpoint": enc(self.serde.dumps_typed(c)),
                                     "metadata": enc(self.serde.dumps_typed(meta))})
                events.append({"type": CHECKPOINT, "ns": ns, "checkpoint_id": checkpoint["id"], "parent": parent,
                               "payload": ckpt_payload})
                new_head = head_id(thread.session, checkpoint["id"]) if ns == "" else None
                if new_head is not None and new_head not in thread.heads:
                    expected = thread.head
                    parent_head = head_id(thread.session, parent) if parent else None
                    if parent_head in thread.heads and parent_head != thread.head:
                        events.append({"type": "session/restored", "kind": "resume", "source": thread.session,
                                       "source_head": parent_head, "expected_head": thread.head})
                        expected = parent_head
                    events.append({"type": "head/created", "head_id": new_head, "kind": "turn-final",
                                   "expected_head": expected,
                                   "state": {"checkpoint_id": checkpoint["id"], "step": metadata.get("step")}})
                else:
                    new_head = None
                try:
                    self._write(thread, events)
                except HeadConflictError:
                    if attempt == 4:
                        raise
                    self._rebuild(thread)
                    continue
                for type_, fields, payload in staged:
                    thread.apply(type_, fields, payload)
                thread.apply(CHECKPOINT, {"ns": ns, "checkpoint_id": checkpoint["id"], "parent": parent}, ckpt_payload)
                if new_head is not None:
                    thread.heads.add(new_head)
                    thread.head = new_head
                for (key, entry) in staged_lists(staged):
                    thread.last_list[key] = entry
                break
        return {"configurable": {"thread_id": conf["thread_id"], "checkpoint_ns": ns,
                                 "checkpoint_id": checkpoint["id"]}}

    def _value_events(self, thread: Thread, ns: str, values: dict[str, Any],
                      new_versions: ChannelVersions) -> tuple[list[dict[str, Any]], list[tuple[str, dict, Any]]]:
        """The `langgraph/value` events of the changed channels and what to apply to the mirror
        once they are committed (a `list` entry: the new base of the channel's next list)."""
        events: list[dict[str, Any]] = []
        staged: list[tuple[str, dict, Any]] = []
        for channel, version in new_versions.items():
            fields = {"ns": ns, "channel": channel, "version": version_key(version)}
            if channel not in values:
                events.append({"type": VALUE, **fields})
                staged.append((VALUE, fields, None))
                continue
            value = values[channel]
            if isinstance(value, list):
                base = thread.last_list.get((ns, channel))
                if base is not None and extends(value, base[1]):
                    record = {"base": base[0], "items": [enc(self.serde.dumps_typed(x)) for x in value[len(base[1]):]]}
                else:
                    record = {"base": None, "items": [enc(self.serde.dumps_typed(x)) for x in value]}
            else:
                record = {"v": enc(self.serde.dumps_typed(value))}
            payload = text(record)
            staged.append((VALUE, fields, payload))
            if isinstance(value, list):
                staged.append(("list", {"key": (ns, channel)}, (text_id(payload), list(value))))
            events.append({"type": VALUE, **fields, "payload": payload})
        return events, staged

    def put_writes(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str,
                   task_path: str = "") -> None:
        """Record a task's pending writes on the checkpoint `config` names."""
        conf = config["configurable"]
        ns, cid = conf.get("checkpoint_ns", ""), conf["checkpoint_id"]
        typed = [(WRITES_IDX_MAP.get(ch, idx), ch, self.serde.dumps_typed(v)) for idx, (ch, v) in enumerate(writes)]
        with self._lock:
            thread = self._thread(conf["thread_id"], fresh=False)
            stored = thread.writes.get((ns, cid), {})
            new = [w for w in typed if not (w[0] >= 0 and (task_id, w[0]) in stored)]
            if not new:
                return
            payload = json.dumps([[idx, ch, t[0], enc(t)[1]] for idx, ch, t in new], separators=(",", ":"))
            self._write(thread, [{"type": WRITES, "ns": ns, "checkpoint_id": cid, "task_id": task_id,
                                  "task_path": task_path, "payload": payload}])
            thread.apply_writes(ns, cid, task_id, task_path, new)

    def delete_thread(self, thread_id: str) -> None:
        """Forget the thread's session; the thread id starts over, empty."""
        with self._lock:
            thread = self._thread(thread_id, fresh=False)
            if thread.exists:
                _forget.forget(self._backend, thread.session)
            self._threads.pop(str(thread_id), None)

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint and write of a thread to another thread (its session gets the
        same log; every payload is content-addressed, so no value is stored twice)."""
        with self._lock:
            source = self._thread(source_thread_id)
            if not source.exists:
                return
            target = self._thread(target_thread_id)
            events = []
            for _, type_, fields, payload in self._backend.annotations(self._backend.history(source.session), TYPES):
                events.append({"type": type_, **fields, **({"payload": payload} if payload is not None else {})})
            for k in range(0, len(events), MAX_EVENTS):
                self._write(target, events[k:k + MAX_EVENTS])
            self._threads.pop(target.thread_id, None)
            self._thread(target_thread_id)  # rebuilt from what was written

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """`keep_latest`: keep each namespace's latest checkpoint (and its writes); `delete`: none."""
        if strategy not in ("keep_latest", "delete"):
            raise ValueError(f"unknown prune strategy {strategy!r}: keep_latest or delete")
        with self._lock:
            for tid in thread_ids:
                thread = self._thread(tid)
                if not thread.exists:
                    continue
                gone = [[ns, cid] for ns, cps in thread.storage.items() for cid in sorted(cps)
                        if strategy == "delete" or cid != max(cps)]
                if gone:
                    payload = json.dumps(gone, separators=(",", ":"))
                    self._write(thread, [{"type": PRUNED, "payload": payload}])
                    thread.apply(PRUNED, {}, payload)

    # -- async: the same, off the event loop -------------------------------------------------
    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await asyncio.to_thread(self.get_tuple, config)

    async def alist(self, config: RunnableConfig | None, *, filter: dict[str, Any] | None = None,
                    before: RunnableConfig | None = None, limit: int | None = None) -> AsyncIterator[CheckpointTuple]:
        items = await asyncio.to_thread(lambda: list(self.list(config, filter=filter, before=before, limit=limit)))
        for item in items:
            yield item

    async def aput(self, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata,
                   new_versions: ChannelVersions) -> RunnableConfig:
        return await asyncio.to_thread(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str,
                          task_path: str = "") -> None:
        await asyncio.to_thread(self.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        await asyncio.to_thread(self.delete_thread, thread_id)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await asyncio.to_thread(self.copy_thread, source_thread_id, target_thread_id)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        await asyncio.to_thread(self.prune, thread_ids, strategy=strategy)


def extends(value: list[Any], base: list[Any]) -> bool:
    """Is `base` a prefix of `value` (the same items, in order)?"""
    if len(value) < len(base):
        return False
    for a, b in zip(value, base, strict=False):
        if a is not b and (type(a) is not type(b) or a != b):
            return False
    return True


def staged_lists(staged: list[tuple[str, dict, Any]]) -> Iterator[tuple[tuple[str, str], tuple[str, list[Any]]]]:
    for type_, fields, payload in staged:
        if type_ == "list":
            yield fields["key"], payload
