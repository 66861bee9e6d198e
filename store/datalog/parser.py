"""Query parser: query data (EDN text or Python data) -> plain records.

Owns: the record types (find spec, :in bindings, clauses, rules) and every check
that can be made from the query text alone; errors name the offending form.
Must never: touch a database or evaluate anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from edn_format import Keyword, Symbol

from . import edn
from .builtins import AGGREGATES, DB_FUNCTIONS, FUNCTIONS
from .errors import QueryParseError
from .pull import parse_pattern
from .values import wrap

# -- records -----------------------------------------------------------------


# Every record prints as the EDN it was parsed from (``__edn__``, used by ``edn.fmt``), so
# that error messages quote the query's own text and never a Python repr.


def _form_edn(self: Any) -> str:
    return edn.fmt(self.form, 10_000)


@dataclass(frozen=True)
class Var:
    name: str

    def __repr__(self) -> str:
        return self.name

    def __edn__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Const:
    value: Any

    def __edn__(self) -> str:
        return edn.fmt(self.value, 10_000)


@dataclass(frozen=True)
class Blank:
    def __edn__(self) -> str:
        return "_"


BLANK = Blank()
Term = Var | Const | Blank


@dataclass(frozen=True)
class Pattern:
    source: str
    terms: tuple[Term, ...]  # e, a, v[, tx]
    form: Any = field(compare=False)

    __edn__ = _form_edn


@dataclass(frozen=True)
class BindScalar:
    var: Var

    def __edn__(self) -> str:
        return self.var.name


@dataclass(frozen=True)
class BindIgnore:
    def __edn__(self) -> str:
        return "_"


@dataclass(frozen=True)
class BindTuple:
    items: tuple[Any, ...]

    def __edn__(self) -> str:
        return "[" + " ".join(edn.fmt(i, 10_000) for i in self.items) + "]"


@dataclass(frozen=True)
class BindColl:
    item: Any

    def __edn__(self) -> str:
        if isinstance(self.item, BindTuple):
            return "[" + edn.fmt(self.item, 10_000) + "]"  # a relation binding [[?a ?b]]
        return "[" + edn.fmt(self.item, 10_000) + " ...]"


Binding = BindScalar | BindIgnore | BindTuple | BindColl


@dataclass(frozen=True)
class Predicate:
    fn: str | Var
    args: tuple[Any, ...]  # Var | Const | source name (str starting with $)
    form: Any = field(compare=False)

    __edn__ = _form_edn


@dataclass(frozen=True)
class FnBinding:
    fn: str | Var
    args: tuple[Any, ...]
    binding: Binding
    form: Any = field(compare=False)

    __edn__ = _form_edn


@dataclass(frozen=True)
class Not:
    join_vars: tuple[Var, ...] | None  # None for plain `not`
    clauses: tuple[Any, ...]
    form: Any = field(compare=False)

    __edn__ = _form_edn


@dataclass(frozen=True)
class Or:
    join_vars: tuple[Var, ...] | None  # None for plain `or`
    required: tuple[Var, ...]
    branches: tuple[tuple[Any, ...], ...]
    form: Any = field(compare=False)

    __edn__ = _form_edn


@dataclass(frozen=True)
class RuleCall:
    name: str
    args: tuple[Term, ...]
    form: Any = field(compare=False)

    __edn__ = _form_edn


@dataclass(frozen=True)
class Rule:
    name: str
    head: tuple[Var, ...]
    required: tuple[Var, ...]
    body: tuple[Any, ...]


@dataclass(frozen=True)
class FindVar:
    var: Var

    def __edn__(self) -> str:
        return self.var.name


@dataclass(frozen=True)
class FindAgg:
    fn: str
    args: tuple[Any, ...]  # leading constants, last is the Var
    var: Var

    def __edn__(self) -> str:
        return "(" + " ".join([self.fn, *(edn.fmt(a, 10_000) for a in self.args), self.var.name]) + ")"


@dataclass(frozen=True)
class FindPull:
    source: str
    var: Var
    pattern: Any  # parsed pull pattern or a Var naming an input


@dataclass(frozen=True)
class Query:
    kind: str  # "rel" | "coll" | "tuple" | "scalar"
    find: tuple[Any, ...]
    keys: tuple[str, ...] | None
    with_vars: tuple[Var, ...]
    inputs: tuple[Any, ...]  # Binding | ("src", name) | ("rules",)
    where: tuple[Any, ...]


# -- helpers -------------------------------------------------------------------


def _fmt(form: Any) -> str:
    """A form (or record) as EDN for an error message (see ``edn.fmt``)."""
    return edn.fmt(form)


def _err(msg: str, form: Any) -> QueryParseError:
    return QueryParseError(f"{msg}: {_fmt(form)}", form)


def _is_vec(x: Any) -> bool:
    return isinstance(x, list) or type(x).__name__ == "ImmutableList"


def _is_var(x: Any) -> bool:
    return isinstance(x, Symbol) and x.name.startswith("?")


def _is_src(x: Any) -> bool:
    return isinstance(x, Symbol) and x.name.startswith("$")


def _is_plain_sym(x: Any) -> bool:
    return isinstance(x, Symbol) and not x.name.startswith(("?", "$")) and x.name not in ("_", "%", "...", ".")


def _var(x: Any, form: Any) -> Var:
    if not _is_var(x):
        raise _err(f"expected a variable, got {_fmt(x)}", form)
    return Var(x.name)


def _term(x: Any) -> Term:
    if _is_var(x):
        return Var(x.name)
    if isinstance(x, Symbol) and x.name == "_":
        return BLANK
    if isinstance(x, Symbol):
        raise QueryParseError(f"unexpected symbol {x.name} in data pattern", x)
    return Const(_const(x))


def _const(x: Any) -> Any:
    if _is_vec(x):
        return tuple(_const(i) for i in x)
    return wrap(x)  # a boolean constant as relations hold it (values.py)


def vars_of(clause: Any) -> set[Var]:
    """Every variable mentioned by a clause (recursively)."""
    if isinstance(clause, Pattern):
        return {t for t in clause.terms if isinstance(t, Var)}
    if isinstance(clause, Predicate):
        return {a for a in clause.args if isinstance(a, Var)} | ({clause.fn} if isinstance(clause.fn, Var) else set())
    if isinstance(clause, FnBinding):
        out = {a for a in clause.args if isinstance(a, Var)} | binding_vars(clause.binding)
        return out | ({clause.fn} if isinstance(clause.fn, Var) else set())
    if isinstance(clause, Not):
        out: set[Var] = set()
        for c in clause.clauses:
            out |= vars_of(c)
        return out
    if isinstance(clause, Or):
        if clause.join_vars is not None:
            return set(clause.join_vars)
        out = set()
        for br in clause.branches:
            for c in br:
                out |= vars_of(c)
        return out
    if isinstance(clause, RuleCall):
        return {t for t in clause.args if isinstance(t, Var)}
    return set()


def binding_vars(b: Any) -> set[Var]:
    if isinstance(b, BindScalar):
        return {b.var}
    if isinstance(b, BindTuple):
        out: set[Var] = set()
        for i in b.items:
            out |= binding_vars(i)
        return out
    if isinstance(b, BindColl):
        return binding_vars(b.item)
    return set()


# -- bindings --------------------------------------------------------------------


def parse_binding(x: Any, form: Any) -> Binding:
    if _is_var(x):
        return BindScalar(Var(x.name))
    if isinstance(x, Symbol) and x.name == "_":
        return BindIgnore()
    if _is_vec(x) and x:
        items = list(x)
        if len(items) == 2 and isinstance(items[1], Symbol) and items[1].name == "...":
            return BindColl(parse_binding(items[0], form))
        if len(items) == 1 and _is_vec(items[0]):
            return BindColl(parse_binding(items[0], form))
        return BindTuple(tuple(parse_binding(i, form) for i in items))
    raise _err(f"cannot parse binding {_fmt(x)}", form)


# -- clauses -------------------------------------------------------------------


def parse_clauses(forms: Any, ctx: str = ":where") -> tuple[Any, ...]:
    if not _is_vec(forms) and not isinstance(forms, tuple):
        raise _err(f"{ctx} must be a vector of clauses", forms)
    return tuple(parse_clause(f) for f in forms)


def _fn_name(head: Any, form: Any) -> str | Var:
    if _is_var(head):
        return Var(head.name)
    if not isinstance(head, Symbol):
        raise _err("expected a function symbol", form)
    name = head.name
    if name not in FUNCTIONS:
        raise _err(f"unknown function {name}", form)
    return name


def _fn_args(args: Any, form: Any) -> tuple[Any, ...]:
    out = []
    for a in args:
        if _is_var(a):
            out.append(Var(a.name))
        elif _is_src(a):
            out.append(a.name)
        elif isinstance(a, Symbol) and a.name == "_":
            raise _err("_ cannot be a function argument", form)
        elif isinstance(a, Symbol):
            raise _err(f"unknown symbol {a.name} as function argument", form)
        else:
            out.append(Const(_const(a)))
    return tuple(out)


def parse_clause(form: Any) -> Any:
    if _is_vec(form):
        items = list(form)
        if not items:
            raise _err("empty clause", form)
        if isinstance(items[0], tuple):
            call = items[0]
            if not call:
                raise _err("empty function call", form)
            fn = _fn_name(call[0], form)
            args = _fn_args(call[1:], form)
            if isinstance(fn, str) and fn in DB_FUNCTIONS and not (args and isinstance(args[0], str)):
                raise _err(f"{fn} takes a database source ($) as its first argument", form)
            if len(items) == 1:
                return Predicate(fn, args, form)
            if len(items) == 2:
                return FnBinding(fn, args, parse_binding(items[1], form), form)
            raise _err("function clause must be [(f ...)] or [(f ...) binding]", form)
        source = "$"
        if _is_src(items[0]):
            source = items[0].name
            items = items[1:]
        if not 1 <= len(items) <= 4:
            raise _err("data pattern must have 1 to 4 elements [e a v tx]", form)
        terms = []
        for i, x in enumerate(items):
            if i == 1 and isinstance(x, str) and not _is_var(x):
                x = edn.kw(x)  # Python data: attribute position names an attribute
            if isinstance(x, Symbol) and not (_is_var(x) or x.name == "_"):
                raise _err(f"unexpected symbol {x.name} in data pattern", form)
            terms.append(_term(x))
        return Pattern(source, tuple(terms), form)
    if isinstance(form, tuple) and form:
        head = form[0]
        if _is_src(head):  # ($src rule-call/not/or ...): only the default source is supported
            raise _err("source-prefixed rule, not and or clauses are not supported", form)
        if not isinstance(head, Symbol):
            raise _err("cannot parse clause", form)
        name = head.name
        if name == "not":
            if len(form) < 2:
                raise _err("(not) needs at least one clause", form)
            return Not(None, parse_clauses(form[1:]), form)
        if name == "not-join":
            if len(form) < 3 or not _is_vec(form[1]):
                raise _err("(not-join [vars] clause ...) expected", form)
            return Not(tuple(_var(v, form) for v in form[1]), parse_clauses(form[2:]), form)
        if name in ("or", "or-join"):
            join: tuple[Var, ...] | None = None
            required: tuple[Var, ...] = ()
            rest = form[1:]
            if name == "or-join":
                if not rest or not _is_vec(rest[0]):
                    raise _err("(or-join [vars] clause ...) expected", form)
                vs = list(rest[0])
                if vs and _is_vec(vs[0]):
                    required = tuple(_var(v, form) for v in vs[0])
                    vs = vs[1:]
                join = required + tuple(_var(v, form) for v in vs)
                rest = rest[1:]
            if not rest:
                raise _err(f"({name}) needs at least one branch", form)
            branches = []
            for br in rest:
                if isinstance(br, tuple) and br and isinstance(br[0], Symbol) and br[0].name == "and":
                    branches.append(parse_clauses(br[1:]))
                else:
                    branches.append((parse_clause(br),))
            if join is None:
                first = set().union(*(vars_of(c) for c in branches[0]))
                for br in branches[1:]:
                    if set().union(*(vars_of(c) for c in br)) != first:
                        raise _err("all branches of (or) must use the same variables; use or-join", form)
            return Or(join, required, tuple(branches), form)
        if name == "and":
            raise _err("(and) is only allowed inside (or)", form)
        if not _is_plain_sym(head):
            raise _err("cannot parse clause", form)
        args = []
        for x in form[1:]:
            if isinstance(x, Symbol) and not (_is_var(x) or x.name == "_"):
                raise _err(f"unexpected symbol {x.name} in rule call", form)
            args.append(_term(x))
        return RuleCall(name, tuple(args), form)
    raise _err("cannot parse clause", form)


# -- rules -----------------------------------------------------------------------


def parse_rules(rules: Any) -> dict[str, list[Rule]]:
    if isinstance(rules, str):
        rules = edn.read(rules)
    else:
        rules = edn.to_edn(rules)
    if not (_is_vec(rules) or isinstance(rules, tuple)):
        raise _err("rules must be a vector of [(name ?args) clause ...]", rules)
    out: dict[str, list[Rule]] = {}
    for r in rules:
        if not _is_vec(r) or len(r) < 2 or not isinstance(r[0], tuple) or not r[0]:
            raise _err("rule must be [(name ?args) clause ...]", r)
        head = r[0]
        if not _is_plain_sym(head[0]):
            raise _err("rule name must be a plain symbol", r)
        args = list(head[1:])
        required: tuple[Var, ...] = ()
        if args and _is_vec(args[0]):
            required = tuple(_var(v, r) for v in args[0])
            args = args[1:]
        params = required + tuple(_var(v, r) for v in args)
        if len(set(params)) != len(params):
            raise _err("rule parameters must be distinct", r)
        body = parse_clauses(list(r[1:]), "rule body")
        prev = out.setdefault(head[0].name, [])
        if prev and len(prev[0].head) != len(params):
            raise _err(f"rule {head[0].name} is defined with different arities", r)
        prev.append(Rule(head[0].name, params, required, body))
    return out


# -- find spec and the query -------------------------------------------------------------


def _find_elem(x: Any, form: Any) -> Any:
    if _is_var(x):
        return FindVar(Var(x.name))
    if isinstance(x, tuple) and x and isinstance(x[0], Symbol):
        name = x[0].name
        if name == "pull":
            args = list(x[1:])
            source = "$"
            if len(args) == 3 and _is_src(args[0]):
                source = args.pop(0).name
            if len(args) != 2:
                raise _err("pull expects (pull ?e pattern)", x)
            var = _var(args[0], x)
            pat = args[1]
            if _is_var(pat):
                return FindPull(source, var, Var(pat.name))
            return FindPull(source, var, parse_pattern(pat))
        if name in AGGREGATES:
            if len(x) < 2:
                raise _err(f"aggregate ({name}) needs a variable", x)
            var = _var(x[-1], x)
            consts = []
            for c in x[1:-1]:
                if isinstance(c, Symbol):
                    raise _err("aggregate arguments before the variable must be constants", x)
                consts.append(c)
            if name not in ("min", "max") and consts:
                raise _err(f"aggregate ({name}) takes only a variable", x)
            return FindAgg(name, tuple(consts), var)
        raise _err(f"unknown aggregate or find function {name}", x)
    raise _err(f"bad find element {_fmt(x)}", form)


def _split_query(form: Any) -> dict[str, list[Any]]:
    if isinstance(form, Mapping):
        out = {}
        for k, v in form.items():
            key = edn.ident(k)
            if key is None:
                raise _err("query map keys must be keywords", form)
            out[key] = list(v) if (_is_vec(v) or isinstance(v, tuple)) else [v]
        return out
    if not (_is_vec(form) or isinstance(form, tuple)):
        raise QueryParseError(f"query must be a vector or a map, got {type(form).__name__}", form)
    out: dict[str, list[Any]] = {}
    current = None
    for x in form:
        if isinstance(x, Keyword):
            current = x.name
            if current in out:
                raise _err(f"duplicate :{current} in query", form)
            out[current] = []
        elif current is None:
            raise _err("query must start with :find", form)
        else:
            out[current].append(x)
    return out


_KNOWN = {"find", "in", "where", "with", "keys", "strs", "syms", "timeout"}


def parse_query(q: Any) -> Query:
    form = edn.read(q) if isinstance(q, str) else edn.to_edn(q)
    parts = _split_query(form)
    unknown = set(parts) - _KNOWN
    if unknown:
        raise _err(f"unknown query section :{sorted(unknown)[0]}", form)
    if "find" not in parts or not parts["find"]:
        raise _err("query has no :find", form)
    find = parts["find"]
    if len(find) == 2 and isinstance(find[1], Symbol) and find[1].name == ".":
        kind, elems = "scalar", [find[0]]
    elif len(find) == 1 and _is_vec(find[0]):
        inner = list(find[0])
        if len(inner) == 2 and isinstance(inner[1], Symbol) and inner[1].name == "...":
            kind, elems = "coll", [inner[0]]
        elif inner:
            kind, elems = "tuple", inner
        else:
            raise _err("bad find spec", find)
    else:
        kind, elems = "rel", find
        for x in elems:
            if isinstance(x, Symbol) and x.name in (".", "..."):
                raise _err("bad find spec", find)
    find_elems = tuple(_find_elem(x, find) for x in elems)

    keys = None
    for kk in ("keys", "strs", "syms"):
        if kk in parts:
            if kind != "rel":
                raise _err(f":{kk} works only with a relation find spec", form)
            keys = tuple(k.name if isinstance(k, Symbol) else str(k) for k in parts[kk])
            if len(keys) != len(find_elems):
                raise _err(f":{kk} count does not match :find count", form)
    with_form = [Keyword("with"), *parts.get("with", [])]
    with_vars = tuple(_var(v, with_form) for v in parts.get("with", []))
    find_vars = {e.var for e in find_elems}
    shared = [v.name for v in with_vars if v in find_vars]
    if shared:  # DataScript's rule: a :with variable only widens the rows, it is never a result
        raise _err(f":find and :with should not use same variables: [{' '.join(shared)}]", with_form)

    inputs: list[Any] = []
    for x in parts.get("in", [Symbol("$")]):
        if _is_src(x):
            inputs.append(("src", x.name))
        elif isinstance(x, Symbol) and x.name == "%":
            inputs.append(("rules",))
        else:
            inputs.append(parse_binding(x, parts["in"]))
    where = parse_clauses(parts.get("where", []))

    bound: set[Var] = set()
    for i in inputs:
        if not isinstance(i, tuple):
            bound |= binding_vars(i)
    for c in where:
        bound |= vars_of(c)
    needed = [e.var for e in find_elems] + list(with_vars)
    needed += [e.pattern for e in find_elems if isinstance(e, FindPull) and isinstance(e.pattern, Var)]
    missing = list(dict.fromkeys(v.name for v in needed if v not in bound))
    if missing:
        raise _err(f"query for unknown variables [{' '.join(missing)}]", [Keyword("find"), *find])
    return Query(kind, find_elems, keys, with_vars, tuple(inputs), where)
