"""The datom database: a schema and the datoms of one SQLite file, and the reads over them.

Owns: opening a datoms file with a schema, running transactions (one SQLite
transaction each, or many in one for bulk apply), read snapshots, and the
entity-level reads used by query evaluation (``scan_pattern``) and pull
(``entity_attrs``, ``reverse_refs``).  Like DataScript's db, it knows nothing of
queries or pull patterns: ``api.Database`` adds ``q``/``pull`` on top.
Must never: import the query side (parser, query, find, pull, rules), hold query or
transaction logic itself, or let a non-Datalog exception escape a public call.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Any, Self

from edn_format import Keyword

from . import edn
from .errors import DatalogError, QueryError, TransactError
from .relation import getter
from .schema import Schema, parse_schema
from .storage import Storage, decode, decode_many, encode
from .tx import Datom, Transactor, TxReport
from .values import unwrap, wrap

_LISTY = (list, tuple)
_USER_META = "user:"


@dataclass
class BulkReport:
    """Summary of ``transact_many``: no per-datom report, to keep bulk apply cheap."""

    txs: int
    added: int
    retracted: int
    last_tx: int | None


class DatomDb:
    """The datoms of one SQLite file (or ``":memory:"``) under a schema; no query language."""

    def __init__(self, storage: Storage, schema: Schema) -> None:
        self._st = storage
        self.schema = schema
        self._tx = Transactor(storage, schema)

    # -- lifecycle -------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path, schema: Any = None) -> Self:
        """Open or create the file at ``path`` (or ``":memory:"``).

        ``schema`` (dict or EDN string) replaces the stored schema; ``None`` keeps it.
        """
        try:
            st = Storage(str(path))
        except Exception as exc:  # sqlite3 / SQLAlchemy errors: bad directory, not a database, locked
            raise DatalogError(f"cannot open Datalog database {edn.fmt(str(path))}: {exc}") from exc
        try:
            if schema is None:
                stored = st.meta.get("schema")
                sch = Schema.from_json(stored) if stored else Schema()
            else:
                sch = parse_schema(schema)
                st.begin(write=True)
                st.set_meta("schema", sch.to_json())
                st.set_meta("format", "1")
                st.commit()
        except BaseException:
            st.close()
            raise
        return cls(st, sch)

    def close(self) -> None:
        self._st.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def path(self) -> str:
        return self._st.path

    # -- writes ----------------------------------------------------------------------
    @contextmanager
    def _write(self, what: str, meta: Mapping[str, str] | None) -> Iterator[None]:
        """One SQLite write transaction: commit with the caller's meta, or roll back and
        raise a DatalogError (any other exception is wrapped, never leaked)."""
        st = self._st
        st.refresh()
        st.begin(write=True)
        try:
            yield
            self._write_user_meta(meta)
            st.commit()
        except DatalogError:
            st.rollback()
            self._tx.reset()
            raise
        except Exception as exc:
            st.rollback()
            self._tx.reset()
            raise TransactError(f"{what} failed: {type(exc).__name__}: {exc}") from exc

    def transact(self, tx_data: Any, meta: Mapping[str, str] | None = None) -> TxReport:
        """Apply one transaction atomically; returns tempids and datoms added/retracted.

        ``meta``: caller metadata (e.g. an indexer's watermark) written in the same SQLite
        transaction as the datoms; read it back with ``get_meta``.
        """
        with self._write("transaction", meta):
            report = self._tx.apply(tx_data)
        return report

    def transact_many(self, batches: Iterable[Any], meta: Mapping[str, str] | None = None) -> BulkReport:
        """Apply many transactions in order inside ONE SQLite transaction (all or nothing).

        The cheap path for bulk apply and rebuilds: no per-datom report is built.
        ``meta`` (see ``transact``) commits together with the datoms, even for no batches.
        """
        txs = added = retracted = 0
        last = None
        # bulk apply allocates millions of short-lived containers and no cycles: the cyclic GC
        # would rescan the caller's (often large) tx data again and again (measured ~15-25%)
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            with self._write("bulk transaction", meta):
                for tx_data in batches:
                    r = self._tx.apply(tx_data, collect=False)
                    txs += 1
                    added += r.added
                    retracted += r.retracted
                    last = r.tx
        finally:
            if gc_was_enabled:
                gc.enable()
        return BulkReport(txs, added, retracted, last)

    def _write_user_meta(self, meta: Mapping[str, str] | None) -> None:
        for key, value in (meta or {}).items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise TransactError(f"meta keys and values must be strings, got {edn.fmt(key)}: {edn.fmt(value)}")
            self._st.set_meta(_USER_META + key, value)  # namespaced: never clobbers engine keys

    def get_meta(self, key: str) -> str | None:
        """Caller metadata written by ``transact(..., meta=...)`` (latest committed value)."""
        row = self._st.conn.execute("SELECT value FROM meta WHERE key = ?", (_USER_META + key,)).fetchone()
        return row[0] if row else None

    # -- reads -----------------------------------------------------------------------
    def _read(self, fn: Any, *args: Any) -> Any:
        st = self._st
        st.refresh()
        st.begin(write=False)  # one snapshot for the whole read
        try:
            return fn(*args)
        except DatalogError:
            raise
        except RecursionError:
            raise QueryError("query nests too deeply") from None
        except Exception as exc:
            raise QueryError(f"query failed: {type(exc).__name__}: {exc}") from exc
        finally:
            if st.conn.in_transaction:
                st.conn.execute("COMMIT")

    def entid(self, eid: Any) -> int | None:
        """Entity id for an id or lookup ref (``None`` when a lookup ref finds nothing)."""
        return self._read(self._resolve, eid)

    def datoms(self, index: str, *components: Any) -> list[Datom]:
        """Datoms of an index (``"eavt"`` with e[, a] or ``"avet"`` with a[, v])."""

        def run() -> list[Datom]:
            st = self._st
            where, params = [], []
            if index == "eavt":
                if components:
                    e = self._resolve(components[0])
                    if e is None:
                        return []
                    where.append("e = ?")
                    params.append(e)
                attr_pos = 1
            elif index == "avet":
                if not components:
                    raise QueryError("avet datoms need an attribute")
                attr_pos = 0
            else:
                raise QueryError(f"unknown index {edn.fmt(index)}; use \"eavt\" or \"avet\"")
            if len(components) > attr_pos:
                aid = st.attr_id(edn.ident(components[attr_pos]) or "")
                if aid is None:
                    return []
                where.append("a = ?")
                params.append(aid)
            if index == "avet" and len(components) > 1:
                where.append("v = ?")
                params.append(encode(components[1]))
            sql = "SELECT e, a, v, tx FROM datoms" + (" WHERE " + " AND ".join(where) if where else "")
            names = st.attr_names
            rows = [Datom(e, names[a], decode(v), tx, True) for e, a, v, tx in st.conn.execute(sql, params)]
            key = (lambda d: (d.e, d.a)) if index == "eavt" else (lambda d: (d.a, d.e))
            return sorted(rows, key=key)

        return self._read(run)

    # -- used by query evaluation and pull (inside a read transaction, see _read) -----------
    def _resolve(self, x: Any) -> int | None:
        if type(x) is int:
            return x if x > 0 else None
        if isinstance(x, _LISTY) and len(x) == 2:
            a = edn.ident(x[0])
            if a is None or not self.schema.unique(a):
                raise QueryError(f"lookup ref attribute must be :db/unique: {self._shown_ref(x)}")
            aid = self._st.attr_id(a)
            if aid is None:
                return None
            v = x[1]
            if self.schema.is_ref(a) and isinstance(v, _LISTY):
                v = self._resolve(v)
            try:
                return self._st.entity_with(aid, encode(v))
            except TransactError:
                return None
        return None

    def entity_attrs(self, e: int) -> dict[str, list[Any]]:
        names = self._st.attr_names
        out: dict[str, list[Any]] = {}
        for a, v in self._st.entity_datoms(e):
            out.setdefault(names[a], []).append(decode(v))
        return out

    def reverse_refs(self, attr: str, e: int) -> list[int]:
        aid = self._st.attr_id(attr)
        if aid is None:
            return []
        return sorted(r[0] for r in self._st.scan(aid, v=e))

    def attr_values(self, e: Any, attr: Any, for_fn: str = "") -> list[Any]:
        """The values of ``attr`` on the entity a database function (``for_fn``: get-else,
        get-some, missing?) was given, read as DataScript 1.8.1 reads it: a positive number is an
        entity id (one that names nobody has no values), a pair a lookup ref; zero or a negative
        number raises, and so does any other value for get-else / get-some (DataScript's
        ``entid``), while ``missing?`` reads it as no entity (its ``entity`` takes only numbers,
        lookup refs and keywords)."""
        a = edn.ident(attr)
        if a is None:
            raise QueryError(f"{for_fn}: bad attribute {edn.fmt(attr)}")
        e = unwrap(e)
        number = type(e) is int or type(e) is float
        if (number and e <= 0) or (not number and not isinstance(e, (*_LISTY, Keyword)) and for_fn != "missing?"):
            raise QueryError(f"{for_fn}: expected number or lookup ref for entity id, got {edn.fmt(e)}")
        if type(e) is float:
            e = int(e) if e.is_integer() else None  # JS numbers: 2.0 is entity 2
        eid = self._resolve(e)
        aid = self._st.attr_id(a)
        if eid is None or aid is None:
            return []
        return decode_many(self._st.values(eid, aid))

    def count_attr(self, attr: Any) -> int:
        a = edn.ident(attr) if isinstance(attr, (str, Keyword)) else None
        aid = self._st.attr_id(a) if a else None
        return self._st.count(aid) if aid is not None else 0

    def estimate(self, attr: Any, value: Any) -> int:
        """Datoms with this attribute and value, counted exactly up to 1000 (planner estimate)."""
        a = edn.ident(attr) if isinstance(attr, (str, Keyword)) else None
        aid = self._st.attr_id(a) if a else None
        if aid is None:
            return 0
        value = unwrap(value)
        if isinstance(value, _LISTY) and self.schema.is_ref(a):
            value = self._resolve(value)  # found: the query's lookup refs were resolved up front
        try:
            return self._st.estimate(aid, encode(value))  # None (found nothing): TransactError
        except TransactError:
            return 0

    def total(self) -> int:
        return sum(self._st.attr_counts.values())

    def scan_pattern(self, e: Any, a: Any, v: Any, want: tuple[int, ...] = (0, 1, 2)) -> list[tuple]:
        """Exactly the datoms matching every constant and every bound set given, as tuples of the
        ``want`` positions (0 = entity, 1 = attribute, 2 = value); distinct when ``want`` drops one.

        Each of e/a/v is None (free), ("const", x) or ("bound", set of values).  The caller
        (``query.Evaluator.pattern``) trusts this contract and applies no filter of its own
        afterwards, so every branch below either puts a constraint into SQL or filters by it
        here: an access path may *choose* which constraint drives the index scan, never which
        constraints hold.  The attribute of a row is its ident (``"ns/name"``), or, for a bound
        attribute set, the bound value itself (``":ns/name"`` or a ``Keyword`` given as input),
        so that the row joins back with the binding it came from.

        Access paths, per attribute: EAVT for a constant entity; for a constant value either
        an EAVT ``IN`` probe of the bound entities (few next to the value's holders) or the
        AVET range of the value; an ``IN`` probe of the bound entities or values when the set
        is small next to the attribute; else a scan of the attribute (projected in SQL when
        nothing is left to filter, so ``[_ :head/basis ?h]`` reads DISTINCT values from AVET).
        """
        return self._scan(e, a, v, want)

    def _plan(self, e: Any, a: Any, v: Any, want: tuple[int, ...]) -> list[tuple]:
        """The scan of each attribute, worked out before any datom is read: a list of
        (attribute id, label, ev, es, vv, vs, path, entity join-back, value join-back); see ``_path``
        and ``_join_back``.  An empty list when nothing can match."""
        names = self._st.attr_names
        # (attribute id or None for "any attribute", the label put in the attribute column)
        attrs: list[tuple[int | None, Any]]
        if a is None:
            attrs = [(None, None)]
        elif a[0] == "const":
            aid = self._attr_id(a[1])
            if aid is None:  # no datoms of it yet; a lookup ref written as its value must still resolve
                ident = edn.ident(a[1]) if isinstance(a[1], (str, Keyword)) else None
                if v is not None and v[0] == "const" and ident and self.schema.is_ref(ident):
                    self._encode_value(v[1], True)
                return []
            attrs = [(aid, names[aid])]
        else:
            attrs = [(aid, x) for x in a[1] if (aid := self._attr_id(x)) is not None]
        ev = None
        es: list[int] | None = None
        e_back = None
        if e is not None:
            if e[0] == "const":
                ev = self._resolve_const(e[1])
                if ev is None:
                    return []
            else:
                es, e_back = self._bound_entities(e[1])
                if not es:
                    return []
        plans = []
        for aid, label in attrs:
            is_ref = aid is not None and self.schema.is_ref(names[aid])
            vv = None
            vs: list[Any] | None = None
            v_back = None
            if v is not None:
                if v[0] == "const":
                    vv = self._encode_value(v[1], is_ref)
                    if vv is None:
                        continue
                else:
                    vs, v_back = self._bound_values(v[1], is_ref)
                    if not vs:
                        continue
            path = self._path(aid, ev, es, vv, vs, want)
            plans.append((aid, label, ev, es, vv, vs, path, e_back, v_back))
        return plans

    def _scan(self, e: Any, a: Any, v: Any, want: tuple[int, ...]) -> list:
        st = self._st
        plans = self._plan(e, a, v, want)
        out: list[tuple] = []
        for aid, label, ev, es, vv, vs, path, e_back, v_back in plans:
            # the access path; whatever constraint it does not apply in SQL is filtered below
            e_left, v_left = es, vs
            if path == "entity":
                rows = st.scan(aid, e=ev, v=vv)
            elif path == "any-attr-entities":
                rows, e_left = st.scan(None, v=vv, es=es), None
            elif path == "any-attr":
                rows = st.scan(None, v=vv)
            elif path == "value-entities":
                rows, e_left = st.scan(aid, v=vv, es=es), None  # probe EAVT, not every holder of v
            elif path == "value-projected" or path == "projected":
                out.extend(self._scan_projected(aid, want, vv))  # nothing left to filter: project in SQL
                continue
            elif path == "value":
                rows = st.scan(aid, v=vv)
            elif path == "entities":
                rows, e_left = st.scan(aid, es=es), None
            elif path == "values":
                rows, v_left = st.scan(aid, vs=vs), None
            else:  # "attribute"
                rows = st.scan_av(aid)
            found = self._emit(rows, path == "attribute", e_left, v_left, aid, label, want)
            out.extend(_join_back(found, want, e_back, v_back))
        # (e, v) cannot repeat within one attribute; anything narrower, or several attributes, can
        if len(plans) > 1 or 0 not in want or 2 not in want or (a is None and 1 not in want):
            out = list(dict.fromkeys(out))
        return out

    def _bound_entities(self, values: Any) -> tuple[list[int], dict | None]:
        """A bound entity set as entity ids, and, when lookup refs are among the values (a function
        such as ``vector`` built them), each id's bound values, so that scanned rows join back with
        the lookup ref they came from (as DataScript).  A lookup ref that finds nothing matches
        nothing; a pair that is no lookup ref raises (as DataScript)."""
        ints = [x for x in values if type(x) is int]
        refs = [x for x in values if isinstance(x, _LISTY)]
        if not refs:
            return ints, None
        back: dict[int, list] = {x: [x] for x in ints}
        for r in refs:
            eid = self._resolve(r)
            if eid is not None:
                back.setdefault(eid, []).append(r)
        return list(back), back

    def _bound_values(self, values: Any, is_ref: bool) -> tuple[list[Any], dict | None]:
        """A bound value set as stored values (unencodable ones dropped: they match nothing), and
        for a ref attribute with lookup refs among the values, each entity id's bound values (see
        ``_bound_entities``); a lookup ref that finds nothing here raises, as in DataScript."""
        if not is_ref or not any(isinstance(x, _LISTY) for x in values):
            return [x for x in (self._encode_value(x, False) for x in values) if x is not None], None
        back: dict[int, list] = {}
        for x in values:
            eid = self._resolve_const(x) if isinstance(x, _LISTY) else unwrap(x)
            if type(eid) is int:
                back.setdefault(eid, []).append(x)
        return [encode(x) for x in back], back

    def _emit(
        self, rows: list, pairs: bool, e_left: Any, v_left: Any, aid: int | None, label: Any, want: tuple[int, ...]
    ) -> list[tuple]:
        """Scanned rows -> decoded tuples of the ``want`` positions, after the filters the access
        path left (``e_left``/``v_left``).  ``pairs``: rows are (e, v) of one attribute."""
        vi = 1 if pairs else 2
        if e_left is not None:
            keep_e = set(e_left)
            rows = [r for r in rows if r[0] in keep_e]
        if v_left is not None:
            keep_v = set(v_left)
            rows = [r for r in rows if r[vi] in keep_v]
        if bytes in set(map(type, map(itemgetter(vi), rows))):  # tagged values (bool, keyword, ...)
            rows = [(*r[:vi], wrap(decode(r[vi])), *r[vi + 1 :]) for r in rows]
        if want == (0, 2):
            return rows if pairs else [(x, z) for x, _y, z in rows]
        if want == (0,):
            return [(r[0],) for r in rows]
        if want == (2,):
            return [(r[vi],) for r in rows]
        if pairs or label is not None:
            full = [(r[0], label, r[vi]) for r in rows]
        else:
            names = self._st.attr_names
            full = [(x, names[y], z) for x, y, z in rows]
        if want == (0, 1, 2):
            return full
        g = getter(want)
        return [g(r) for r in full]

    def _path(self, aid: int | None, ev: Any, es: Any, vv: Any, vs: Any, want: tuple[int, ...]) -> str:
        """The access path ``scan_pattern`` takes for one attribute (named so tests can force each).

        ``ev``/``vv``: a constant entity id / encoded value; ``es``/``vs``: bound entity ids /
        encoded values (lists) or None.  A bound set drives an ``IN`` probe only when it is small
        next to what the probe replaces (4x: a probe row costs about four range-scan rows).
        """
        if ev is not None:
            return "entity"
        if aid is None:
            return "any-attr-entities" if es is not None else "any-attr"
        projectable = want != (0, 1, 2) and 1 not in want
        if vv is not None:
            if es is not None and len(es) * 4 < self._st.estimate(aid, vv):
                return "value-entities"
            return "value-projected" if es is None and projectable else "value"
        n = self._st.count(aid)
        if es is not None and len(es) * 4 < n:
            return "entities"
        if vs is not None and len(vs) * 4 < n:
            return "values"
        return "projected" if es is None and vs is None and projectable else "attribute"

    def scan_paths(self, e: Any, a: Any, v: Any, want: tuple[int, ...] = (0, 1, 2)) -> list[str]:
        """The access path per attribute that ``scan_pattern`` would take (for tests and tuning)."""
        return self._read(lambda: [p[6] for p in self._plan(e, a, v, want)])

    def _attr_id(self, x: Any) -> int | None:
        """The attribute id of an attribute constant or bound value: ``"ns/a"``, ``":ns/a"``, ``Keyword``."""
        ident = edn.ident(x) if isinstance(x, (str, Keyword)) else None
        return self._st.attr_id(ident) if ident else None

    def _resolve_const(self, x: Any) -> int | None:
        """An entity written in a pattern; a lookup ref that finds nothing is an error, as in
        DataScript (a typo'd identity must not read as an empty answer)."""
        if isinstance(x, str):  # as DataScript: a string is neither an entity id nor a lookup ref
            raise QueryError(f"expected number or lookup ref for entity id, got {edn.fmt(x)}")
        e = self._resolve(x)
        if e is None and isinstance(x, _LISTY):
            raise QueryError(f"nothing found for entity id {self._shown_ref(x)}")
        return e

    @staticmethod
    def _shown_ref(x: Any) -> str:
        """A lookup ref as the query wrote it: a vector, also a nested one ``[:a/r [:b/id "x"]]``."""
        def shown(r: Any) -> Any:
            if not isinstance(r, _LISTY):
                return r
            return [edn.kw(r[0]) if isinstance(r[0], str) else r[0], *map(shown, r[1:])]
        return edn.fmt(shown(x))

    def _encode_value(self, x: Any, is_ref: bool) -> Any:
        """A pattern's value as stored (None: it cannot match any datom); for a ref attribute a
        lookup ref must find its entity (``_resolve_const``)."""
        x = unwrap(x)  # booleans travel wrapped through relations (values.py)
        if is_ref and isinstance(x, _LISTY):
            x = self._resolve_const(x)
        try:
            return encode(x)
        except TransactError:
            return None

    def scan_with_tx(self, e: Any, a: Any, v: Any) -> list[tuple]:
        """(e, attribute, value, tx) rows for ``[e a v tx]`` patterns, with the same contract as
        ``scan_pattern``: exactly the datoms matching every constant and bound set of e/a/v."""
        st = self._st
        names = st.attr_names
        attrs: list[tuple[int | None, Any]]
        if a is None:
            attrs = [(None, None)]
        elif a[0] == "const":
            aid = self._attr_id(a[1])
            attrs = [(aid, names[aid])] if aid is not None else []
        else:
            attrs = [(aid, x) for x in a[1] if (aid := self._attr_id(x)) is not None]
        ev = None
        ints: list[int] | None = None
        e_back = None
        if e is not None and e[0] == "const":
            ev = self._resolve_const(e[1])
            if ev is None:
                return []
        elif e is not None:
            ints, e_back = self._bound_entities(e[1])
        out: list[tuple] = []
        for aid, label in attrs:
            is_ref = aid is not None and self.schema.is_ref(names[aid])
            where, params = [], []
            keep_e = keep_v = v_back = None
            if aid is not None:
                where.append("a = ?")
                params.append(aid)
            if ev is not None:
                where.append("e = ?")
                params.append(ev)
            elif ints is not None:
                if len(ints) < 900:
                    where.append(f"e IN ({','.join('?' * len(ints))})")
                    params.extend(ints)
                else:
                    keep_e = set(ints)  # too many host parameters: filtered below
            if v is not None and v[0] == "const":
                vv = self._encode_value(v[1], is_ref)
                if vv is None:
                    continue
                where.append("v = ?")
                params.append(vv)
            elif v is not None:
                vs, v_back = self._bound_values(v[1], is_ref)
                keep_v = set(vs)
            sql = "SELECT e, a, v, tx FROM datoms" + (" WHERE " + " AND ".join(where) if where else "")
            rows = [(x, names[y] if label is None else label, wrap(decode(z)), t)
                    for x, y, z, t in st.conn.execute(sql, params)
                    if (keep_e is None or x in keep_e) and (keep_v is None or z in keep_v)]
            out.extend(_join_back(rows, (0, 1, 2, 3), e_back, v_back))
        return out

    def _scan_projected(self, aid: int, want: tuple[int, ...], vv: Any) -> list[tuple]:
        """One attribute's datoms (with value ``vv`` unless None) projected to ``want`` in SQL."""
        cols = ", ".join("e" if w == 0 else "v" for w in want)
        attr = self.schema.get(self._st.attr_names[aid])
        # DISTINCT costs a temp B-tree; skip it where (a, e) or (a, v) cannot repeat
        distinct = not (len(want) == 2 or (want == (0,) and not attr.many) or (want == (2,) and attr.unique))
        sql = f"SELECT {'DISTINCT ' if distinct else ''}{cols} FROM datoms WHERE a = ?"
        sql += " AND v = ?" if vv is not None else ""
        rows = self._st.conn.execute(sql, (aid, vv) if vv is not None else (aid,)).fetchall()
        if 2 in want:
            i = want.index(2)
            if bytes in set(map(type, map(itemgetter(i), rows))):  # C-level check: tagged values to decode
                rows = [r[:i] + (wrap(decode(r[i])),) + r[i + 1 :] for r in rows]
        return rows


def _join_back(rows: list[tuple], want: tuple[int, ...], e_back: dict | None, v_back: dict | None) -> list[tuple]:
    """Rows whose entity (value) is a bound entity id, once per bound value naming that id: a
    lookup ref bound by a function stays the lookup ref in the row, so it joins back with its
    binding (``_bound_entities``)."""
    for pos, back in ((0, e_back), (2, v_back)):
        if back and pos in want:
            i = want.index(pos)
            rows = [r[:i] + (x,) + r[i + 1 :] for r in rows for x in back.get(r[i], (r[i],))]
    return rows
