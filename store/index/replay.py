"""Does the index hold what the store's batches say? The replay comparison behind `index/mismatch`.

The facts of every batch are derived from canonical rows (`facts.entity`), so once the index
has applied every batch, each entity in it must equal the map derived from that entity's
current row (cardinality-one attributes keep the last value written). For the entities
named in the batches under test this module derives the expected map from store.sqlite,
pulls the same entity from the index, and yields every attribute that differs. It reads
both files and writes neither.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import Connection, text

from ..datalog import Database
from ..writes.facts import ENTITIES, IDENTITY, SESSION_REF, entity

_SINGLE_KEY = {"sessions": "session_id", "heads": "head_id", "invocations": "invocation_id",
               "derivations": "derivation_id", "aliases": "name"}


def _pattern(table: str) -> list[Any]:
    """A pull pattern for one kind of entity: plain attributes, refs by their target's identity."""
    spec = ENTITIES[table]
    ns, pattern = spec["ns"], [spec["id"]]
    if table in SESSION_REF:
        pattern.append({f"{ns}/session": ["session/id"]})
    for attr, target in spec["cols"].values():
        pattern.append(f"{ns}/{attr}" if target is None else {f"{ns}/{attr}": [IDENTITY[target]]})
    return pattern


def _flat(entity_map: dict[str, Any] | None) -> dict[str, Any]:
    """Refs as the identity they point at: [attr, value] lists and pulled {attr: value} maps alike."""
    flat: dict[str, Any] = {}
    for attr, value in (entity_map or {}).items():
        if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and "/" in value[0]:
            value = value[1]
        elif isinstance(value, dict) and len(value) == 1:
            value = next(iter(value.values()))
        flat[attr] = value
    return flat


def _row(conn: Connection, table: str, identity: Any) -> dict[str, Any] | None:
    if table in _SINGLE_KEY:
        where, params = f"{_SINGLE_KEY[table]} = :k", {"k": identity}
    else:
        session, _, number = str(identity).rpartition("/")
        id_col = "event_id" if table == "events" else f"{ENTITIES[table]['ns']}_id"
        where, params = f"session_id = :s AND {id_col} = :n", {"s": session, "n": int(number)}
    row = conn.execute(text(f"SELECT * FROM {table} WHERE {where}"), params).first()
    return dict(row._mapping) if row is not None else None


def mismatches(store: Connection, index: Database, batches: Iterable[tuple[int, list[dict[str, Any]]]]
               ) -> Iterator[dict[str, Any]]:
    identity_tables = {spec["id"]: table for table, spec in ENTITIES.items()}
    seen: set[tuple[str, Any]] = set()
    for tx_id, facts in batches:
        for fact in facts:
            for attr, value in fact.items():
                if attr in identity_tables and (attr, value) not in seen:
                    seen.add((attr, value))
                    table = identity_tables[attr]
                    row = _row(store, table, value)
                    expected = _flat(entity(table, row)[1]) if row is not None else {}
                    actual = _flat(index.pull(_pattern(table), [attr, value]))
                    if row is None and set(actual) <= {attr}:
                        break  # gone, or the bare identity a delete leaves (store/forget/excise.py)
                    for name in sorted(set(expected) | set(actual)):
                        if expected.get(name) != actual.get(name):
                            yield {"tx_id": tx_id, "entity": f"{attr} {value}", "attr": name,
                                   "expected": expected.get(name), "actual": actual.get(name)}
                    break
