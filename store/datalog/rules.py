"""Rules: magic-set seeded, semi-naive fixpoint evaluation (recursive and mutual).

Owns: the ``Solver`` (per query run) and rule calls from clauses.
A rule call with some arguments bound registers those bindings as *magic* tuples
for (rule, adornment); the solver derives answers only for registered bindings,
so ``(ancestor "h1" ?x)`` walks one chain instead of the whole closure.
Iteration is semi-naive: each round feeds only the previous round's new magic
tuples and new answers into rule bodies.  Bodies with exactly one rule call are
split at the call (prefix ⋈ call ⋈ suffix) so that old prefix rows are joined
only with new answers; bodies with several calls are re-evaluated naively.
Negation over a rule inside a rule body is solved by a nested solver to
completion (stratified programs; unstratified recursion through ``not`` errors).
Must never: parse query text or touch SQL directly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edn_format import Keyword

from . import edn
from .context import Context
from .errors import DatalogError, QueryError
from .order import check_written_order
from .parser import Const, FnBinding, Not, Or, Predicate, Rule, RuleCall, Var, vars_of
from .relation import Rel, first_positions, getter, hash_join

if TYPE_CHECKING:
    from .query import Evaluator

_MAX_DEPTH = 32


def _calls_in(clauses: tuple) -> tuple[list[int], bool]:
    """Indexes of top-level rule calls, and whether calls hide inside not/or."""
    top = [i for i, c in enumerate(clauses) if isinstance(c, RuleCall)]
    nested = False
    for c in clauses:
        if isinstance(c, Not):
            nested = nested or bool(_calls_in(c.clauses)[0]) or _calls_in(c.clauses)[1]
        elif isinstance(c, Or):
            for br in c.branches:
                t, n = _calls_in(br)
                nested = nested or bool(t) or n
    return top, nested


class Solver:
    def __init__(self, ev: Evaluator, rules: dict[str, list[Rule]], depth: int = 0) -> None:
        if depth > _MAX_DEPTH:
            raise QueryError("rules recurse through negation (unstratified program) or nest too deeply")
        self.ev = ev
        self.rules = rules
        self.depth = depth
        self.magic: dict[tuple, set] = {}
        self.answers: dict[tuple, set] = {}
        self.dmagic: dict[tuple, set] = {}
        self.danswers: dict[tuple, set] = {}
        self.prefix: dict[tuple, Rel] = {}
        self.plans: dict[tuple, Any] = {}
        self.callee: dict[tuple, tuple] = {}
        self.index: dict[tuple, dict[tuple, list[tuple]]] = {}
        self.written: dict[tuple, dict[int, tuple]] = {}  # (key, branch) -> id(plain not) -> join vars

    # -- magic and answers ---------------------------------------------------------------
    def register(self, key: tuple, tuples: set) -> None:
        m = self.magic.setdefault(key, set())
        self.answers.setdefault(key, set())
        new = tuples - m
        if new:
            m |= new
            self.dmagic.setdefault(key, set()).update(new)

    def seed_rel(self, key: tuple, tuples: Any) -> Rel:
        name, adorn = key
        head = self.rules[name][0].head
        return Rel([p for p, b in zip(head, adorn, strict=False) if b], list(tuples))

    # -- plans ---------------------------------------------------------------------------
    def plan(self, key: tuple, bi: int) -> tuple:
        """(kind, rule, prefix, call, suffix, callee_adorn) for a branch and adornment."""
        pk = (key, bi)
        p = self.plans.get(pk)
        if p is not None:
            return p
        name, adorn = key
        rule = self.rules[name][bi]
        # the join variables of each plain not, from the written order of the body and the head
        # variables this call binds (acceptance was decided up front, order.check_written_order;
        # a call the planner reached with fewer bindings leaves the nots to the evaluator)
        written: dict[int, tuple] = {}
        try:
            check_written_order(rule.body, {v for v, b in zip(rule.head, adorn, strict=False) if b}, self.rules,
                                True, written)
        except DatalogError:
            written = {}
        self.written[pk] = written
        top, nested = _calls_in(rule.body)
        if not top and not nested:
            p = ("flat", rule, None, None, None, None)
        elif len(top) == 1 and not nested:
            call = resolve_call(self.ev.db, rule.body[top[0]])
            rest = [c for i, c in enumerate(rule.body) if i != top[0]]
            bound = {v for v, b in zip(rule.head, adorn, strict=False) if b}
            prefix: list[Any] = []
            changed = True
            # prefix: clauses reachable from the bound head variables without the call
            while changed:
                changed = False
                for c in list(rest):
                    vs = vars_of(c)
                    if isinstance(c, (Predicate, Not)):
                        ok = vs <= bound
                    elif isinstance(c, FnBinding):
                        ok = {x for x in c.args if isinstance(x, Var)} <= bound
                    else:
                        ok = bool(vs & bound)
                    if ok:
                        prefix.append(c)
                        rest.remove(c)
                        if not isinstance(c, (Predicate, Not)):
                            bound |= vs
                        changed = True
            # the call must be solved with the variables bound where it is written (see
            # query.not_join_vars); when the prefix binds others, solve the body as written instead
            written = {v for v, b in zip(rule.head, adorn, strict=False) if b}
            for c in rule.body[: top[0]]:
                if not isinstance(c, (Predicate, Not)):
                    written |= vars_of(c)
            same = {t for t in call.args if isinstance(t, Var) and t in bound} == (vars_of(call) & written)
            p = ("linear", rule, tuple(prefix), call, tuple(rest), None) if same else ("naive", rule, None, None,
                                                                                      None, None)
        else:
            p = ("naive", rule, None, None, None, None)
        self.plans[pk] = p
        return p

    # -- the fixpoint ---------------------------------------------------------------------
    def solve(self) -> None:
        first = True
        while self.dmagic or self.danswers or first:
            first = False
            dmagic, self.dmagic = self.dmagic, {}
            dans, self.danswers = self.danswers, {}
            new: dict[tuple, set] = {}
            for key in list(self.magic):
                name, adorn = key
                for bi in range(len(self.rules[name])):
                    kind, rule, prefix, call, suffix, cad = self.plan(key, bi)
                    out = new.setdefault(key, set())
                    if kind == "flat":
                        if key in dmagic:
                            out |= self._body(rule, key, bi, dmagic[key])
                    elif kind == "naive":
                        if dmagic or dans:
                            out |= self._body(rule, key, bi, self.magic[key])
                    else:
                        out |= self._linear(key, bi, rule, prefix, call, suffix, dmagic.get(key), dans)
            for key, rows in new.items():
                d = rows - self.answers[key]
                if d:
                    self.answers[key] |= d
                    self.danswers[key] = d
                    # answers indexed by their bound arguments (the magic tuple) for joins
                    bpos = [i for i, b in enumerate(key[1]) if b]
                    idx = self.index.setdefault(key, {})
                    for a in d:
                        idx.setdefault(tuple([a[i] for i in bpos]), []).append(a)

    def _ctx(self, seed: Rel) -> Context:
        ctx = Context({"$": self.ev.db}, self.rules, self, in_fix=True)
        ctx.add(seed)
        return ctx

    def _head(self, rule: Rule, ctx: Context) -> set:
        if ctx.empty:
            return set()
        missing = " ".join(p.name for p in rule.head if not ctx.has(p))
        if missing:
            raise QueryError(f"rule {rule.name} does not bind [{missing}] in its body")
        return set(ctx.project(rule.head).rows)

    def _body(self, rule: Rule, key: tuple, bi: int, seeds: set) -> set:
        ctx = self._ctx(self.seed_rel(key, seeds))
        self.ev.run(rule.body, ctx, self.written[(key, bi)])
        return self._head(rule, ctx)

    def _linear(self, key, bi, rule, prefix, call, suffix, dm, dans) -> set:
        pk = (key, bi)
        old = self.prefix.get(pk)
        callee = self.callee.get(pk)
        parts: list[Rel] = []
        if dm:
            ctx = self._ctx(self.seed_rel(key, dm))
            self.ev.run(prefix, ctx, self.written[pk])
            if not ctx.empty:
                pvars = tuple(sorted(ctx.bound(), key=lambda v: v.name))
                delta = ctx.project(pvars)
                callee = self._register_call(call, delta)
                self.callee[pk] = callee
                parts.append(join_indexed(delta, call, self.index.get(callee, {})))
                if old is None:
                    self.prefix[pk] = delta
                else:
                    self.prefix[pk] = Rel(old.vars, old.rows + delta.project(old.vars).rows)
        if old is not None and callee is not None and dans.get(callee):
            parts.append(hash_join(old, answer_rel(call, dans[callee])))
        out: set = set()
        for rel in parts:
            if not rel.rows:
                continue
            ctx = self._ctx(rel)
            self.ev.run(suffix, ctx, self.written[pk])
            out |= self._head(rule, ctx)
        return out

    def _register_call(self, call: RuleCall, rel: Rel) -> tuple:
        key, tuples = magic_for(call, rel, self.rules)
        self.register(key, tuples)
        return key


def magic_for(call: RuleCall, rel: Rel, rules: dict) -> tuple[tuple, set]:
    adorn = tuple(isinstance(t, Const) or (isinstance(t, Var) and t in rel.pos) for t in call.args)
    parts = []
    for t, b in zip(call.args, adorn, strict=False):
        if b:
            parts.append(("c", t.value) if isinstance(t, Const) else ("v", rel.pos[t]))
    tuples = {tuple(x if k == "c" else r[x] for k, x in parts) for r in rel.rows}
    return (call.name, adorn), tuples


def join_indexed(rel: Rel, call: RuleCall, index: dict[tuple, list[tuple]]) -> Rel:
    """rel ⋈ answers, probing answers indexed by the call's bound arguments."""
    key_parts: list[tuple[bool, Any]] = []
    for t in call.args:
        if isinstance(t, Const):
            key_parts.append((False, t.value))
        elif isinstance(t, Var) and t in rel.pos:
            key_parts.append((True, rel.pos[t]))
    new_vars, new_idx, dups = first_positions(call.args, lambda t: isinstance(t, Var) and t not in rel.pos)
    tail = getter(new_idx)
    out: list[tuple] = []
    for r in rel.rows:
        k = tuple([r[x] if is_pos else x for is_pos, x in key_parts])
        for ans in index.get(k, ()):
            if dups and not all(ans[x] == ans[y] for x, y in dups):
                continue
            out.append(r + tail(ans))
    return Rel(rel.vars + tuple(new_vars), out)


def answer_rel(call: RuleCall, answers: set) -> Rel:
    """Answers of the callee as a Rel over the call's variables (constants filter rows)."""
    vars_, idx, dups = first_positions(call.args, lambda t: isinstance(t, Var))
    consts = [(i, t.value) for i, t in enumerate(call.args) if isinstance(t, Const)]
    g = getter(idx)
    rows = [g(a) for a in answers if all(a[i] == v for i, v in consts) and all(a[x] == a[y] for x, y in dups)]
    return Rel(vars_, rows)


def resolve_call(db: Any, call: RuleCall) -> RuleCall:
    """Lookup refs given as constant rule arguments become entity ids (DataScript substitutes
    them into the rule body, where patterns resolve them)."""
    args = []
    changed = False
    for t in call.args:
        v = t.value if isinstance(t, Const) else None
        if (
            isinstance(v, tuple)
            and len(v) == 2
            and isinstance(v[0], (str, Keyword))
            and db.schema.unique(edn.ident(v[0]) or "")
        ):
            args.append(Const(db._resolve_const(v)))  # finds its entity or raises, like a pattern's
            changed = True
        else:
            args.append(t)
    return RuleCall(call.name, tuple(args), call.form) if changed else call


def call_rule(ev: Evaluator, c: RuleCall, ctx: Context, written: tuple | None = None) -> None:
    """A rule call in a where clause: seed magic from the context, solve, join answers.

    ``written``: the call's variables bound where it is written (``query.not_join_vars``); the
    call is solved with exactly those bound, as DataScript would (other bound variables join the
    answers afterwards), so that the plan never changes what the rule body means."""
    c = resolve_call(ev.db, c)
    solver = ctx.solver
    assert solver is not None, c  # order.check_rule_call: a query calling rules has % in :in
    bound_vars = [t for t in c.args if isinstance(t, Var) and ctx.has(t) and (written is None or t in written)]
    rel = ctx.merge(bound_vars).project(tuple(bound_vars)) if bound_vars else Rel((), [()])
    key, tuples = magic_for(c, rel, solver.rules)
    solver.register(key, tuples)
    if not ctx.in_fix:
        solver.solve()
    ctx.add(answer_rel(c, solver.answers.get(key, set())))
