"""Random schemas, data sets and queries for the generative differential tester (``fuzz``).

Owns: the *shape* of generated cases.  A ``Model`` is a random schema (a few entity types, each
with a unique identity ``:T/id`` and a random selection of int / string / boolean / card-many /
unique-value / ref attributes, each with its own presence rate and skewed value distribution);
``make_entities`` fills it at a chosen size; ``QueryGen`` draws queries from a grammar written as
a table of productions (``CLAUSES``, ``FINDS``): each production is a small function that returns a
clause (or ``None`` when it does not apply to the current scope).
Queries are built around a *witness*: every variable remembers a value taken from one real entity,
and constants are mostly drawn from witnesses, so most queries are satisfiable and exercise joins
instead of returning nothing.
Must never: run an engine or compare results (``fuzz`` does).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

# -- EDN terms ------------------------------------------------------------------------------


class Sym(str):
    """An EDN symbol (``?x``, ``_``, ``not``)."""


class Kw(str):
    """An EDN keyword, stored without the leading colon."""


class L(tuple):
    """An EDN list ``( ... )``; Python lists render as vectors."""


class Many(list):
    """Several clauses from one production, appended in order (top-level ``:where`` only)."""


class _Map(L):
    """A one-entry EDN map (pull's join spec)."""

    def __new__(cls, k: Any, v: Any) -> _Map:
        return super().__new__(cls, (k, v))


def edn(x: Any) -> str:
    if isinstance(x, _Map):
        return "{" + edn(x[0]) + " " + edn(x[1]) + "}"
    if isinstance(x, Sym):
        return str(x)
    if isinstance(x, Kw):
        return ":" + x
    if isinstance(x, L):
        return "(" + " ".join(edn(i) for i in x) + ")"
    if isinstance(x, list):
        return "[" + " ".join(edn(i) for i in x) + "]"
    if isinstance(x, bool):
        return "true" if x else "false"
    if x is None:
        return "nil"
    if isinstance(x, str):
        return '"' + x.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(x)


# -- schemas and data -----------------------------------------------------------------------


@dataclass
class Attr:
    name: str  # "a/n"
    ns: str
    kind: str  # id | int | str | bool | ref
    many: bool = False
    unique: str | None = None  # identity | value
    target: str | None = None  # ref target type
    presence: float = 1.0
    domain: list = field(default_factory=list)
    weights: list | None = None


@dataclass
class Model:
    types: list[str]
    attrs: dict[str, Attr]
    # per type, outside ``attrs`` (so no production draws them by chance): ``T/alias`` (unique
    # identity, never held: lookup refs on it find nothing), ``T/ghost`` (a ref nobody holds) and
    # ``T/owner`` (a unique identity ref held by every other entity: nested lookup refs)
    extra: dict[str, Attr] = field(default_factory=dict)

    def attr(self, name: str) -> Attr:
        return self.attrs.get(name) or self.extra[name]

    def of(self, ns: str, *kinds: str) -> list[Attr]:
        return [a for a in self.attrs.values() if a.ns == ns and (not kinds or a.kind in kinds)]

    def schema(self) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for a in [*self.attrs.values(), *self.extra.values()]:
            props: dict[str, str] = {}
            if a.unique:
                props["db/unique"] = f"db.unique/{a.unique}"
            if a.many:
                props["db/cardinality"] = "db.cardinality/many"
            if a.kind == "ref":
                props["db/valueType"] = "db.type/ref"
            if props:
                out[a.name] = props
        return out


def _distribution(rnd: random.Random, values: list) -> list | None:
    """Weights for a domain: uniform, zipf-like, or one hot value (skew is what moves estimates)."""
    shape = rnd.choice(["uniform", "zipf", "hot"])
    if shape == "uniform":
        return None
    if shape == "zipf":
        return [1.0 / (i + 1) ** 1.3 for i in range(len(values))]
    return [20.0] + [1.0 / len(values)] * (len(values) - 1)


def make_model(rnd: random.Random) -> Model:
    types = ["a", "b", "c"][: rnd.choice([1, 2, 2, 3])]
    attrs: dict[str, Attr] = {}
    for t in types:
        attrs[f"{t}/id"] = Attr(f"{t}/id", t, "id", unique="identity")
        for name, kind, p in [("n", "int", 0.95), ("m", "int", 0.5), ("s", "str", 0.9), ("tags", "str", 0.6),
                              ("flag", "bool", 0.3), ("code", "int", 0.4), ("mix", "mixed", 0.3)]:
            if rnd.random() > p:
                continue
            a = Attr(f"{t}/{name}", t, kind, presence=rnd.choice([1.0, 1.0, 0.9, 0.5, 0.1]))
            if name == "tags":
                a.many = True
            if name == "code":
                a.unique = rnd.choice(["value", "identity"])
            if kind == "int":
                a.domain = list(range(rnd.choice([2, 5, 20, 1000]))) if name != "code" else []
            elif kind == "str":
                a.domain = [f"{name}{i}" for i in range(rnd.choice([2, 4, 30, 500]))]
            elif kind == "mixed":  # true and 1, false and 0: two values each (DataScript)
                a.domain = [0, 1, True, False, 2]
            else:
                a.domain = [True, False]
            a.weights = _distribution(rnd, a.domain) if a.domain else None
            attrs[a.name] = a
        if rnd.random() < 0.7:
            attrs[f"{t}/parent"] = Attr(f"{t}/parent", t, "ref", target=t, presence=rnd.choice([0.9, 0.6, 0.3]))
        others = [u for u in types if u != t] or [t]
        if rnd.random() < 0.8:
            attrs[f"{t}/link"] = Attr(f"{t}/link", t, "ref", target=rnd.choice(others),
                                      presence=rnd.choice([1.0, 0.8, 0.4]), weights=[rnd.choice([0, 0, 5, 50])])
        if rnd.random() < 0.5:
            attrs[f"{t}/links"] = Attr(f"{t}/links", t, "ref", many=True, target=rnd.choice(types),
                                       presence=rnd.choice([0.9, 0.5]))
    extra = {}
    for i, t in enumerate(types):  # no random draws: the rest of the case stays as it was
        extra[f"{t}/alias"] = Attr(f"{t}/alias", t, "str", unique="identity", presence=0.0)
        extra[f"{t}/ghost"] = Attr(f"{t}/ghost", t, "ref", target=t, presence=0.0)
        extra[f"{t}/owner"] = Attr(f"{t}/owner", t, "ref", unique="identity", target=types[(i + 1) % len(types)])
    return Model(types, attrs, extra)


def _pick(rnd: random.Random, a: Attr) -> Any:
    return rnd.choices(a.domain, a.weights)[0] if a.weights else rnd.choice(a.domain)


def make_entities(rnd: random.Random, model: Model, n: int) -> dict[str, dict[str, Any]]:
    """``n`` entities split over the types: ident -> {attr: value | [values]}; refs hold idents."""
    counts = {t: max(1, int(n * w)) for t, w in zip(model.types, _split(rnd, len(model.types)), strict=True)}
    idents = {t: [f"{t}{i}" for i in range(counts[t])] for t in model.types}
    out: dict[str, dict[str, Any]] = {}
    for t in model.types:
        for i, ident in enumerate(idents[t]):
            ent: dict[str, Any] = {f"{t}/id": ident}
            for a in model.of(t):
                if a.kind == "id" or rnd.random() > a.presence:
                    continue
                if a.name.endswith("/code"):
                    ent[a.name] = 7 * i + 3  # unique values
                elif a.kind == "ref":
                    pool = idents[a.target]
                    if a.name.endswith("/parent"):
                        if i == 0:
                            continue
                        ent[a.name] = pool[rnd.randrange(i)]  # a random tree: depth ~ ln n
                    elif a.many:
                        ent[a.name] = sorted(set(rnd.choices(pool, k=rnd.randint(1, 3))))
                    else:
                        hot = a.weights[0] if a.weights else 0
                        ent[a.name] = pool[0] if rnd.random() < hot / 100 else rnd.choice(pool)
                elif a.many:
                    ent[a.name] = sorted({_pick(rnd, a) for _ in range(rnd.randint(1, 3))}, key=str)
                else:
                    ent[a.name] = _pick(rnd, a)
            out[ident] = ent
    for t, a in [(a.ns, a) for a in model.extra.values() if a.presence]:  # T/owner: every other entity
        pool = idents[a.target]
        for i, ident in enumerate(idents[t]):
            if i % 2 == 0 and i < len(pool):
                out[ident][a.name] = pool[i]
    return out


def _split(rnd: random.Random, k: int) -> list[float]:
    w = [rnd.uniform(0.2, 1.0) for _ in range(k)]
    return [x / sum(w) for x in w]


def to_txs(model: Model, entities: dict[str, dict[str, Any]], chunk: int = 2000) -> list[list]:
    """Scalar attributes first (entity maps, upserted by identity), refs afterwards as ``:db/add``
    with lookup refs, so a ref may point at any entity whatever the order."""
    txs: list[list] = []
    items = list(entities.values())
    for i in range(0, len(items), chunk):
        tx = []
        for ent in items[i : i + chunk]:
            tx.append({k: v for k, v in ent.items() if model.attr(k).kind != "ref"})
        txs.append(tx)
    adds = []
    for ent in items:
        ident_attr = next(k for k in ent if model.attr(k).kind == "id")
        me = [ident_attr, ent[ident_attr]]
        for k, v in ent.items():
            a = model.attr(k)
            if a.kind != "ref":
                continue
            for target in v if isinstance(v, list) else [v]:
                if target in entities:  # the shrinker may have dropped the target
                    adds.append([":db/add", me, k, [f"{a.target}/id", target]])
    for i in range(0, len(adds), chunk * 2):
        txs.append(adds[i : i + chunk * 2])
    return txs


# -- queries --------------------------------------------------------------------------------


@dataclass
class VarInfo:
    kind: str  # e (entity of type ns) | v (value of attr) | attr
    ns: str | None = None
    attr: Attr | None = None
    witness: Any = None  # an entity ident or value that satisfies the clauses so far


@dataclass
class Scope:
    vars: dict[str, VarInfo] = field(default_factory=dict)
    counter: list = field(default_factory=lambda: [0])
    negated: bool = False  # inside not / not-join: constants should *miss* the witness, to keep it

    def fresh(self, prefix: str, info: VarInfo) -> Sym:
        self.counter[0] += 1
        name = f"?{prefix}{self.counter[0]}"
        self.vars[name] = info
        return Sym(name)

    def child(self, negated: bool | None = None) -> Scope:
        return Scope(dict(self.vars), self.counter, self.negated if negated is None else negated)

    def entities(self, ns: str | None = None) -> list[str]:
        return [k for k, v in self.vars.items() if v.kind == "e" and (ns is None or v.ns == ns)]

    def values(self, *kinds: str) -> list[str]:
        return [k for k, v in self.vars.items() if v.kind == "v" and (not kinds or (v.attr and v.attr.kind in kinds))]


@dataclass
class Query:
    """One generated query: EDN parts (rendered by ``text``) plus what the comparison needs."""

    find: list  # find elements (terms)
    cols: list[str]  # per find element: e (entity id), v (value), pull, set (unordered collection)
    where: list  # clauses (terms)
    kind: str = "rel"  # rel | coll | scalar | tuple
    with_: list = field(default_factory=list)
    keys: list | None = None
    ins: list = field(default_factory=list)  # :in items after $ (terms)
    inputs: list = field(default_factory=list)  # DataScript's inputs, one per ins item
    ours: dict = field(default_factory=dict)  # input index -> our spelling when it differs (attribute keyword)
    tags: set = field(default_factory=set)  # productions used (for the report and known-difference names)

    def text(self, kind: str | None = None) -> str:
        kind = kind or self.kind
        find = " ".join(edn(x) for x in self.find)
        if kind == "coll":
            find = f"[{find} ...]"
        elif kind == "scalar":
            find = f"{find} ."
        elif kind == "tuple":
            find = f"[{find}]"
        parts = [":find", find]
        if self.keys:
            parts += [":keys", " ".join(self.keys)]
        if self.with_:
            parts += [":with", " ".join(self.with_)]
        if self.ins:
            parts += [":in", "$", " ".join(edn(x) for x in self.ins)]
        parts += [":where", " ".join(edn(c) for c in self.where)]
        return "[" + " ".join(parts) + "]"

    def to_json(self) -> dict:
        return {"query": self.text(), "kind": self.kind, "cols": self.cols, "inputs": self.inputs,
                "ours": {str(k): v for k, v in self.ours.items()}, "tags": sorted(self.tags),
                "rel_query": self.text("rel")}


class QueryGen:
    """Draws queries for one model and data set; ``rnd`` makes it deterministic per seed."""

    def __init__(self, rnd: random.Random, model: Model, entities: dict[str, dict[str, Any]], size: int) -> None:
        self.rnd, self.model, self.ents, self.size = rnd, model, entities, size
        self.by_type: dict[str, list[str]] = {t: [] for t in model.types}
        for ident in entities:
            self.by_type[ident.rstrip("0123456789")].append(ident)
        self.reverse: dict[tuple[str, str], list[str]] = {}  # (attr, target ident) -> holders
        for ident, ent in entities.items():
            for k, v in ent.items():
                if model.attr(k).kind == "ref":
                    for t in v if isinstance(v, list) else [v]:
                        self.reverse.setdefault((k, t), []).append(ident)
        self.q: Query | None = None
        self.clauses = CLAUSES  # the production table for top-level clauses (RARE for a focused run)

    # -- helpers ---------------------------------------------------------------------------
    def witness_value(self, ident: str | None, a: Attr, miss: bool = False) -> Any:
        """A value of ``a`` on the witness entity (so the clause holds), else any value;
        with ``miss`` (inside ``not``) preferably a value the witness does not have."""
        v = self.ents.get(ident, {}).get(a.name) if ident else None
        if miss:
            held = v if isinstance(v, list) else [v]
            for _ in range(4):
                x = self.witness_value(None, a)
                if x not in held:
                    return x
            return x
        if v is not None and self.rnd.random() < 0.85:
            return self.rnd.choice(v) if isinstance(v, list) else v
        if a.kind == "ref":
            return self.rnd.choice(self.by_type[a.target])
        if a.domain:
            return _pick(self.rnd, a)
        if a.kind == "id":
            return self.rnd.choice(self.by_type[a.ns])
        return 7 * self.rnd.randrange(max(1, len(self.by_type[a.ns]))) + 3

    def const(self, a: Attr, v: Any) -> Any:
        """A constant for the value position: refs as lookup refs (entity ids differ between engines);
        rarely a lookup ref that finds nothing."""
        if a.kind != "ref":
            return v
        return [Kw(f"{a.target}/id"), v if self.rnd.random() < 0.98 else "nobody"]

    def attr_of(self, ns: str, *kinds: str, scalar: bool = False) -> Attr | None:
        cands = [a for a in self.model.of(ns, *kinds) if not (scalar and a.kind == "ref")]
        return self.rnd.choice(cands) if cands else None

    # -- the query ---------------------------------------------------------------------------
    def query(self) -> Query:
        rnd = self.rnd
        scope = Scope()
        self.q = q = Query(find=[], cols=[], where=[])
        t = rnd.choice([t for t in self.model.types if self.by_type[t]])
        anchor = rnd.choice(self.by_type[t])
        if rnd.random() < 0.03:
            q.ins.append(Sym("_"))  # an ignored input
            q.inputs.append(rnd.choice([1, "x", [1, 2]]))
        _weighted(rnd, ROOTS)(self, scope, t, anchor)
        for _ in range(rnd.choice([1, 1, 2, 2, 3, 4, 5])):
            for _attempt in range(6):
                prod = _weighted(rnd, self.clauses)
                c = prod(self, scope, 0)
                if c is not None:
                    q.where.extend(c) if isinstance(c, Many) else q.where.append(c)
                    q.tags.add(prod.__name__)
                    break
        for _attempt in range(6):
            fprod = _weighted(rnd, FINDS)
            if fprod(self, scope):
                q.tags.add(fprod.__name__)
                break
        else:
            find_vars(self, scope)
        if len(q.where) > 1 and rnd.random() < 0.1:
            rnd.shuffle(q.where)  # clause order must not change the answer
        return q

    def body(self, scope: Scope, depth: int, n: int, table: list | None = None) -> list:
        """Clauses for a not / or body: they only refine variables already bound."""
        out = []
        for _ in range(n):
            for _attempt in range(6):
                c = _weighted(self.rnd, table or BODY)(self, scope, depth + 1)
                if c is not None:
                    out.append(c)
                    break
        return out


def _weighted(rnd: random.Random, table: list[tuple[int, Any]]) -> Any:
    return rnd.choices([f for _w, f in table], [w for w, _f in table])[0]


# -- root productions: the first clause binds an entity variable ----------------------------


def root_all(g: QueryGen, s: Scope, t: str, anchor: str) -> None:
    e = s.fresh("e", VarInfo("e", t, witness=anchor))
    a = g.attr_of(t, "int", "str", "bool", "mixed", "ref") if g.rnd.random() < 0.5 else g.model.attrs[f"{t}/id"]
    if a is None or a.kind == "id":
        g.q.where.append([e, Kw(f"{t}/id"), s.fresh("v", VarInfo("v", t, g.model.attrs[f"{t}/id"], anchor))])
    else:
        g.q.where.append([e, Kw(a.name), Sym("_")])


def root_const(g: QueryGen, s: Scope, t: str, anchor: str) -> None:
    a = g.attr_of(t, "int", "str", "bool", "mixed", "ref")
    if a is None:
        return root_all(g, s, t, anchor)
    e = s.fresh("e", VarInfo("e", t, witness=anchor))
    g.q.where.append([e, Kw(a.name), g.const(a, g.witness_value(anchor, a))])
    g.q.tags.add("root_const")


def root_input_scalar(g: QueryGen, s: Scope, t: str, anchor: str) -> None:
    """``:in ?x`` with a value, or ``?e`` with a lookup ref."""
    if g.rnd.random() < 0.5:
        e = s.fresh("e", VarInfo("e", t, witness=anchor))
        g.q.ins.append(e)
        g.q.inputs.append([f"{t}/id", anchor])
        g.q.where.append([e, Kw(f"{t}/id"), Sym("_")] if g.rnd.random() < 0.5 else [e, Kw(f"{t}/id")])
        g.q.tags.add("input_lookup_ref")
        return
    a = g.attr_of(t, "int", "str", "id")
    x = s.fresh("x", VarInfo("v", t, a, g.witness_value(anchor, a)))
    g.q.ins.append(x)
    g.q.inputs.append(s.vars[x].witness)
    e = s.fresh("e", VarInfo("e", t, witness=anchor))
    g.q.where.append([e, Kw(a.name), x])
    g.q.tags.add("input_scalar")


def root_input_coll(g: QueryGen, s: Scope, t: str, anchor: str) -> None:
    """``[?x ...]`` of values, ``[?a ?b]`` tuple, or ``[[?e ?v]]`` relation of lookup refs and values."""
    rnd = g.rnd
    a = g.attr_of(t, "int", "str", "id")
    form = rnd.choice(["coll", "tuple", "rel"])
    e = s.fresh("e", VarInfo("e", t, witness=anchor))
    if form == "coll":
        x = s.fresh("x", VarInfo("v", t, a, g.witness_value(anchor, a)))
        vals = [s.vars[x].witness] + [g.witness_value(rnd.choice(g.by_type[t]), a) for _ in range(rnd.randint(0, 40))]
        g.q.ins.append([x, Sym("...")])
        # duplicates are left out: DataScript keeps duplicate input rows apart (JS arrays hash by
        # identity), a quirk rather than semantics
        g.q.inputs.append(_dedupe(vals))
        g.q.where.append([e, Kw(a.name), x])
    elif form == "tuple":
        b = g.attr_of(t, "int", "str", "bool") or a
        x = s.fresh("x", VarInfo("v", t, a, g.witness_value(anchor, a)))
        y = s.fresh("x", VarInfo("v", t, b, g.witness_value(anchor, b)))
        g.q.ins.append([x, y])
        g.q.inputs.append([s.vars[x].witness, s.vars[y].witness])
        g.q.where += [[e, Kw(a.name), x], [e, Kw(b.name), y]]
    else:
        x = s.fresh("x", VarInfo("v", t, a, g.witness_value(anchor, a)))
        rows = [[[f"{t}/id", anchor], s.vars[x].witness]]
        for _ in range(rnd.randint(0, 30)):
            other = rnd.choice(g.by_type[t])
            rows.append([[f"{t}/id", other], g.witness_value(other, a)])
        if rnd.random() < 0.05:
            rows.append([[f"{t}/id", "nobody"], s.vars[x].witness])  # a lookup ref that finds nothing
        g.q.ins.append([[e, x]])
        g.q.inputs.append(_dedupe(rows))
        g.q.where.append([e, Kw(a.name), x])
    g.q.tags.add("input_" + form)


def _dedupe(xs: list) -> list:
    out = []
    for x in xs:
        if x not in out:
            out.append(x)
    return out


def root_source(g: QueryGen, s: Scope, t: str, anchor: str) -> None:
    """``:in $ $2`` with a collection of tuples as a second source: [$2 ?x ?k] joined to the database.
    Some tuples are shorter or longer than the pattern (DataScript matches a short tuple and binds
    nil past its end), and patterns are two to four terms wide (the fourth is no tx here)."""
    rnd = g.rnd
    x = s.fresh("v", VarInfo("v", t, g.model.attrs[f"{t}/id"], anchor))
    ragged = rnd.random() < 0.4

    def row(ident: str, k: int) -> list:
        r = [ident, k, rnd.randrange(3), rnd.randrange(3)]
        return r[: rnd.choice([1, 2, 2, 3, 4])] if ragged else r[:2]

    rows = [[anchor, 0]] + [row(rnd.choice(g.by_type[t]), rnd.randrange(5)) for _ in range(rnd.randint(0, 20))]
    g.q.ins.append(Sym("$2"))
    g.q.inputs.append(_dedupe(rows))
    # values from the source may be nil: no predicate or aggregate picks them (attr None)
    k = s.fresh("v", VarInfo("v", None, Attr("_", "", "int"), 0) if not ragged else VarInfo("v", None, None))
    if ragged and rnd.random() < 0.6:
        extra = [s.fresh("v", VarInfo("v", None, None)) if rnd.random() < 0.7 else rnd.randrange(3)
                 for _ in range(rnd.choice([1, 2]))]
        if rnd.random() < 0.2:
            extra[0] = k  # a variable repeated in the pattern (DataScript gets it spelled out)
        g.q.where.append([Sym("$2"), x, k, *extra])
        if rnd.random() < 0.3:  # the source again, joined through its second column (a bound set there)
            g.q.where.append([Sym("$2"), s.fresh("v", VarInfo("v", None, None)), k])
        g.q.tags.add("input_source_ragged")
    elif rnd.random() < 0.7:
        g.q.where.append([Sym("$2"), x, k])
    else:
        del s.vars[str(k)]  # not used after all
        g.q.where.append([Sym("$2"), x, 0])
    g.q.where.append([s.fresh("e", VarInfo("e", t, witness=anchor)), Kw(f"{t}/id"), x])
    g.q.tags.add("input_source")


def root_any_attr(g: QueryGen, s: Scope, t: str, anchor: str) -> None:
    """[?e ?a c] / [?e _ c]: a value under any attribute (the scan's "any attribute" paths)."""
    a = g.attr_of(t, "int", "str", "id")
    e = s.fresh("e", VarInfo("e", t, witness=anchor))
    mid = s.fresh("a", VarInfo("attr", t)) if g.rnd.random() < 0.6 else Sym("_")
    g.q.where.append([e, mid, g.witness_value(anchor, a)])
    if g.rnd.random() < 0.5:
        # ?e may be of any type holding the value: pin it to the anchor's type (else the planner may
        # start from this pattern: the scan's "any attribute" path)
        g.q.where.append([e, Kw(f"{t}/id"), Sym("_")])
    g.q.tags.add("root_any_attr")


ROOTS = [(4, root_all), (5, root_const), (2, root_input_scalar), (2, root_input_coll), (1, root_any_attr),
         (1, root_source)]


# -- clause productions: (generator, scope, depth) -> clause | None ---------------------------


def _some_entity(g: QueryGen, s: Scope) -> str | None:
    es = s.entities()
    return Sym(g.rnd.choice(es)) if es else None


def _only(s: Scope, e: str) -> Scope:
    """A scope seeing one variable of ``s`` (fresh names stay unique)."""
    return Scope({str(e): s.vars[str(e)]}, s.counter, s.negated)


def p_value(g: QueryGen, s: Scope, depth: int) -> Any:
    """[?e :T/a ?v]: a new value variable of a bound entity."""
    e = _some_entity(g, s)
    if e is None:
        return None
    info = s.vars[e]
    a = g.attr_of(info.ns, "int", "str", "bool", "mixed", "id")
    if a is None:
        return None
    v = s.fresh("v", VarInfo("v", info.ns, a, g.witness_value(info.witness, a)))
    return [e, Kw(a.name), v]


def p_const(g: QueryGen, s: Scope, depth: int) -> Any:
    """[?e :T/a c]: a constant on a bound entity variable (the scan_pattern bug's shape)."""
    e = _some_entity(g, s)
    if e is None:
        return None
    info = s.vars[e]
    a = g.attr_of(info.ns, "int", "str", "bool", "mixed", "ref")
    if a is None:
        return None
    if a.kind != "ref" and g.rnd.random() < 0.02:
        return [e, Kw(a.name), [1, 2]]  # a value no datom can hold: matches nothing in both
    return [e, Kw(a.name), g.const(a, g.witness_value(info.witness, a, miss=s.negated))]


def p_const_entity(g: QueryGen, s: Scope, depth: int) -> Any:
    """[[:T/id "a3"] :T/a ?v] / [[:T/id "a3"] :T/a c]: a lookup ref in the entity position,
    joined to the query through a value variable's constant or a new variable."""
    rnd = g.rnd
    t = rnd.choice([t for t in g.model.types if g.by_type[t]])
    ident = rnd.choice(g.by_type[t]) if rnd.random() < 0.97 else "nobody"  # DataScript: "Nothing found"
    a = g.attr_of(t, "int", "str", "bool")
    if a is None:
        return None
    # an entity id that exists in neither engine matches nothing in both (ids otherwise differ)
    ref = [Kw(f"{t}/id"), ident] if rnd.random() < 0.95 else 999_999_999
    if rnd.random() < 0.3:
        g.q.tags.add("ground_pattern")
        return [ref, Kw(a.name), g.witness_value(ident, a)]  # no variable at all
    return [ref, Kw(a.name), s.fresh("v", VarInfo("v", t, a, g.witness_value(ident, a)))]


def p_tx(g: QueryGen, s: Scope, depth: int) -> Any:
    """[?e :T/a ?v ?tx] / [?e :T/a _ ?tx]: the tx position (ids follow the same scheme in both)."""
    e = _some_entity(g, s)
    if e is None:
        return None
    info = s.vars[e]
    a = g.attr_of(info.ns, "int", "str", "bool", "ref")
    if a is None:
        return None
    rnd = g.rnd
    tx = s.fresh("v", VarInfo("v", None, Attr("_", "", "tx")))
    g.q.tags.add("tx_position")
    shape = rnd.choice(["blank", "const", "attr-var", "const-tx", "lookup-ref", "bound-value", "bound-tx"])
    if shape == "attr-var":
        bound = [x for x, i in s.vars.items() if i.kind == "attr" and x.startswith("?a")]
        # an attribute variable bound already (an input, or an earlier [?e ?a ?v]) or a new one
        return [e, Sym(rnd.choice(bound)) if bound and rnd.random() < 0.6 else s.fresh("a", VarInfo("attr", info.ns)),
                Sym("_"), tx]
    if shape == "bound-tx":  # the tx of another datom, bound by an earlier tx pattern
        txs = [x for x, i in s.vars.items() if i.attr is not None and i.attr.kind == "tx" and x != tx]
        if txs:
            return [e, Kw(a.name), Sym("_"), Sym(rnd.choice(txs))]
    if shape == "const-tx":  # the first transaction (scalars of the first 2000 entities) or the second
        return [e, Kw(a.name), Sym("_"), 536870913 + rnd.randrange(2)]
    if shape == "lookup-ref" and info.witness:
        return [[Kw(f"{info.ns}/id"), info.witness], Kw(a.name), s.fresh("v", VarInfo("v", info.ns, a)), tx]
    if shape == "bound-value":
        vs = [v for v in s.values("int", "str") if s.vars[v].attr and s.vars[v].attr.ns == info.ns]
        if vs:
            v = rnd.choice(vs)
            return [e, Kw(s.vars[v].attr.name), Sym(v), tx]
    if shape == "blank":
        return [e, Kw(a.name), Sym("_"), tx]
    if shape == "lookup-ref" and rnd.random() < 0.3:  # an absent entity id / an impossible value
        return ([999_999_999, Kw(a.name), Sym("_"), tx] if rnd.random() < 0.5
                else [e, Kw(a.name), [1, 2] if a.kind != "ref" else [Kw(f"{a.target}/id"), "nobody"], tx])
    return [e, Kw(a.name), g.const(a, g.witness_value(info.witness, a)), tx]


def p_ref(g: QueryGen, s: Scope, depth: int) -> Any:
    """[?e :T/ref ?f] forwards or [?f :U/ref ?e] backwards: a join to another entity variable."""
    e = _some_entity(g, s)
    if e is None:
        return None
    info = s.vars[e]
    fwd = [a for a in g.model.of(info.ns, "ref")]
    back = [a for a in g.model.attrs.values() if a.kind == "ref" and a.target == info.ns]
    if fwd and (not back or g.rnd.random() < 0.5):
        a = g.rnd.choice(fwd)
        w = g.ents.get(info.witness, {}).get(a.name)
        w = g.rnd.choice(w) if isinstance(w, list) else w
        f = s.fresh("e", VarInfo("e", a.target, witness=w))
        return [e, Kw(a.name), f]
    if back:
        a = g.rnd.choice(back)
        holders = g.reverse.get((a.name, info.witness)) or [None]
        f = s.fresh("e", VarInfo("e", a.ns, witness=g.rnd.choice(holders)))
        return [f, Kw(a.name), e]
    return None


def p_bound_join(g: QueryGen, s: Scope, depth: int) -> Any:
    """[?e :T/ref ?f] with both bound, or a value join [?f :U/a ?v] with ?v bound."""
    rnd = g.rnd
    if rnd.random() < 0.5:
        for e in s.entities():
            for a in g.model.of(s.vars[e].ns, "ref"):
                targets = s.entities(a.target)
                if targets:
                    return [Sym(e), Kw(a.name), Sym(rnd.choice(targets))]
        return None
    vs = [v for v in s.values("int", "str", "id") if s.vars[v].attr is not None]
    if not vs or g.size > 400:  # value joins on skewed domains explode at scale
        return None
    v = rnd.choice(vs)
    a = s.vars[v].attr
    same = [b for b in g.model.attrs.values() if b.kind == a.kind and b.kind != "ref"]
    b = rnd.choice(same)
    f = s.fresh("e", VarInfo("e", b.ns, witness=None))
    return [f, Kw(b.name), Sym(v)]


def p_blank(g: QueryGen, s: Scope, depth: int) -> Any:
    """[?e :T/a _] or [?e :T/a]: the attribute is present."""
    e = _some_entity(g, s)
    if e is None:
        return None
    a = _attr_wrt_witness(g, s.vars[e], present=not s.negated)
    return [e, Kw(a.name), Sym("_")] if g.rnd.random() < 0.6 else [e, Kw(a.name)]


def p_attr_var(g: QueryGen, s: Scope, depth: int) -> Any:
    """[?e ?a ?v] / [?e ?a c] / [?e ?a _]: attribute variables, or an attribute given as input."""
    e = _some_entity(g, s)
    if e is None:
        return None
    info = s.vars[e]
    a = g.attr_of(info.ns, "int", "str", "bool")
    if a is None:
        return None
    shape = g.rnd.choice(["var", "const", "blank", "input", "input"]) if depth == 0 else "const"
    if shape == "input":
        av = s.fresh("a", VarInfo("attr", info.ns, a))
        g.q.ins.append(av)
        g.q.inputs.append(a.name)
        g.q.tags.add("input_attr")
        if g.rnd.random() < 0.3:
            # our engine documents three spellings of an attribute input; DataScript JS takes the string
            g.q.ours[len(g.q.inputs) - 1] = g.rnd.choice([":" + a.name, {"kw": a.name}])
            g.q.tags.add("input_attr_spelling")
        v = s.fresh("v", VarInfo("v", info.ns, a, g.witness_value(info.witness, a)))
        return [e, av, v]
    av = s.fresh("a", VarInfo("attr", info.ns, None))
    if shape == "var":
        return [e, av, s.fresh("v", VarInfo("v", info.ns, None))]
    if shape == "blank":
        return [e, av, Sym("_")]
    return [e, av, g.witness_value(info.witness, a)]


_CMP = ["<", ">", "<=", ">=", "=", "not="]


def _holds(op: str, a: Any, b: Any) -> bool:
    return {"<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b, "=": a == b, "not=": a != b}[op]


def p_predicate(g: QueryGen, s: Scope, depth: int) -> Any:
    rnd = g.rnd
    ints = s.values("int")
    strs = s.values("str", "id")
    if rnd.random() < 0.03:
        return [L((Sym(rnd.choice(_CMP)), rnd.randrange(3), rnd.randrange(3)))]  # constants only
    if ints and rnd.random() < 0.7:
        v = rnd.choice(ints)
        other = rnd.choice(ints)
        if other != v and rnd.random() < 0.3:
            return [L((Sym(rnd.choice(_CMP)), Sym(v), Sym(other)))]
        w = s.vars[v].witness
        if rnd.random() < 0.15:
            return [L((Sym(rnd.choice(["even?", "odd?", "pos?", "zero?"])), Sym(v)))]
        op = rnd.choice(_CMP)
        if not (isinstance(w, int) and not isinstance(w, bool)):
            return [L((Sym(op), Sym(v), rnd.randrange(10)))]
        # a constant that the witness satisfies (misses, when negated)
        ok = [c for c in (w - 2, w - 1, w, w + 1, w + 2) if _holds(op, w, c) != s.negated]
        c = rnd.choice(ok) if ok else w
        if rnd.random() < 0.3:  # constant first: (< 3 ?v) holds when (> ?v 3) does
            flip = {"<": ">", ">": "<", "<=": ">=", ">=": "<=", "=": "=", "not=": "not="}
            return [L((Sym(flip[op]), c, Sym(v)))]
        return [L((Sym(op), Sym(v), c))]
    if strs:
        v = rnd.choice(strs)
        w = s.vars[v].witness
        c = w if isinstance(w, str) else "s0"
        op = rnd.choice(["=", "not=", "clojure.string/starts-with?", "<", ">="])
        if op.startswith("clojure"):
            c = c[: rnd.randint(1, max(1, len(c)))]
        return [L((Sym(op), Sym(v), c))]
    return None


def p_fn(g: QueryGen, s: Scope, depth: int) -> Any:
    """Function bindings: arithmetic, str, identity, ground, get-else, get-some, tuple."""
    rnd = g.rnd
    ints, strs = s.values("int"), s.values("str", "id")
    e = _some_entity(g, s)
    choice = rnd.choice(["arith", "str", "get-else", "get-else", "ground", "identity", "get-some", "tuple"])
    if choice == "arith" and ints:
        v = rnd.choice(ints)
        w = s.vars[v].witness
        op, k = rnd.choice([("+", 1), ("-", 2), ("*", 3), ("quot", 2), ("mod", 3)])
        r = s.fresh("v", VarInfo("v", None, Attr("_", "", "int"), None if w is None else 0))
        return [L((Sym(op), Sym(v), k)), r]
    if choice == "str" and (strs or ints):
        v = rnd.choice(strs or ints)
        r = s.fresh("v", VarInfo("v", None, Attr("_", "", "str")))
        return [L((Sym("str"), Sym(v), "-x")), r]
    if choice in ("get-else", "get-some") and e is not None:
        info = s.vars[e]
        a = g.attr_of(info.ns, "int", "str")
        if a is None:
            return None
        if choice == "get-some":
            b = g.attr_of(info.ns, "int", "str") or a
            g.q.tags.add("get_some")
            binding = [s.fresh("v", VarInfo("v", info.ns)), s.fresh("v", VarInfo("v", info.ns))]
            return [L((Sym("get-some"), Sym("$"), Sym(e), Kw(a.name), Kw(b.name))), binding]
        default = -1 if a.kind == "int" else "none"
        r = s.fresh("v", VarInfo("v", info.ns, a, g.witness_value(info.witness, a)))
        return [L((Sym("get-else"), Sym("$"), Sym(e), Kw(a.name), default)), r]
    if choice == "ground":
        a = Attr("_", "", "int")
        r = s.fresh("v", VarInfo("v", None, a, 3))
        return [L((Sym("ground"), rnd.choice([3, 0]))), r]
    if choice == "identity" and (ints or strs):
        v = rnd.choice(ints + strs)
        info = s.vars[v]
        if rnd.random() < 0.5:
            # the result is bound already: a filter (equal values kept)
            other = rnd.choice([x for x in ints + strs if s.vars[x].attr.kind == info.attr.kind])
            g.q.tags.add("fn_rebind")
            return [L((Sym("identity"), Sym(v))), Sym(other) if rnd.random() < 0.8 else Sym("_")]
        r = s.fresh("v", VarInfo("v", info.ns, info.attr, info.witness))
        return [L((Sym("identity"), Sym(v))), r]
    if choice == "tuple" and len(ints + strs) >= 2:
        a, b = rnd.sample(ints + strs, 2)
        g.q.tags.add("fn_tuple")
        return [L((Sym("tuple"), Sym(a), Sym(b))), s.fresh("v", VarInfo("v", None, Attr("_", "", "tuple")))]
    return None


def _attr_wrt_witness(g: QueryGen, info: VarInfo, present: bool) -> Attr:
    """An attribute the witness has (``present``) or lacks, when there is one."""
    held = g.ents.get(info.witness, {})
    cands = [a for a in g.model.of(info.ns) if (a.name in held) == present]
    return g.rnd.choice(cands) if cands and g.rnd.random() < 0.85 else g.attr_of(info.ns)


def p_missing(g: QueryGen, s: Scope, depth: int) -> Any:
    e = _some_entity(g, s)
    if e is None:
        return None
    a = _attr_wrt_witness(g, s.vars[e], present=s.negated)
    return [L((Sym("missing?"), Sym("$"), Sym(e), Kw(a.name)))]


def p_not(g: QueryGen, s: Scope, depth: int, table: list | None = None) -> Any:
    if depth > 1 or not s.entities():
        return None
    body = g.body(s.child(negated=not s.negated), depth, g.rnd.choice([1, 1, 2]), table)
    return L((Sym("not"), *body)) if body else None


def p_not_in_or(g: QueryGen, s: Scope, depth: int) -> Any:
    """A ``not`` inside an ``or`` branch: DataScript counts its variables as the branch's too."""
    return p_not(g, s, depth, OR_BODY)


def p_not_join(g: QueryGen, s: Scope, depth: int) -> Any:
    """(not-join [?e] [?e :T/ref ?x] [?x :U/a c]): the body introduces its own variables."""
    e = _some_entity(g, s)
    if depth > 1 or e is None:
        return None
    sub = _only(s, e)  # inside not-join only the join variables are bound
    sub.negated = not s.negated
    first = p_ref(g, sub, depth + 1) or p_value(g, sub, depth + 1)
    if first is None:
        return None
    rest = g.body(sub, depth, g.rnd.choice([0, 1]))
    return L((Sym("not-join"), [Sym(e)], first, *rest))


def p_or(g: QueryGen, s: Scope, depth: int) -> Any:
    """(or b1 b2 ...): every branch refines the same one entity variable (and binds nothing new),
    as DataScript requires the same variables in every branch."""
    e = _some_entity(g, s)
    if depth > 1 or e is None:
        return None
    branches = []
    for _ in range(g.rnd.choice([2, 2, 3])):
        body = g.body(_only(s, e), depth, g.rnd.choice([1, 1, 2]), OR_BODY)
        if body:
            branches.append(body[0] if len(body) == 1 else L((Sym("and"), *body)))
    return L((Sym("or"), *branches)) if len(branches) >= 2 else None


def p_or_join(g: QueryGen, s: Scope, depth: int) -> Any:
    """(or-join [?e] ...) whose branches use private variables; sometimes with [?e] required."""
    e = _some_entity(g, s)
    if depth > 1 or e is None:
        return None
    branches = []
    for _ in range(g.rnd.choice([2, 3])):
        sub = _only(s, e)
        first = p_ref(g, sub, depth + 1) or p_value(g, sub, depth + 1) or p_const(g, sub, depth + 1)
        rest = g.body(sub, depth, g.rnd.choice([0, 1]))
        body = [first, *rest]
        branches.append(body[0] if len(body) == 1 else L((Sym("and"), *body)))
    head = [[Sym(e)]] if g.rnd.random() < 0.3 else [Sym(e)]
    return L((Sym("or-join"), head, *branches))


def _rule_site(g: QueryGen, s: Scope, depth: int) -> tuple[Any, Any, str] | None:
    """Where a rule call starts: (an entity variable, its info, its type), or None when the call
    would be nested or the query already takes its rule set (``%``)."""
    if depth > 0 or "%" in [str(x) for x in g.q.ins]:
        return None
    es = s.entities()
    if not es:
        return None
    e = g.rnd.choice(es)
    info = s.vars[e]
    return e, info, info.ns


# rule sets: (name, head, body per branch); T is replaced by a type with the needed attributes
def p_rule(g: QueryGen, s: Scope, depth: int) -> Any:
    """A rule call; the rule set is the query's ``%`` input (one per query)."""
    rnd = g.rnd
    site = _rule_site(g, s, depth)
    if site is None:
        return None
    e, info, t = site
    kinds = []
    if f"{t}/parent" in g.model.attrs and g.size <= 6000:
        kinds += ["anc", "anc"]
    if g.model.of(t, "str", "int"):
        kinds += ["has", "req", "lacks"]
    if not kinds:
        return None
    kind = rnd.choice(kinds)
    if kind == "anc":
        rules = (f"[[(anc ?a ?b) [?a :{t}/parent ?b]] "
                 f"[(anc ?a ?b) [?a :{t}/parent ?x] (anc ?x ?b)]]")
        other = s.entities(t)
        if len(other) > 1 and rnd.random() < 0.3:
            call = L((Sym("anc"), Sym(e), Sym(rnd.choice([o for o in other if o != e]))))
        elif rnd.random() < 0.5:
            call = L((Sym("anc"), Sym(e), s.fresh("e", VarInfo("e", t, witness=None))))
        else:
            call = L((Sym("anc"), s.fresh("e", VarInfo("e", t, witness=None)), Sym(e)))
        g.q.tags.add("rule_recursive")
    elif kind == "has":
        a = g.attr_of(t, "str", "int")
        b = g.attr_of(t, a.kind)  # same type: aggregates over ?v stay well-typed
        rules = f"[[(has ?e ?v) [?e :{a.name} ?v]] [(has ?e ?v) [?e :{b.name} ?v]]]"
        if rnd.random() < 0.5:
            call = L((Sym("has"), Sym(e), g.witness_value(info.witness, a)))
        else:
            call = L((Sym("has"), Sym(e), s.fresh("v", VarInfo("v", t, a, g.witness_value(info.witness, a)))))
        g.q.tags.add("rule")
    elif kind == "lacks":
        a = g.attr_of(t, "str", "int")
        b = g.attr_of(t)
        rules = (f"[[(lacks ?e ?v) [?e :{a.name} ?v] (not [?e :{b.name} _])] "
                 f"[(lacks ?e ?v) [?e :{t}/id ?v] [(missing? $ ?e :{a.name})]]]")
        call = L((Sym("lacks"), Sym(e), s.fresh("v", VarInfo("v", t, None))))
        g.q.tags.add("rule_not")
    else:
        a = g.attr_of(t, "str", "int")
        rules = f"[[(req [?e] ?v) [?e :{a.name} ?v]]]"
        call = L((Sym("req"), Sym(e), s.fresh("v", VarInfo("v", t, a, g.witness_value(info.witness, a)))))
        g.q.tags.add("rule_required")
    g.q.ins.append(Sym("%"))
    g.q.inputs.append(rules)
    return call


def p_fn_entity(g: QueryGen, s: Scope, depth: int) -> Any:
    """A function's result used where an entity is expected (depth 0): ``[(vector :T/id ?i) ?r]``
    then ``[?r :T/a ?v]`` or ``[?x :U/ref ?r]`` (DataScript resolves the lookup ref, the row keeps
    it), a lookup ref naming nobody, a pair that is no lookup ref (both raise), or a value that no
    datom can hold (``(tuple ?n ?n)`` as a value: nothing matches)."""
    if depth > 0:
        return None
    rnd = g.rnd
    ids = [v for v in s.values("id") if s.vars[v].attr.name.endswith("/id")]
    ints = [v for v in s.values("int") if s.vars[v].attr.name != "_"]  # a datom's value, not a function's
    shape = rnd.choice(["ref-entity", "ref-entity", "ref-value", "ref-value", "tx", "nobody", "no-ref", "unencodable"])
    if shape == "unencodable" and ints:
        n = rnd.choice(ints)
        a = s.vars[n].attr
        t = s.fresh("v", VarInfo("v", None, None))
        f = s.fresh("e", VarInfo("e", a.ns))
        g.q.tags.add("fn_unencodable")
        tail = [f, Kw(a.name), t]
        if rnd.random() < 0.4:
            tail.append(s.fresh("v", VarInfo("v", None, Attr("_", "", "tx"))))
        return Many([[L((Sym("tuple"), Sym(n), Sym(n))), t], tail])
    if shape == "no-ref" and ints:
        n = rnd.choice(ints)
        t = s.fresh("v", VarInfo("v", None, None))
        a = g.attr_of(s.vars[n].attr.ns) or g.model.attrs[f"{s.vars[n].attr.ns}/id"]
        g.q.tags.add("fn_not_a_lookup_ref")
        return Many([[L((Sym("tuple"), Sym(n), Sym(n))), t], [t, Kw(a.name), Sym("_")]])
    if not ids:
        return None
    i = rnd.choice(ids)
    ns = s.vars[i].attr.ns
    r = s.fresh("v", VarInfo("v", None, None))  # a lookup ref: compared as the pair it is
    fn = [L((Sym("vector"), Kw(f"{ns}/id"), Sym(i) if shape != "nobody" else "nobody")), r]
    g.q.tags.add("fn_lookup_ref")
    back = [a for a in g.model.attrs.values() if a.kind == "ref" and a.target == ns]
    if shape in ("ref-value", "nobody") and back:
        a = rnd.choice(back)
        return Many([fn, [s.fresh("e", VarInfo("e", a.ns)), Kw(a.name), r]])
    a = g.attr_of(ns, "int", "str", "bool", "mixed", "ref") or g.model.attrs[f"{ns}/id"]
    v = s.fresh("v", VarInfo("v", ns, a if a.kind != "ref" else None))
    tx = [s.fresh("v", VarInfo("v", None, Attr("_", "", "tx")))] if shape == "tx" else []
    return Many([fn, [r, Kw(a.name), v, *tx]])


def p_odd_entity(g: QueryGen, s: Scope, depth: int) -> Any:
    """Entity positions that can hold nothing: entity 0, an attribute with no datoms on a lookup
    ref, a bound value variable of strings / booleans used as an entity (a bound set with no
    entity ids), each sometimes with the tx position."""
    rnd = g.rnd
    t = rnd.choice([t for t in g.model.types if g.by_type[t]])
    a = g.attr_of(t, "int", "str", "bool") or g.model.attrs[f"{t}/id"]
    tx = [s.fresh("v", VarInfo("v", None, Attr("_", "", "tx")))] if depth == 0 and rnd.random() < 0.3 else []
    shape = rnd.choice(["zero", "absent-attr", "value-as-entity", "value-as-entity", "value-as-entity", "alias",
                        "nil-ref", "nested", "nested", "string"])
    g.q.tags.add("odd_entity")
    if shape in ("alias", "nil-ref", "string", "nested"):
        return _odd_lookup(g, s, t, a, shape, tx)
    if shape == "zero":
        return [0, Kw(a.name), s.fresh("v", VarInfo("v", t, a)), *tx]
    if shape == "absent-attr":
        return [[Kw(f"{t}/id"), rnd.choice(g.by_type[t])], Kw(f"{t}/absent"), s.fresh("v", VarInfo("v", t, None)), *tx]
    vs = [v for v in s.values("str", "bool") if s.vars[v].attr is not None]
    if not vs:
        return None
    return [Sym(rnd.choice(vs)), Kw(a.name), s.fresh("v", VarInfo("v", t, None)), *tx]


def _odd_lookup(g: QueryGen, s: Scope, t: str, a: Attr, shape: str, tx: list) -> Any:
    """Entity positions written as lookup refs (or a string) that p_odd_entity draws."""
    rnd = g.rnd
    v = s.fresh("v", VarInfo("v", t, None))
    if shape == "alias":  # a unique attribute with no datoms: the lookup ref finds nothing
        return [[Kw(f"{t}/alias"), rnd.choice(g.by_type[t])], Kw(a.name), v, *tx]
    if shape == "nil-ref":  # a lookup ref whose value no datom can hold
        return [[Kw(f"{t}/id"), None], Kw(a.name), v, *tx]
    if shape == "string":  # a string written as an entity: both raise
        return [rnd.choice(g.by_type[t]), Kw(a.name), v, *tx]
    if shape == "nested":  # [:T/owner [:U/id "u2"]]: a lookup ref through a unique ref attribute
        own = g.model.extra[f"{t}/owner"]
        pool = g.by_type[own.target]
        held = [x for x in pool[: len(g.by_type[t]) : 2]] or ["nobody"]
        who = rnd.choice(held) if rnd.random() < 0.9 else "nobody"
        g.q.tags.add("nested_lookup_ref")
        return [[Kw(own.name), [Kw(f"{own.target}/id"), who]], Kw(a.name), v, *tx]


def p_tx_more(g: QueryGen, s: Scope, depth: int) -> Any:
    """The tx position with a bound tx variable (two patterns sharing ?tx), an attribute given as
    input (a bound attribute set), a variable repeated in the pattern, or a bound value set."""
    e = _some_entity(g, s)
    if depth > 0 or e is None:
        return None
    rnd = g.rnd
    info = s.vars[e]
    a = g.attr_of(info.ns, "int", "str", "bool", "ref") or g.model.attrs[f"{info.ns}/id"]
    g.q.tags.add("tx_position")
    shape = rnd.choice(["shared-tx", "shared-tx", "input-attr", "input-attrs", "repeated", "bound-values",
                        "impossible"])
    if shape == "shared-tx":
        tx = s.fresh("v", VarInfo("v", None, Attr("_", "", "tx")))
        b = g.attr_of(info.ns) or a
        # another entity of the same transaction: a cross product of whole transactions, so small sizes only
        f = s.fresh("e", VarInfo("e", info.ns)) if g.size <= 300 and rnd.random() < 0.5 else e
        return Many([[e, Kw(a.name), Sym("_"), tx], [f, Kw(b.name), Sym("_"), tx]])
    if shape in ("input-attr", "input-attrs"):
        av = s.fresh("a", VarInfo("attr", info.ns, None))
        g.q.ins.append(av if shape == "input-attr" else [av, Sym("...")])
        names = [a.name] + [x.name for x in g.model.of(info.ns)][: rnd.randint(0, 2)]
        g.q.inputs.append(a.name if shape == "input-attr" else _dedupe(names + ["z/none"]))
        g.q.tags.add("input_attr")
        return [e, av, Sym("_") if rnd.random() < 0.5 else s.fresh("v", VarInfo("v", info.ns, None)),
                s.fresh("v", VarInfo("v", None, Attr("_", "", "tx")))]
    if shape == "repeated":  # never true here (values are no tx ids); DataScript gets it spelled out
        x = s.fresh("v", VarInfo("v", None, None))
        # on the witness by lookup ref: the planner runs it first, on a non-empty relation
        who = [Kw(f"{info.ns}/id"), info.witness] if info.witness and rnd.random() < 0.7 else e
        return [who, Kw(a.name), x, x]
    if shape == "impossible":  # a constant no datom can hold, with the tx position
        return [e, Kw(a.name), [1, 2] if a.kind != "ref" else [Kw(f"{a.target}/id"), "nobody"],
                s.fresh("v", VarInfo("v", None, Attr("_", "", "tx")))]
    vs = [v for v in s.values("int", "str") if s.vars[v].attr and s.vars[v].attr.ns == info.ns]
    if not vs:
        return None
    v = rnd.choice(vs)
    f = s.fresh("e", VarInfo("e", info.ns))
    return [f, Kw(s.vars[v].attr.name), Sym(v), s.fresh("v", VarInfo("v", None, Attr("_", "", "tx")))]


def p_fn_rebind(g: QueryGen, s: Scope, depth: int) -> Any:
    """A function whose result variable is bound already, in the same relation: ``[(str ?v) ?v]``
    (a filter: equal values kept), or ``[?e :T/b ?w] [(identity ?v) ?w]`` for two values of one entity."""
    rnd = g.rnd
    vs = [v for v in s.values("int", "str", "id") if s.vars[v].attr is not None]
    if not vs:
        return None
    v = rnd.choice(vs)
    g.q.tags.add("fn_rebind")
    info = s.vars[v]
    if depth == 0 and info.ns and rnd.random() < 0.5:
        es = s.entities(info.ns)
        b = g.attr_of(info.ns, info.attr.kind) if info.attr.kind != "id" else None
        if es and b is not None:
            e = rnd.choice(es)
            w = s.fresh("v", VarInfo("v", info.ns, b, g.witness_value(s.vars[e].witness, b)))
            return Many([[Sym(e), Kw(b.name), w], [L((Sym("identity"), Sym(v))), w]])
    fn = rnd.choice(["str", "identity", "+"] if info.attr.kind == "int" else ["str", "identity"])
    call = L((Sym(fn), Sym(v), 0)) if fn == "+" else L((Sym(fn), Sym(v)))
    return [call, Sym(v)]


def p_rule_more(g: QueryGen, s: Scope, depth: int) -> Any:
    """Rule bodies DataScript reads in written order: a predicate before the clause binding its
    variable (accepted only when the call binds it), a call of an unknown rule, a plain ``not``
    sharing no variable; a recursive rule through ``or-join`` (several calls in a body); a call
    with one variable twice."""
    rnd = g.rnd
    site = _rule_site(g, s, depth)
    if site is None:
        return None
    e, info, t = site
    a = g.attr_of(t, "int")
    kinds = ["unknown", "lonely-not"] + (["early", "early", "early-bound"] if a else [])
    if f"{t}/parent" in g.model.attrs and g.size <= 400:
        kinds += ["anc-or", "anc-or", "anc-same", "anc-filtered", "anc-filtered"]
    kind = rnd.choice(kinds)
    g.q.tags.add("rule_" + kind.replace("-", "_"))
    if kind in ("early", "early-bound"):
        rules = f"[[(early ?e ?v) [(> ?v {rnd.randrange(3)})] [?e :{a.name} ?v]]]"
        if kind == "early-bound":
            v = s.fresh("v", VarInfo("v", t, a, g.witness_value(info.witness, a)))
            call = Many([[Sym(e), Kw(a.name), v], L((Sym("early"), Sym(e), v))])
        else:
            call = L((Sym("early"), Sym(e), s.fresh("v", VarInfo("v", t, a))))
    elif kind == "unknown":
        rules = f"[[(calls ?e) [?e :{t}/id _] (nosuch ?e)]]"
        call = L((Sym("calls"), Sym(e)))
    elif kind == "lonely-not":
        b = g.attr_of(t) or g.model.attrs[f"{t}/id"]
        rules = f"[[(lonely ?e) [?e :{t}/id _] (not [?y :{b.name} _])]]"
        call = L((Sym("lonely"), Sym(e)))
    elif kind == "anc-or":
        rules = (f"[[(anc ?a ?b) (or-join [?a ?b] [?a :{t}/parent ?b] "
                 f"(and [?a :{t}/parent ?x] (anc ?x ?b)))]]")
        call = L((Sym("anc"), Sym(e), s.fresh("e", VarInfo("e", t, witness=None))))
    elif kind == "anc-filtered":  # a recursive body whose prefix holds a function, a predicate and a not
        rules = (f"[[(up ?a ?b) [?a :{t}/parent ?b]] "
                 f"[(up ?a ?b) [?a :{t}/parent ?x] [(identity ?x) ?y] [(not= ?y ?a)] (not [?y :{t}/absent _]) "
                 f"(up ?y ?b)]]")
        other = s.fresh("e", VarInfo("e", t, witness=None))
        call = L((Sym("up"), Sym(e), other) if rnd.random() < 0.6 else (Sym("up"), other, Sym(e)))
    else:
        rules = (f"[[(anc ?a ?b) [?a :{t}/parent ?b]] "
                 f"[(anc ?a ?b) [?a :{t}/parent ?x] (anc ?x ?b)]]")
        call = L((Sym("anc"), Sym(e), Sym(e)))
    g.q.ins.append(Sym("%"))
    g.q.inputs.append(rules)
    return call


def p_invalid(g: QueryGen, s: Scope, depth: int) -> Any:
    """Clauses DataScript rejects (when it reaches them on a non-empty relation): a ``not-join``
    whose join variable nothing binds, an ``or-join`` branch that does not bind a join variable,
    a rule call with no ``%``; and what ours rejects up front: an ``or-join`` whose required
    variable nothing binds before it (DataScript agrees), a rule call with the wrong number of
    arguments or an unbound required variable (DataScript 1.8.1 checks neither: ``KEPT``)."""
    e = _some_entity(g, s)
    if depth > 0 or e is None:
        return None
    info = s.vars[e]
    a = g.attr_of(info.ns) or g.model.attrs[f"{info.ns}/id"]
    rules_free = "%" not in [str(i) for i in g.q.ins]
    shape = g.rnd.choice(["not-join", "or-join", "no-rules", "or-join-required"]
                         + (["rule-arity", "rule-required"] if rules_free else []))
    g.q.tags.add("invalid_" + shape.replace("-", "_"))
    if shape == "or-join-required":  # (or-join [[?x] ?e] ...) with ?x bound by nothing before it
        x = Sym(f"?free{s.counter[0] + 1}")
        s.counter[0] += 1
        return L((Sym("or-join"), [[x], e], [e, Kw(a.name), x]))
    if shape in ("rule-arity", "rule-required"):
        g.q.ins.append(Sym("%"))
        if shape == "rule-arity":
            g.q.inputs.append(f"[[(two ?e ?v) [?e :{a.name} ?v]]]")
            extra = [s.fresh("v", VarInfo("v", info.ns, None))] if g.rnd.random() < 0.5 else []
            return L((Sym("two"), e, *extra))  # one argument short, or one too many
        g.q.inputs.append(f"[[(needs [?e] ?v) [?e :{a.name} ?v]]]")
        f = Sym(f"?free{s.counter[0] + 1}")  # unbound where the call is written
        s.counter[0] += 1
        return L((Sym("needs"), f, s.fresh("v", VarInfo("v", info.ns, None))))
    if shape == "not-join":
        x = Sym(f"?free{s.counter[0] + 1}")
        s.counter[0] += 1
        return L((Sym("not-join"), [x], [x, Kw(a.name), Sym("_")]))
    if shape == "or-join":
        x = s.fresh("v", VarInfo("v", info.ns, None))
        return L((Sym("or-join"), [e, x], [e, Kw(a.name), x], [e, Kw(f"{info.ns}/id"), Sym("_")]))
    if "%" in [str(i) for i in g.q.ins]:
        return None
    return L((Sym("nosuch"), e))


def p_fn_on_value(g: QueryGen, s: Scope, depth: int) -> Any:
    """``get-else`` / ``get-some`` / ``missing?`` given a *value* where an entity is expected (ints
    that may name entities, 0, strings, booleans: DataScript raises on some, reads others as
    nobody), or an attribute that is no keyword."""
    rnd = g.rnd
    vs = [v for v in s.values("int", "str", "bool", "mixed", "id") if s.vars[v].attr is not None]
    if not vs:
        return None
    v = Sym(rnd.choice(vs))
    t = rnd.choice(g.model.types)
    a = g.attr_of(t, "int", "str") or g.model.attrs[f"{t}/id"]
    g.q.tags.add("fn_on_value")
    ints = [x for x in vs if s.vars[x].attr.kind == "int"]
    if ints and rnd.random() < 0.25:  # (/ ?n 2): 1.5 names nobody, 2 (2.0 in JS) entity 2
        f = s.fresh("v", VarInfo("v", None, None))
        return Many([[L((Sym("/"), Sym(rnd.choice(ints)), 2)), f],
                     [L((Sym("get-else"), Sym("$"), f, Kw(a.name), -1)), s.fresh("v", VarInfo("v", None, None))]])
    shape = rnd.choice(["get-else", "get-else", "get-some", "missing", "missing", "bad-attr"])
    if shape == "missing":
        return [L((Sym("missing?"), Sym("$"), v, Kw(a.name)))]
    if shape == "get-some":
        return [L((Sym("get-some"), Sym("$"), v, Kw(a.name))),
                [s.fresh("v", VarInfo("v", None, None)), s.fresh("v", VarInfo("v", None, None))]]
    if shape == "bad-attr":
        g.q.tags.add("fn_bad_attr")
    attr = Kw(a.name) if shape == "get-else" else rnd.choice([5, True])
    return [L((Sym("get-else"), Sym("$"), v, attr, -1)), s.fresh("v", VarInfo("v", None, None))]


def p_ref_input(g: QueryGen, s: Scope, depth: int) -> Any:
    """``:in [?r ...]`` of lookup refs (sometimes with a string that names nobody) joined as a ref
    attribute's value: a bound value set of lookup refs, each row keeping the one it was given."""
    e = _some_entity(g, s)
    if depth > 0 or e is None:
        return None
    refs = [a for a in g.model.of(s.vars[e].ns, "ref")]
    if not refs:
        return None
    rnd = g.rnd
    a = rnd.choice(refs)
    held = g.ents.get(s.vars[e].witness, {}).get(a.name)
    held = held if isinstance(held, list) else [held] if held else []
    idents = held + [rnd.choice(g.by_type[a.target]) for _ in range(rnd.randint(0, 6))]
    vals = _dedupe([[f"{a.target}/id", x] for x in idents])
    if rnd.random() < 0.5:
        vals.append(rnd.choice(["junk", idents[0] if idents else "x"]))
    if not vals:
        return None
    if rnd.random() < 0.4:  # built by a function: lookup refs a ref attribute's value set resolves (rows keep them)
        r = s.fresh("v", VarInfo("v", None, None))
        g.q.tags.add("fn_ref_values")
        ground = [[Kw(x[0]), x[1]] if isinstance(x, list) else x for x in vals]
        return Many([[L((Sym("ground"), ground)), [r, Sym("...")]], [e, Kw(a.name), r]])
    # an entity variable: ours returns the entity, DataScript the lookup ref given (same identity)
    r = s.fresh("e", VarInfo("e", a.target, witness=held[0] if held else None))
    g.q.ins.append([r, Sym("...")])
    g.q.inputs.append(vals)
    g.q.tags.add("input_ref_values")
    return [e, Kw(a.name), r]


def p_rule_adorned(g: QueryGen, s: Scope, depth: int) -> Any:
    """A rule whose body holds a plain ``not`` on a head variable: what it means depends on what
    the call binds where it is *written* (DataScript's order), never on the plan.  The call comes
    before or after the clause binding that variable; at sizes past ~50 the planner prefers the
    call either way.  Sometimes recursive, with the recursive call written before a clause that
    binds one of its arguments."""
    site = _rule_site(g, s, depth)
    if site is None:
        return None
    e, info, t = site
    rnd = g.rnd
    b = g.attr_of(t, "str", "int")
    if b is None:
        return None
    same = [x for x in g.model.of(t, b.kind) if x.name != b.name] or [b]
    a = rnd.choice(same)
    v = s.fresh("v", VarInfo("v", t, b, g.witness_value(info.witness, b)))
    recursive = f"{t}/parent" in g.model.attrs and g.size <= 300 and rnd.random() < 0.3
    rules = f"[[(r ?e ?s) (not [?e :{a.name} ?s]) [?e :{b.name} ?s]]"
    if recursive:
        # the prefix reachable from ?e ([?e :T/parent ?p] [?e :T/b ?s]) binds ?s for the recursive
        # call, which is written with ?p only bound: solved as written (rules.Solver.plan)
        rules += f" [(r ?e ?s) [?e :{t}/parent ?p] (r ?p ?s) [?e :{b.name} ?s]]"
        g.q.tags.add("rule_adorned_recursive")
    g.q.ins.append(Sym("%"))
    g.q.inputs.append(rules + "]")
    g.q.tags.add("rule_adorned")
    binding = [Sym(e), Kw(b.name), v]
    call = L((Sym("r"), Sym(e), v))
    return Many([binding, call] if rnd.random() < 0.5 else [call, binding])


CLAUSES = [
    (6, p_value), (7, p_const), (5, p_ref), (2, p_bound_join), (2, p_blank), (2, p_attr_var),
    (4, p_predicate), (3, p_fn), (2, p_missing), (3, p_not), (2, p_not_join), (2, p_or), (2, p_or_join),
    (2, p_rule), (1, p_const_entity), (1, p_tx),
    (2, p_fn_entity), (1, p_odd_entity), (1, p_tx_more), (1, p_fn_rebind), (1, p_rule_more), (1, p_invalid),
    (1, p_fn_on_value), (1, p_ref_input), (1, p_rule_adorned),
]
# the productions that reach rare branches of the scan and the planner, for a focused slice
RARE = [
    (3, p_value), (3, p_const), (2, p_ref), (1, p_attr_var), (1, p_predicate), (1, p_not), (1, p_or_join),
    (4, p_fn_entity), (3, p_odd_entity), (4, p_tx_more), (2, p_fn_rebind), (3, p_rule_more), (2, p_invalid),
    (2, p_tx), (1, p_const_entity), (1, p_rule), (2, p_fn_on_value), (1, p_ref_input), (2, p_rule_adorned),
]
# inside not / or bodies: refinements of bound variables only
BODY = [(5, p_const), (2, p_blank), (2, p_predicate), (1, p_missing), (1, p_attr_var), (1, p_not),
        (1, p_bound_join), (1, p_or)]
OR_BODY = [(5, p_const), (2, p_blank), (1, p_missing), (1, p_not_in_or), (1, p_or)]


# -- find productions -------------------------------------------------------------------------


def _col(s: Scope, v: str) -> str:
    return {"e": "e", "attr": "attr"}.get(s.vars[v].kind, "v")


def _findable(s: Scope) -> list[str]:
    return [k for k, v in s.vars.items() if v.kind in ("e", "v", "attr")]


def find_vars(g: QueryGen, s: Scope) -> bool:
    vs = _findable(s)
    picked = g.rnd.sample(vs, min(len(vs), g.rnd.choice([1, 1, 2, 3])))
    g.q.find = [Sym(v) for v in picked]
    g.q.cols = [_col(s, v) for v in picked]
    return True


def find_coll(g: QueryGen, s: Scope) -> bool:
    find_vars(g, s)
    g.q.find, g.q.cols = g.q.find[:1], g.q.cols[:1]
    g.q.kind = "coll"
    return True


def find_single(g: QueryGen, s: Scope) -> bool:
    """``?x .`` / ``[?x ?y]``: compared as membership in the relation the query would return."""
    find_vars(g, s)
    g.q.kind = "scalar" if len(g.q.find) == 1 or g.rnd.random() < 0.5 else "tuple"
    if g.q.kind == "scalar":
        g.q.find, g.q.cols = g.q.find[:1], g.q.cols[:1]
    return True


def find_keys(g: QueryGen, s: Scope) -> bool:
    find_vars(g, s)
    g.q.keys = [f"k{i}" for i in range(len(g.q.find))]
    return True


_NUM_AGGS = ["sum", "avg", "median", "variance", "stddev", "min", "max", "count", "count-distinct"]


def find_agg(g: QueryGen, s: Scope) -> bool:
    """An aggregate, optionally grouped by one variable and with ``:with``."""
    rnd = g.rnd
    ints = [v for v in s.values("int") if s.vars[v].attr and s.vars[v].attr.kind == "int"]
    anyv = [v for v in s.values() if s.vars[v].attr is not None] + s.entities()
    if not anyv:
        return False
    if ints and rnd.random() < 0.6:
        v = rnd.choice(ints)
        fn = rnd.choice(_NUM_AGGS + ["min-n", "max-n", "distinct"])
    else:
        v = rnd.choice(anyv)
        fn = rnd.choice(["count", "count-distinct", "distinct"] + (["min", "max"] if s.vars[v].kind == "v" else []))
    if fn in ("min-n", "max-n"):
        agg = L((Sym(fn[:3]), rnd.choice([1, 2, 3]), Sym(v)))
        col = "list"
        g.q.tags.add("agg_min_max_n")
    else:
        agg = L((Sym(fn), Sym(v)))
        col = {"distinct": "set-e" if s.vars[v].kind == "e" else "set"}.get(fn, "v")
    others = [x for x in _findable(s) if x != v and s.vars[x].kind != "attr"]
    find, cols = [], []
    if others and rnd.random() < 0.5:
        k = rnd.choice(others)
        find, cols = [Sym(k)], [_col(s, k)]
    g.q.find, g.q.cols = find + [agg], cols + [col]
    rest = [x for x in others if Sym(x) not in find]
    if rest and rnd.random() < 0.6:
        g.q.with_ = [rnd.choice(rest)]
    elif rnd.random() < 0.03:
        g.q.with_ = [v]  # invalid: DataScript rejects ":find and :with should not use same variables"
        g.q.tags.add("with_aggregated_var")
    if not find and rnd.random() < 0.5:
        g.q.kind = "scalar"
    return True


_PULLS = [
    lambda t, m: ["*"],
    lambda t, m: [Kw(f"{t}/id")] + [Kw(a.name) for a in m.of(t, "int", "str", "bool", "mixed")][:2],
    lambda t, m: [Kw(f"{t}/id")] + [{Kw(a.name): [Kw(f"{a.target}/id")]} for a in m.of(t, "ref")][:1],
    lambda t, m: [Kw(f"{t}/id")] + [Kw(f"{a.ns}/_{a.name.split('/')[1]}") for a in m.attrs.values()
                                     if a.kind == "ref" and a.target == t][:1],
    lambda t, m: [Kw(f"{t}/id"), Kw(f"{t}/_ghost"), Kw(f"{t}/owner")],  # a reverse ref nobody holds
]


def find_pull(g: QueryGen, s: Scope) -> bool:
    es = s.entities()
    if not es:
        return False
    e = g.rnd.choice(es)
    pat = g.rnd.choice(_PULLS)(s.vars[e].ns, g.model)
    pat = [Sym("*") if x == "*" else x for x in pat]
    g.q.find, g.q.cols = [L((Sym("pull"), Sym(e), _pull_edn(pat)))], ["pull"]
    return True


def _pull_edn(pat: list) -> Any:
    return [_Map(*next(iter(x.items()))) if isinstance(x, dict) else x for x in pat]


FINDS = [(8, find_vars), (2, find_coll), (2, find_single), (1, find_keys), (5, find_agg), (2, find_pull)]
