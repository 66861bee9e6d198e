"""Query evaluation: parsed records + inputs -> result.

Owns: the entry point (``execute``), choosing the next clause (the planner), and
evaluating clauses (patterns, predicates, function bindings, not, or) to
relations that are joined into the context.  Input bindings live in
``bindings``, rules in ``rules.Solver``, the find phase in ``find``.
Must never: parse query text (``parser`` does) or write to the database.
"""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING, Any

from edn_format import Keyword

from . import builtins as bi
from . import edn
from .bindings import bind_with_dups, expand, flat_vars
from .context import Context
from .errors import QueryError, QueryParseError
from .find import find
from .order import check_written_order
from .parser import (
    BLANK,
    Const,
    FnBinding,
    Not,
    Or,
    Pattern,
    Predicate,
    Query,
    RuleCall,
    Var,
    _fmt,
    parse_rules,
    vars_of,
)
from .relation import Rel, first_positions, getter
from .rules import Solver, call_rule, resolve_call
from .values import unwrap, wrap

if TYPE_CHECKING:
    from .db import DatomDb

_INF = float("inf")


# -- the planner --------------------------------------------------------------------------


def not_join_vars(clauses: tuple, initial: set, written: dict[int, tuple]) -> dict[int, tuple]:
    """What the written order (DataScript's) fixes for the planner, by clause index: the join
    variables of each ``not`` and, for each rule call, its variables bound where it is written.

    ``written`` holds the join variables of the plain nots that the written-order pre-pass
    (``order``) decided: the query's own, or a rule body's for the binding pattern it is solved
    with.  A rule call runs once the variables bound at its written position are, and is solved
    with exactly those bound (``rules.call_rule``): a body's plain ``not`` joins on what the call
    binds, and a function there binds or filters, so a call planned earlier or later than written
    must not see fewer or more bindings (a silent wrong answer once an entity set grows past ~50).
    """
    out: dict[int, tuple] = {}
    seen = set(initial)
    for i, c in enumerate(clauses):
        if isinstance(c, Not):
            if c.join_vars is None:  # (a body solved with another binding pattern: from ``initial``)
                out[i] = written.get(id(c)) or tuple(sorted(vars_of(c) & seen, key=lambda v: v.name))
            else:
                out[i] = c.join_vars
        elif not isinstance(c, Predicate):
            if isinstance(c, RuleCall):
                out[i] = tuple(t for t in c.args if isinstance(t, Var) and t in seen)
            seen |= vars_of(c)
    return out


def _fn_waits(clauses: tuple, rules: dict) -> dict[int, list[int]]:
    """Clause index -> the clauses written before it that it must wait for: a clause using an output
    variable of a function binding written before it waits for the function, and a function binding
    waits for the clauses before it that use its output variables.  Whichever comes first in the
    written order binds the variable, as in DataScript: a ``vector`` result is a lookup ref that a
    later pattern resolves, while a function run after a pattern is only compared with its value."""
    fns = [(i, outs) for i, c in enumerate(clauses) if (outs := _fn_outputs(c, rules))]
    if not fns:
        return {}
    out: dict[int, list[int]] = {}
    for j, c in enumerate(clauses):
        vs = vars_of(c)
        for i, outs in fns:
            if i != j and outs & vs:
                first, then = (i, j) if i < j else (j, i)
                out.setdefault(then, []).append(first)
    return out


def _fn_outputs(c: Any, rules: dict, seen: frozenset = frozenset()) -> set:
    """The variables a function binding may bind in clause ``c``: its own; for an ``or`` /
    ``or-join``, those of its variables that a function binding in a branch binds (a branch's
    ``vector`` result leaves the or as a lookup ref, as in DataScript); for a rule call, its
    variables when a body of the rule (or of a rule it calls) holds a function binding."""
    if isinstance(c, FnBinding):
        return set(flat_vars(c.binding))
    if isinstance(c, Or):
        inner: set = set()
        for branch in c.branches:
            for b in branch:
                inner |= _fn_outputs(b, rules, seen)
        return inner & vars_of(c)
    if isinstance(c, RuleCall) and c.name not in seen:
        inside = seen | {c.name}
        if any(_fn_outputs(b, rules, inside) for rule in rules.get(c.name, ()) for b in rule.body):
            return vars_of(c)
    return set()


class Evaluator:
    """Evaluates a clause list in a context; one per query run."""

    def __init__(self, db: DatomDb) -> None:
        self.db = db
        self.estimates: dict[tuple, float] = {}  # (attr, value) -> datom count, per query run
        self.not_joins: dict[int, tuple] = {}  # id(plain not) -> join vars, from the written order

    def cost(self, c: Any, ctx: Context, bound: set, join: tuple | None) -> float | None:
        if isinstance(c, Pattern):
            src = ctx.sources.get(c.source)
            if src is None:
                raise QueryError(f"no source {c.source} for {_fmt(c.form)}; add it to :in")
            terms = list(c.terms) + [BLANK] * (3 - len(c.terms))
            e, a, v = terms[:3]
            if src is not self.db and not hasattr(src, "scan_pattern"):
                return float(len(src)) if hasattr(src, "__len__") else 1000.0
            n = float(src.count_attr(a.value)) if isinstance(a, Const) else float(src.total())
            if isinstance(e, Const):
                return 1.0
            est = n + 10.0
            if isinstance(a, Const) and isinstance(v, Const):
                key = (a.value, v.value)
                cached = self.estimates.get(key)
                if cached is None:
                    cached = self.estimates[key] = float(src.estimate(a.value, v.value))
                est = min(est, cached)
            if isinstance(e, Var) and e in bound:
                est = min(est, 3.0 + ctx.size(e))
            if isinstance(v, Var) and v in bound:
                est = min(est, 4.0 + ctx.size(v))
            return est
        if isinstance(c, Predicate):
            need = vars_of(c)
            return -1.0 if need <= bound else None
        if isinstance(c, FnBinding):
            need = {a for a in c.args if isinstance(a, Var)} | ({c.fn} if isinstance(c.fn, Var) else set())
            return 0.0 if need <= bound else None
        if isinstance(c, Not):
            return -0.5 if set(join or ()) <= bound else None
        if isinstance(c, Or):
            if not set(c.required) <= bound:
                return None
            return 100.0 if vars_of(c) & bound else 1e7
        assert isinstance(c, RuleCall), c  # the parser makes no other clause
        # known, with the right arity: order.check_written_order checked every call up front
        # (the query's and those in the bodies of the rules it calls)
        # waits for the variables bound where it is written (not_join_vars), which include its
        # required ones (order.check_rule_call)
        if not set(join or ()) <= bound:
            return None
        if any(isinstance(t, Const) or (isinstance(t, Var) and t in bound) for t in c.args):
            return 50.0
        return 1e8

    def run(self, clauses: tuple, ctx: Context, written: dict[int, tuple] | None = None) -> Context:
        """Evaluate ``clauses`` into ``ctx``; ``written``: the join variables of plain nots decided
        by the written-order pass (the query's own by default; a rule body's come from its plan)."""
        if not clauses:
            return ctx
        joins = not_join_vars(clauses, ctx.bound(), self.not_joins if written is None else written)
        waits = _fn_waits(clauses, ctx.rules)
        remaining = list(range(len(clauses)))
        while remaining and not ctx.empty:
            bound = ctx.bound()
            best, best_cost = None, _INF
            for i in remaining:
                if i in waits and any(j in remaining for j in waits[i]):
                    continue
                cst = self.cost(clauses[i], ctx, bound, joins.get(i))
                if cst is not None and cst < best_cost:
                    best, best_cost = i, cst
            # order.check_written_order accepted the written order (of the query and of each rule
            # body, from the head variables its call binds), so the earliest remaining clause can run
            assert best is not None, clauses[remaining[0]]
            remaining.remove(best)
            self.clause(clauses[best], ctx, joins.get(best))
        # clauses left once the context is empty need no check: order.check_written_order validated
        # every clause (and every rule call, with the bodies it calls) before evaluation
        return ctx

    def clause(self, c: Any, ctx: Context, join: tuple | None) -> None:
        if isinstance(c, Pattern):
            ctx.add(self.pattern(c, ctx))
        elif isinstance(c, Predicate):
            self.predicate(c, ctx)
        elif isinstance(c, FnBinding):
            self.fn_binding(c, ctx)
        elif isinstance(c, Not):
            self.negate(c, ctx, join or ())
        elif isinstance(c, Or):
            self.disjunction(c, ctx)
        else:
            assert isinstance(c, RuleCall), c  # the parser makes no other clause
            call_rule(self, c, ctx, join)

    # -- data patterns -------------------------------------------------------------------
    def pattern(self, p: Pattern, ctx: Context) -> Rel:
        src = ctx.sources[p.source]
        if not hasattr(src, "scan_pattern"):
            return self._pattern_collection(p, src, ctx)
        terms = list(p.terms) + [BLANK] * (3 - len(p.terms))
        if len(terms) > 3 and not isinstance(terms[3], type(BLANK)):
            return self._pattern_tx(p, src, terms, ctx)
        e, a, v = terms[:3]

        vars_, idx, checks = first_positions((e, a, v), _is_var)
        ce, ca, cv = self._cand(e, ctx), self._cand(a, ctx), self._cand(v, ctx)
        if not idx:
            return Rel((), [()] if src.scan_pattern(ce, ca, cv) else [])
        if not checks:
            # the source projects (and de-duplicates) to the pattern's variables itself
            return Rel(vars_, src.scan_pattern(ce, ca, cv, tuple(idx)))
        rows = [r for r in src.scan_pattern(ce, ca, cv) if all(r[x] == r[y] for x, y in checks)]
        return Rel(vars_, list(dict.fromkeys(map(getter(idx), rows))))

    def _pattern_collection(self, p: Pattern, src: Any, ctx: Context) -> Rel:
        """A data pattern over a collection source (tuples given as an :in source), of any width."""
        vars_, idx, checks = first_positions(p.terms, _is_var)
        rows = _scan_collection(src, [self._cand(t, ctx) for t in p.terms])
        if checks:
            rows = [r for r in rows if all(r[x] == r[y] for x, y in checks)]
        return Rel(vars_, list(dict.fromkeys(map(getter(idx), rows))))

    def _pattern_tx(self, p: Pattern, src: Any, terms: list, ctx: Context) -> Rel:
        """[e a v tx] over the database: the rare four-position pattern, scanned with the tx column."""
        e, a, v, tx = terms[:4]
        rows = src.scan_with_tx(self._cand(e, ctx), self._cand(a, ctx), self._cand(v, ctx))
        ctx_tx = self._cand(tx, ctx)  # the tx column is filtered here: the scan cannot use it
        if ctx_tx is not None:
            if ctx_tx[0] == "const":
                rows = [r for r in rows if r[3] == ctx_tx[1]]
            else:
                keep = ctx_tx[1]
                rows = [r for r in rows if r[3] in keep]
        vars_, idx, checks = first_positions(terms[:4], _is_var)
        if checks:
            rows = [r for r in rows if all(r[x] == r[y] for x, y in checks)]
        g = getter(idx)
        return Rel(vars_, list(dict.fromkeys(g(r) for r in rows)))

    @staticmethod
    def _cand(t: Any, ctx: Context) -> Any:
        """A pattern term as the scan sees it: None (free), ("const", x) or ("bound", values)."""
        if isinstance(t, Const):
            return ("const", t.value)
        if isinstance(t, Var) and ctx.has(t):
            return ("bound", ctx.values(t))
        return None

    # -- functions -----------------------------------------------------------------------
    def _arg_getters(self, c: Any, ctx: Context, rel: Rel) -> list:
        out = []
        for a in c.args:
            if isinstance(a, Var):
                i = rel.pos[a]
                out.append((True, i))
            elif isinstance(a, str):
                src = ctx.sources.get(a)
                if src is None:
                    raise QueryError(f"no source {a} for {_fmt(c.form)}")
                out.append((False, src))
            else:
                out.append((False, unwrap(a.value)))
        return out

    def predicate(self, c: Predicate, ctx: Context) -> None:
        need = vars_of(c)
        rel = ctx.merge(need)
        kept = _fast_compare(c, rel)
        if kept is not None:
            rel.rows = kept
            if not kept:
                ctx.empty = True
            return
        getters = self._arg_getters(c, ctx, rel)
        name = c.fn.name if isinstance(c.fn, Var) else c.fn
        fpos = rel.pos[c.fn] if isinstance(c.fn, Var) else None
        fn = None if fpos is not None else bi.FUNCTIONS[c.fn]
        truthy, call = bi.truthy, bi.call
        kept = []
        for r in rel.rows:
            args = [unwrap(r[x]) if is_var else x for is_var, x in getters]  # built-ins see Python values
            f = r[fpos] if fpos is not None else fn
            if not callable(f):
                raise QueryError(f"{name} is not a function in {_fmt(c.form)}")
            if truthy(call(name, f, args)):
                kept.append(r)
        rel.rows = kept
        if not kept:
            ctx.empty = True

    def fn_binding(self, c: FnBinding, ctx: Context) -> None:
        need = {a for a in c.args if isinstance(a, Var)} | ({c.fn} if isinstance(c.fn, Var) else set())
        rel = ctx.merge(need)
        getters = self._arg_getters(c, ctx, rel)
        name = c.fn.name if isinstance(c.fn, Var) else c.fn
        fpos = rel.pos[c.fn] if isinstance(c.fn, Var) else None
        fn = None if fpos is not None else bi.FUNCTIONS[c.fn]
        in_vars = list(rel.vars)
        out_vars = flat_vars(c.binding)
        new_vars = [v for v in dict.fromkeys(out_vars) if v not in rel.pos]
        if not new_vars and not out_vars:
            return
        rows = []
        for r in rel.rows:
            args = [unwrap(r[x]) if is_var else x for is_var, x in getters]  # built-ins see Python values
            f = r[fpos] if fpos is not None else fn
            if not callable(f):
                raise QueryError(f"{name} is not a function in {_fmt(c.form)}")
            val = bi.call(name, f, args)
            if val is None:
                continue
            for tup in expand(c.binding, val, c.form):
                env = dict(zip(in_vars, r, strict=False))
                ok = True
                for var, x in zip(out_vars, tup, strict=False):
                    if var in env and env[var] != x:
                        ok = False
                        break
                    env[var] = x
                if ok:
                    rows.append(r + tuple(env[v] for v in new_vars))
        new = Rel(in_vars + new_vars, list(dict.fromkeys(rows)))
        ctx.rels = [x for x in ctx.rels if x is not rel]
        ctx.add(new)

    # -- not / or ---------------------------------------------------------------------------
    def negate(self, c: Not, ctx: Context, join: tuple) -> None:
        rel = ctx.merge(join)
        seed = rel.project(join)
        key = getter([rel.pos[v] for v in join])
        sub = ctx.child(seed)
        if ctx.in_fix:
            sub.solver = Solver(self, ctx.rules, depth=(ctx.solver.depth + 1) if ctx.solver else 1)
            sub.in_fix = False
        self.run(c.clauses, sub)
        if sub.empty:
            return
        matched = set(sub.project(join).rows)
        rel.rows = [r for r in rel.rows if key(r) not in matched]
        if not rel.rows:
            ctx.empty = True

    def disjunction(self, c: Or, ctx: Context) -> None:
        join = tuple(sorted(c.join_vars if c.join_vars is not None else vars_of(c), key=lambda v: v.name))
        bound = [v for v in join if ctx.has(v)]
        seed = ctx.project(tuple(bound)) if bound else None
        out: dict[tuple, None] = {}
        for branch in c.branches:
            sub = ctx.child(seed)
            self.run(branch, sub)
            if sub.empty:
                continue
            missing = " ".join(v.name for v in join if not sub.has(v))
            if missing:
                raise QueryParseError(
                    f"insufficient bindings: #{{{missing}}} not bound in a branch of {_fmt(c.form)}", c.form
                )
            out.update(dict.fromkeys(sub.project(join).rows))
        ctx.add(Rel(join, list(out)))


_FAST_OPS = {
    "<": operator.lt,
    ">": operator.gt,
    "<=": operator.le,
    ">=": operator.ge,
    "=": operator.eq,
    "==": operator.eq,
    "not=": operator.ne,
    "!=": operator.ne,
}


def _fast_compare(c: Predicate, rel: Rel) -> list[tuple] | None:
    """Two-argument comparisons as one list comprehension (None: use the general path).

    Python's operators agree with ``builtins.compare`` whenever they do not raise;
    mixed types raise TypeError and fall back to the general, type-ranked path.
    """
    op = _FAST_OPS.get(c.fn) if isinstance(c.fn, str) else None
    if op is None or len(c.args) != 2:
        return None
    x, y = c.args
    try:
        if isinstance(x, Var) and isinstance(y, Const):
            i, k = rel.pos[x], y.value
            return [r for r in rel.rows if op(r[i], k)]
        if isinstance(x, Const) and isinstance(y, Var):
            k, j = x.value, rel.pos[y]
            return [r for r in rel.rows if op(k, r[j])]
        if isinstance(x, Var) and isinstance(y, Var):
            i, j = rel.pos[x], rel.pos[y]
            return [r for r in rel.rows if op(r[i], r[j])]
    except TypeError:
        return None
    return None


def _scan_collection(src: Any, specs: list) -> list[tuple]:
    """The tuples of a collection source matching the pattern's terms (None: free, or
    ("const", x) / ("bound", values)), padded with nil to the pattern's width.  As in DataScript,
    a tuple shorter than the pattern matches whatever the pattern has past its end (there the
    variables bind nil, which joins with nothing that a datom holds)."""
    out = []
    width = len(specs)
    for t in src:
        t = tuple(map(wrap, t))
        n = len(t)
        t = (t + (None,) * width)[:width] if n < width else t[:width]
        ok = True
        for i, s in enumerate(specs):
            if s is None:
                continue
            kind, val = s
            x = t[i]
            if kind == "const" and i >= n:
                continue
            if i == 1:  # attributes compare as idents: "a/b", ":a/b" and Keyword("a/b") are one attribute
                x = edn.ident(x) if isinstance(x, (str, Keyword)) else x
                if kind == "const":
                    val = edn.ident(val) if isinstance(val, (str, Keyword)) else val
                else:
                    val = {edn.ident(y) if isinstance(y, (str, Keyword)) else y for y in val}
            if kind == "const":
                if x != val:
                    ok = False
                    break
            elif x not in val:
                ok = False
                break
        if ok:
            out.append(t)
    return out


# -- the find phase -----------------------------------------------------------------------


def entity_vars(clauses: tuple, is_ref: Any, rules: dict | None = None, _in_rules: frozenset = frozenset()) -> set[Var]:
    """Variables used where an entity is expected: pattern entity positions and ref values,
    also through rule calls (an argument whose rule parameter is used as an entity)."""
    out: set[Var] = set()
    for c in clauses:
        if isinstance(c, Pattern):
            t = c.terms
            if isinstance(t[0], Var):
                out.add(t[0])
            if len(t) > 2 and isinstance(t[2], Var) and isinstance(t[1], Const):
                name = t[1].value.name if isinstance(t[1].value, Keyword) else str(t[1].value)
                if is_ref(name.lstrip(":")):
                    out.add(t[2])
        elif isinstance(c, Not):
            out |= entity_vars(c.clauses, is_ref, rules, _in_rules)
        elif isinstance(c, Or):
            for br in c.branches:
                out |= entity_vars(br, is_ref, rules, _in_rules)
        elif isinstance(c, RuleCall) and rules and c.name in rules and c.name not in _in_rules:
            for rule in rules[c.name]:
                inner = entity_vars(rule.body, is_ref, rules, _in_rules | {c.name})
                out |= {t for p, t in zip(rule.head, c.args, strict=False) if p in inner and isinstance(t, Var)}
    return out


def resolve_written_refs(db: DatomDb, clauses: tuple, rules: dict, called: set[str]) -> None:
    """Resolve every lookup ref written in the query (and in the rules it calls) once, up front:
    one that finds nothing raises here, whatever order the planner would have reached it in."""
    for c in clauses:
        if isinstance(c, Pattern) and c.source == "$":
            t = c.terms
            if isinstance(t[0], Const) and isinstance(t[0].value, (tuple, str)):
                db._resolve_const(t[0].value)
            if (len(t) > 2 and isinstance(t[1], Const) and isinstance(t[2], Const)
                    and isinstance(t[2].value, (tuple, str))):
                ident = edn.ident(t[1].value) if isinstance(t[1].value, (str, Keyword)) else None
                if ident and db.schema.is_ref(ident):
                    db._resolve_const(t[2].value)
        elif isinstance(c, Not):
            resolve_written_refs(db, c.clauses, rules, called)
        elif isinstance(c, Or):
            for branch in c.branches:
                resolve_written_refs(db, branch, rules, called)
        elif isinstance(c, RuleCall):
            resolve_call(db, c)
            if c.name in rules and c.name not in called:
                called.add(c.name)
                for rule in rules[c.name]:
                    resolve_written_refs(db, rule.body, rules, called)


def _resolve_input_refs(db: DatomDb, rel: Rel, evars: set[Var]) -> Rel:
    """Lookup refs given as inputs for entity variables become entity ids (as in DataScript)."""
    cols = [i for i, v in enumerate(rel.vars) if v in evars]
    if not cols or not any(isinstance(r[i], (list, tuple)) for r in rel.rows for i in cols):
        return rel
    rows = []
    for r in rel.rows:
        row = list(r)
        for i in cols:
            if isinstance(row[i], (list, tuple)):
                row[i] = db._resolve(tuple(row[i]))
        if all(row[i] is not None for i in cols):
            rows.append(tuple(row))
    return Rel(rel.vars, list(dict.fromkeys(rows)))


def execute(db: DatomDb, q: Query, inputs: tuple) -> Any:
    """Run a parsed query against ``db`` (inside the caller's read transaction)."""
    sources: dict[str, Any] = {}
    rules: dict = {}
    ev = Evaluator(db)
    ctx = Context(sources, rules, None)
    specs = [s for s in q.inputs if s != ("src", "$")]
    if len(inputs) != len(specs):
        raise QueryError(
            f"query expects {len(specs)} inputs after the database (:in {len(q.inputs)} items), got {len(inputs)}"
        )
    sources["$"] = db  # `$` is always this database; inputs fill the other :in slots in order
    for spec, value in zip(specs, inputs, strict=False):
        if isinstance(spec, tuple) and spec[0] == "src":
            sources[spec[1]] = value
        elif isinstance(spec, tuple) and spec[0] == "rules":
            rules.update(parse_rules(value) if value is not None else {})
    evars = None
    for spec, value in zip(specs, inputs, strict=False):  # after the rules: entity vars look into them
        if not isinstance(spec, tuple):
            rel = bind_with_dups(spec, value, spec)
            if rel is not None:
                if evars is None:
                    evars = entity_vars(q.where, db.schema.is_ref, rules)
                ctx.add(_resolve_input_refs(db, rel, evars))
    # acceptance and plain-not join vars come from the written order, never from the plan
    check_written_order(q.where, ctx.bound(), rules, ("rules",) in q.inputs, ev.not_joins)
    resolve_written_refs(db, q.where, rules, set())
    ctx.solver = Solver(ev, rules)
    ev.run(q.where, ctx)
    return find(db, q, ctx, sources)


__all__ = ["execute", "Evaluator", "Context"]


def _is_var(term: Any) -> bool:
    return isinstance(term, Var)
