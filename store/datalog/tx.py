"""Transactions: tx data -> resolved operations -> datoms written to storage.

Owns: entity-map expansion, tempid and lookup-ref resolution, upserts on
``:db.unique/identity``, uniqueness and cardinality rules, and the report.
Runs inside a SQLite transaction opened by the caller (``db.Database``).
Must never: commit, roll back, or evaluate queries.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, NamedTuple

from . import edn
from .errors import TransactError
from .schema import Schema
from .storage import Storage, decode, encode

# The functional form keeps the field types real objects (not strings under `from __future__
# import annotations`), so tools that read the signature, such as pdoc, can resolve them.
Datom = NamedTuple("Datom", [("e", int), ("a", str), ("v", Any), ("tx", int), ("added", bool)])  # noqa: UP014
Datom.__doc__ = "One fact: entity `e` has value `v` for attribute `a`, added (or retracted) by transaction `tx`."


@dataclass
class TxReport:
    """What one transaction did: its tx id, resolved tempids, datoms added/retracted."""

    tx: int
    tempids: dict[Any, int] = field(default_factory=dict)
    tx_data: list[Datom] = field(default_factory=list)
    added: int = 0
    retracted: int = 0


class _Auto:
    """The implicit tempid of an entity map without :db/id."""

    __slots__ = ()


_ADD, _RETRACT, _RETRACT_ATTR, _RETRACT_ENTITY = "add", "retract", "retract-attr", "retract-entity"
_OPS = {
    "db/add": _ADD,
    "db/retract": _RETRACT,
    "db/retractEntity": _RETRACT_ENTITY,
    "db.fn/retractEntity": _RETRACT_ENTITY,
}
_LISTY = (list, tuple)
_SCALARS = {str, int, float, bool}
_SECOND = itemgetter(1)  # fast exact-type test before the slow ABC isinstance


def _is_tempid(x: Any) -> bool:
    t = type(x)
    return t is str or t is _Auto or (t is int and x < 0)


class Transactor:
    """Applies tx data against one ``Storage`` with one ``Schema``."""

    def __init__(self, storage: Storage, schema: Schema) -> None:
        self.st = storage
        self.schema = schema
        self._identity = {a for a, at in schema.attrs.items() if at.unique == "identity"}
        self._attr_info: dict[str, tuple[Any, int]] = {}  # ident -> (Attr, attr id), across transactions

    def reset(self) -> None:
        """Forget cached attribute ids (a rolled-back transaction may have created some)."""
        self._attr_info.clear()

    # -- phase 0: tx data -> ops ---------------------------------------------
    def _expand(self, tx_data: Any) -> list[list[Any]]:
        if isinstance(tx_data, str):
            tx_data = edn.plain(edn.read(tx_data))
        if isinstance(tx_data, Mapping) or not isinstance(tx_data, (list, tuple)):
            raise TransactError(f"tx data must be a list of entity maps and ops, got {type(tx_data).__name__}")
        ops: list[list[Any]] = []
        for item in tx_data:
            if type(item) is dict or isinstance(item, Mapping):
                self._expand_map(item, ops)
            elif isinstance(item, _LISTY) and item:
                op = _OPS.get(edn.ident(item[0]) or "")
                if op is None:
                    raise TransactError(f"unknown operation {edn.fmt(item[0])} in {edn.fmt(list(item))}")
                if op == _RETRACT_ENTITY:
                    if len(item) != 2:
                        raise TransactError(f"retractEntity takes one entity: {edn.fmt(list(item))}")
                    ops.append([op, item[1], None, None])
                    continue
                if len(item) == 3 and op == _RETRACT:
                    ops.append([_RETRACT_ATTR, item[1], self._attr(item[2], item), None])
                    continue
                if len(item) != 4:
                    raise TransactError(f"expected [op e a v], got {edn.fmt(list(item))}")
                ops.append([op, item[1], self._attr(item[2], item), item[3]])
            else:
                raise TransactError(f"cannot transact {edn.fmt(item)}: expected an entity map or [op e a v]")
        return ops

    def _attr(self, a: Any, form: Any) -> str:
        name = edn.ident(a)
        if name is None or name == "db/id":
            raise TransactError(f"bad attribute {edn.fmt(a)} in {edn.fmt(form)}")
        return name

    def _expand_map(self, m: Mapping, ops: list[list[Any]]) -> Any:
        ident = edn.ident
        eid = m.get("db/id")
        if eid is None:
            for k in m:
                if ident(k) == "db/id":
                    eid = m[k]
                    break
            else:
                eid = _Auto()
        attrs = self.schema.attrs
        append = ops.append
        for k, v in m.items():
            a = ident(k)
            if a is None:
                raise TransactError(f"bad attribute {edn.fmt(k)} in entity map")
            attr = attrs.get(a)
            if attr is None:
                if a == "db/id":
                    continue
                if "/_" in a or a.startswith("_"):
                    self._expand_reverse(a, v, eid, ops)
                    continue
                if type(v) not in _SCALARS and isinstance(v, Mapping):
                    raise TransactError(f"nested map for :{a}, which is not a ref attribute")
                append([_ADD, eid, a, v])  # the common case: a plain value
            elif attr.ref:
                if attr.many and isinstance(v, (list, tuple, set, frozenset)) and not self._is_lookup(v):
                    vals = list(v)
                else:
                    vals = [v]
                for x in vals:
                    if type(x) not in _SCALARS and isinstance(x, Mapping):
                        x = self._expand_map(x, ops)
                    append([_ADD, eid, a, x])
            elif attr.many and isinstance(v, (list, tuple, set, frozenset)):
                for x in v:
                    append([_ADD, eid, a, x])
            else:
                append([_ADD, eid, a, v])
        return eid

    def _expand_reverse(self, a: str, v: Any, eid: Any, ops: list[list[Any]]) -> None:
        name = a.rsplit("/", 1)[-1]
        fwd = a[: len(a) - len(name)] + name[1:]
        if not self.schema.is_ref(fwd):
            raise TransactError(f"reverse attribute :{a} needs :{fwd} to be a ref")
        vals = v if isinstance(v, _LISTY) and not self._is_lookup(v) else [v]
        for x in vals:
            child = self._expand_map(x, ops) if isinstance(x, Mapping) else x
            ops.append([_ADD, child, fwd, eid])

    def _is_lookup(self, x: Any) -> bool:
        return (
            isinstance(x, _LISTY)
            and len(x) == 2
            and (isinstance(x[0], edn.Keyword) or (isinstance(x[0], str) and self.schema.unique(edn.ident(x[0]) or "")))
            and not isinstance(x[1], (Mapping, list))
        )

    # -- phase 1: lookup refs and tempids -----------------------------------------
    def lookup(self, ref: Any) -> int | None:
        a = edn.ident(ref[0]) or ""
        if not self.schema.unique(a):
            raise TransactError(f"lookup ref attribute :{a} must be :db/unique")
        aid = self.st.attr_id(a)
        if aid is None:
            return None
        v = ref[1]
        if self.schema.is_ref(a) and isinstance(v, _LISTY):
            v = self.lookup(v)
            if v is None:
                return None
        return self.st.entity_with(aid, encode(v))

    def _resolve_tempids(self, ops: list[list[Any]]) -> tuple[dict[Any, int], set[int], set]:
        schema = self.schema
        order: dict[Any, None] = {}
        idents: list[tuple[Any, str, Any]] = []
        identity = self._identity
        for op, e, a, v in ops:
            te = type(e)
            if te is str or te is _Auto or (te is int and e < 0):
                order[e] = None  # dicts keep first insertion order
                if a in identity and op is _ADD:
                    if schema.is_ref(a):
                        if isinstance(v, _LISTY):
                            v = self.lookup(v)
                        if v is None or _is_tempid(v):
                            continue
                    idents.append((e, a, encode(v)))
        resolved: dict[Any, int] = {}
        by_attr: dict[str, list[Any]] = {}
        for _tmp, a, v in idents:
            by_attr.setdefault(a, []).append(v)
        found: dict[tuple[str, Any], int] = {}
        aids = {self.st.attr_id(a): a for a in by_attr}
        aids.pop(None, None)
        if aids:
            for aid, v, e in self.st.entities_with_any(list(aids), [v for vs in by_attr.values() for v in vs]):
                a = aids[aid]
                found[(a, v)] = e  # an (a, v) pair not asked for is never looked up below
        new_owner: dict[tuple[str, Any], Any] = {}
        alias: dict[Any, Any] = {}
        for tmp, a, v in idents:
            e = found.get((a, v))
            if e is not None:
                prev = resolved.get(tmp)
                if prev is not None and prev != e:
                    raise TransactError(f"conflicting upserts: tempid {edn.fmt(tmp)} resolves to {prev} and {e}")
                resolved[tmp] = e
            else:
                owner = new_owner.setdefault((a, v), tmp)
                if owner is not tmp:
                    alias[tmp] = owner
        fresh: set[int] = set()
        next_eid = int(self.st.meta.get("max_eid", "0"))
        for tmp in order:
            if tmp in resolved:
                continue
            target = alias.get(tmp)
            if target is not None and target in resolved:
                resolved[tmp] = resolved[target]
                continue
            next_eid += 1
            resolved[tmp] = next_eid
            fresh.add(next_eid)
        if fresh:
            self.st.set_meta("max_eid", str(next_eid))
        # identity values looked up above and absent from the store: no need to re-check them
        absent = {(a, v) for _t, a, v in idents if (a, v) not in found}
        return resolved, fresh, absent

    # -- phase 2: apply ---------------------------------------------------------
    def apply(self, tx_data: Any, collect: bool = True) -> TxReport:
        st, schema = self.st, self.schema
        ops = self._expand(tx_data)
        tempids, fresh, absent = self._resolve_tempids(ops)
        tx = int(st.meta.get("max_tx", str(TX0_DEFAULT))) + 1
        st.set_meta("max_tx", str(tx))
        report = TxReport(tx)
        lookups: dict[tuple, int] = {}
        max_eid = int(st.meta.get("max_eid", "0"))

        def entity(x: Any, form: Any) -> int:
            t = type(x)
            if t is int and x > 0:
                return x
            if _is_tempid(x):
                e = tempids.get(x)
                if e is None:
                    raise TransactError(f"tempid {edn.fmt(x)} is used only as a value in {edn.fmt(form)}")
                return e
            if isinstance(x, _LISTY) and len(x) == 2:
                key = (edn.ident(x[0]), x[1] if not isinstance(x[1], list) else tuple(x[1]))
                e = lookups.get(key)
                if e is None:
                    aid = st.attr_id(edn.ident(x[0]) or "")
                    if aid is not None and not isinstance(x[1], _LISTY):
                        e = pending_unique.get((aid, encode(x[1])))  # entity made earlier in this tx
                    if e is None:
                        e = self.lookup(x)
                    if e is None:
                        raise TransactError(f"nothing found for lookup ref {edn.fmt(list(x))}")
                    lookups[key] = e
                return e
            raise TransactError(f"expected an entity id, tempid or lookup ref, got {edn.fmt(x)} in {edn.fmt(form)}")

        pending: dict[tuple[int, int, Any], None] = {}  # inserts for fresh entities, flushed at the end
        fresh_vals: dict[tuple[int, int], list[Any]] = {}
        pending_unique: dict[tuple[int, Any], int] = {}
        counts = st.attr_counts
        changed: set[int] = set()
        out = report.tx_data if collect else None
        attr_info = self._attr_info

        def note(e: int, aid: int, a: str, enc: Any, added: bool, stored: bool = True) -> None:
            # datoms of fresh entities (``stored=False``) are counted from ``pending`` at the end
            if stored:
                counts[aid] = counts.get(aid, 0) + (1 if added else -1)
                changed.add(aid)
            if added:
                report.added += 1
            else:
                report.retracted += 1
            if out is not None:
                out.append(Datom(e, a, decode(enc), tx, added))

        def remove(e: int, aid: int, a: str, enc: Any) -> None:
            if e in fresh:
                if (e, aid, enc) in pending:
                    del pending[(e, aid, enc)]
                    fresh_vals[(e, aid)].remove(enc)
                    pending_unique.pop((aid, enc), None)
                    note(e, aid, a, enc, False, stored=False)
            elif st.delete(e, aid, enc):
                note(e, aid, a, enc, False)

        fresh_added = 0
        for form in ops:
            op, e_raw, a, v = form
            if type(e_raw) is int and e_raw > 0:
                e = e_raw
            else:
                e = tempids.get(e_raw) if type(e_raw) is not list else None
                if e is None:
                    e = entity(e_raw, form)
            is_fresh = e in fresh
            if not is_fresh and e > max_eid:
                max_eid = e
                st.set_meta("max_eid", str(max_eid))
            if op is _ADD:
                info = attr_info.get(a)
                if info is None:
                    info = attr_info[a] = (schema.get(a), st.attr_id(a, create=True))
                attr, aid = info
                if attr.ref:
                    if not (type(v) is int and v > 0):
                        v = tempids.get(v) if type(v) is str else None
                        if v is None:
                            v = entity(form[3], form)
                elif v is None:
                    raise TransactError(f"cannot assert nil value for :{a} in {edn.fmt(form)}")
                enc = v if type(v) is str else encode(v)
                if (
                    is_fresh
                    and out is None
                    and not attr.many
                    and (not attr.unique or (a, enc) in absent)
                    and (e, aid) not in fresh_vals
                ):
                    # hot path of bulk apply: first value of a cardinality-one attribute on a new entity
                    # (identity values were already looked up and found absent)
                    fresh_vals[(e, aid)] = [enc]
                    pending[(e, aid, enc)] = None
                    if attr.unique:
                        pending_unique[(aid, enc)] = e
                    fresh_added += 1
                    continue
                if attr.unique and not (is_fresh and (a, enc) in absent):
                    owner = pending_unique.get((aid, enc))
                    if owner is None:
                        owner = st.entity_with(aid, enc)
                    if owner is not None and owner != e:
                        raise TransactError(
                            f"unique conflict: :{a} {edn.fmt(v)} already belongs to entity {owner}, cannot add to {e}"
                        )
                if e in fresh:
                    vals = fresh_vals.setdefault((e, aid), [])
                    if enc in vals:
                        continue
                    if not attr.many and vals:
                        remove(e, aid, a, vals[0])
                    vals.append(enc)
                    pending[(e, aid, enc)] = None
                    if attr.unique:
                        pending_unique[(aid, enc)] = e
                    note(e, aid, a, enc, True, stored=False)
                else:
                    if attr.many:
                        if st.exists(e, aid, enc):
                            continue
                    else:
                        olds = st.values(e, aid)
                        if enc in olds:
                            continue
                        for old in olds:
                            remove(e, aid, a, old)
                    st.insert([(e, aid, enc, tx)])
                    note(e, aid, a, enc, True)
                continue
            if op == _RETRACT_ENTITY:
                self._retract_entity(e, fresh, pending, fresh_vals, remove, set())
                continue
            aid = st.attr_id(a)
            if aid is None:
                continue  # nothing was ever asserted with this attribute
            if op == _RETRACT_ATTR:
                olds = list(fresh_vals.get((e, aid), ())) if e in fresh else st.values(e, aid)
                for old in olds:
                    remove(e, aid, a, old)
                continue
            if schema.is_ref(a):
                v = entity(v, form)
            remove(e, aid, a, encode(v))
        report.added += fresh_added
        if pending:
            st.insert([(e, aid, enc, tx) for (e, aid, enc) in pending])
            for aid, n in Counter(map(_SECOND, pending)).items():  # C-speed counting
                counts[aid] = counts.get(aid, 0) + n
                changed.add(aid)
        st.save_counts(changed)
        report.tempids = {k: v for k, v in tempids.items() if type(k) is not _Auto}
        report.tempids["db/current-tx"] = tx
        return report

    def _retract_entity(self, e, fresh, pending, fresh_vals, remove, seen: set[int]) -> None:
        if e in seen:
            return
        seen.add(e)
        st, names = self.st, self.st.attr_names
        if e in fresh:
            own = [(aid, enc) for (pe, aid, enc) in pending if pe == e]
        else:
            own = st.entity_datoms(e)
        for aid, enc in own:
            a = names[aid]
            remove(e, aid, a, enc)
            attr = self.schema.get(a)
            if attr.component and type(enc) is int:
                self._retract_entity(enc, fresh, pending, fresh_vals, remove, seen)
        for a, attr in self.schema.attrs.items():
            aid = st.attr_id(a)
            if attr.ref and aid is not None:
                for src in [pe for (pe, paid, penc) in pending if paid == aid and penc == e]:
                    remove(src, aid, a, e)
                for src, _aid, _v in st.scan(aid, v=e):
                    remove(src, aid, a, e)


TX0_DEFAULT = 536870912
