"""Excising a deleted session's facts from the transaction log, and what the indexer must retract.

Each tx row keeps its tx id, write id and place in the order; its `facts` lose the entity
maps of the deleted entities. A deleted session and its deleted heads keep an identity-only
map (`{"session/id": "s1"}`: an id, no content) because facts that stay (a detached fork's
derivation, an invocation of the other party, a kept row) refer to them by lookup ref; every
other deleted entity (messages, turns, evals, calls, snapshots, events, invocations,
derivations, aliases, payloads) goes entirely. The delete's own batch carries the list of
excised identities under `EXCISE`; the indexer (store/index/derived.py) turns it into
retractions of whatever of them its index holds, so an index caught up incrementally and one
rebuilt from the excised log hold the same facts. Runs in the writer's transaction; never
commits.
"""

from __future__ import annotations

from typing import Any

import msgspec
from sqlalchemy import Connection, and_, bindparam, not_, or_, select, update

from ..rows import schema
from ..rows.branch import Ranges
from ..writes.facts import ENTITIES

_json = msgspec.json.Encoder(order="sorted")

#: the key of the delete batch's map listing the excised identities: [[attr, value, keep identity], ...]
EXCISE = "sessiondb/excise"
#: identity attributes whose deleted entities keep a bare identity (other facts refer to them)
KEEP_IDENTITY = {"session/id", "head/id"}
#: identity attr -> table
_IDENTITY_TABLE = {spec["id"]: table for table, spec in ENTITIES.items()}


def _ranges(table: schema.Table, ranges: Ranges) -> Any:
    return or_(*[table.c.event_id.between(lo, hi) for lo, hi in ranges]) if ranges else None


def removed_ids(conn: Connection, sid: str, keep: Ranges, heads: set[str]) -> dict[str, set[str]]:
    """identity attr -> the identities of `sid`'s entities the delete removes (before it runs)."""
    found: dict[str, set[str]] = {"session/id": {sid}}
    for table in (schema.messages, schema.turns, schema.evals, schema.calls, schema.snapshots, schema.events,
                  schema.heads):
        spec = ENTITIES[table.name]
        where = table.c.session_id == sid
        kept = _ranges(table, keep) if table is not schema.events else None
        if kept is not None:
            where = and_(where, not_(kept))
        if table is schema.heads:
            ids = {h for h in conn.execute(select(table.c.head_id).where(where)).scalars()} - heads
        else:
            column = table.c.event_id if table is schema.events else table.c[f"{spec['ns']}_id"]
            ids = {f"{sid}/{n}" for n in conn.execute(select(column).where(where)).scalars()}
        found[spec["id"]] = ids
    for table, column, key in ((schema.invocations, schema.invocations.c.caller_session, "invocation_id"),
                               (schema.derivations, schema.derivations.c.target_session, "derivation_id"),
                               (schema.aliases, schema.aliases.c.session_id, "name")):
        found[ENTITIES[table.name]["id"]] = set(conn.execute(select(table.c[key]).where(column == sid)).scalars())
    return found


def _identity(entity_map: dict[str, Any]) -> tuple[str, Any] | None:
    for attr, value in entity_map.items():
        if attr in _IDENTITY_TABLE or attr == "blob/id":
            return attr, value
    return None


def excised(facts: list[Any], removed: dict[str, set[str]], freed: set[str]) -> list[Any] | None:
    """`facts` without the removed entities (None: nothing to change)."""
    out: list[Any] = []
    changed = False
    for item in facts:
        ident = _identity(item) if isinstance(item, dict) else None
        if ident is None:
            out.append(item)
            continue
        attr, value = ident
        gone = value in freed if attr == "blob/id" else value in removed.get(attr, ())
        if not gone:
            out.append(item)
        elif attr in KEEP_IDENTITY:
            bare = {attr: value}
            changed = changed or item != bare
            if bare not in out:
                out.append(bare)
            else:
                changed = True
        else:
            changed = True
    return out if changed else None


def excise_log(conn: Connection, sid: str, removed: dict[str, set[str]], freed: set[str]) -> list[list[Any]]:
    """Rewrite the tx batches of `sid` without its removed entities; returns the retractions
    for the indexer: `[identity attr, value, keep identity]` for each removed entity."""
    tx = schema.tx
    rows = conn.execute(select(tx.c.tx_id, tx.c.facts).where(tx.c.session_id == sid).order_by(tx.c.tx_id)).all()
    changed = []
    for tx_id, stored in rows:
        new = excised(msgspec.json.decode(stored), removed, freed)
        if new is not None:
            changed.append({"id": tx_id, "facts": _json.encode(new)})
    if changed:
        conn.execute(update(tx).where(tx.c.tx_id == bindparam("id")).values(facts=bindparam("facts")), changed)
    return [[attr, value, attr in KEEP_IDENTITY] for attr, values in sorted(removed.items())
            for value in sorted(values)]
