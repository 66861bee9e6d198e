"""The log of a LangGraph thread in its sessiondb session, and its in-memory mirror.

Owns the three annotation event types `SessionDBSaver` writes and how they are read back:

* `langgraph/value` (`ns`, `channel`, `version`; payload: a value record) — one channel
  value at one version, written only for the channels a checkpoint changed. A record is
  JSON text, so its blob id is known before it is written and the same value is stored once:
  `{"v": [type, b64]}` for a value, or `{"base": <blob id | null>, "items": [[type, b64], ...]}`
  for a list: the items appended to the list of the `base` record. A message list that grew
  by one message costs one message, not the list (step k costs O(change), not O(k)).
* `langgraph/checkpoint` (`ns`, `checkpoint_id`, `parent`; payload: `{"checkpoint": [type,
  b64], "metadata": [type, b64]}`), the checkpoint without its channel values.
* `langgraph/writes` (`ns`, `checkpoint_id`, `task_id`, `task_path`; payload: `[[idx,
  channel, type, b64], ...]`), a task's pending writes.
* `langgraph/pruned` (payload: `[[ns, checkpoint_id], ...]`), checkpoints `prune` removed.

`[type, b64]` is LangGraph's serializer output (`dumps_typed`) with its bytes in base64.
`Thread` applies these events in order, the way LangGraph's `InMemorySaver` keeps its
dictionaries, and materializes values on read. This module never writes to a store.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from ..store.blobs.canonical import blob_id

VALUE, CHECKPOINT, WRITES, PRUNED = "langgraph/value", "langgraph/checkpoint", "langgraph/writes", "langgraph/pruned"
TYPES = (VALUE, CHECKPOINT, WRITES, PRUNED)


def enc(typed: tuple[str, bytes]) -> list[str]:
    return [typed[0], base64.b64encode(typed[1]).decode("ascii")]


def dec(pair: list[str]) -> tuple[str, bytes]:
    return pair[0], base64.b64decode(pair[1])


def text(record: Any) -> str:
    return json.dumps(record, separators=(",", ":"), sort_keys=True)


def text_id(payload: str) -> str:
    """The blob id the store gives the text payload `payload` (its UTF-8 bytes)."""
    return blob_id(payload.encode("utf-8"))


def version_key(version: Any) -> str:
    return json.dumps(version)


@dataclass
class Thread:
    """What one thread's session holds, in the shape `InMemorySaver` keeps it."""

    thread_id: str
    session: str
    exists: bool = False
    known_event: int = 0
    head: str | None = None
    heads: set[str] = field(default_factory=set)
    # ns -> checkpoint id -> (checkpoint typed, metadata typed, parent id)
    storage: dict[str, dict[str, tuple[tuple[str, bytes], tuple[str, bytes], str | None]]] = field(default_factory=dict)
    # (ns, checkpoint id) -> (task id, idx) -> (task id, channel, typed, task path)
    writes: dict[tuple[str, str], dict[tuple[str, int], tuple[str, str, tuple[str, bytes], str]]] = field(
        default_factory=dict)
    # (ns, channel, version key) -> value record blob id (None: the channel was emptied)
    values: dict[tuple[str, str, str], str | None] = field(default_factory=dict)
    # value record blob id -> the record (decoded JSON)
    records: dict[str, Any] = field(default_factory=dict)
    # (ns, channel) -> (record blob id, the list it holds): the base for the next list value
    last_list: dict[tuple[str, str], tuple[str, list[Any]]] = field(default_factory=dict)

    # -- applying the log -------------------------------------------------------------------
    def apply(self, type_: str, fields: dict[str, Any], payload: str | None) -> None:
        if type_ == VALUE:
            key = (fields["ns"], fields["channel"], fields["version"])
            if payload is None:
                self.values[key] = None
            else:
                rid = text_id(payload)
                self.records[rid] = json.loads(payload)
                self.values[key] = rid
        elif type_ == CHECKPOINT:
            record = json.loads(payload or "{}")
            self.storage.setdefault(fields["ns"], {})[fields["checkpoint_id"]] = (
                dec(record["checkpoint"]), dec(record["metadata"]), fields.get("parent"))
        elif type_ == WRITES:
            self.apply_writes(fields["ns"], fields["checkpoint_id"], fields["task_id"], fields.get("task_path", ""),
                              [(w[0], w[1], (w[2], base64.b64decode(w[3]))) for w in json.loads(payload or "[]")])
        elif type_ == PRUNED:
            for ns, cid in json.loads(payload or "[]"):
                self.storage.get(ns, {}).pop(cid, None)
                self.writes.pop((ns, cid), None)

    def apply_writes(self, ns: str, cid: str, task_id: str, task_path: str,
                     writes: list[tuple[int, str, tuple[str, bytes]]]) -> list[tuple[int, str, tuple[str, bytes]]]:
        """Record writes as `InMemorySaver.put_writes` does (a regular write is kept once, a
        special one is replaced); returns the ones that changed anything."""
        stored = self.writes.setdefault((ns, cid), {})
        applied = []
        for idx, channel, typed in writes:
            inner = (task_id, idx)
            if idx >= 0 and inner in stored:
                continue
            stored[inner] = (task_id, channel, typed, task_path)
            applied.append((idx, channel, typed))
        return applied

    # -- reading values ---------------------------------------------------------------------
    def materialize(self, rid: str, loads: Any) -> Any:
        """The value a record holds (a list record: every item down its chain of bases)."""
        record = self.records[rid]
        if "v" in record:
            return loads(dec(record["v"]))
        chunks = []
        while True:
            chunks.append(record["items"])
            base = record["base"]
            if base is None:
                break
            record = self.records[base]
        return [loads(dec(item)) for chunk in reversed(chunks) for item in chunk]

    def channel_values(self, ns: str, versions: dict[str, Any], loads: Any) -> dict[str, Any]:
        out = {}
        for channel, version in versions.items():
            rid = self.values.get((ns, channel, version_key(version)), "missing")
            if rid is None or rid == "missing":
                continue
            out[channel] = self.materialize(rid, loads)
        return out
