"""Written-order checks: which variables are bound at each clause, as DataScript reads a query.

Owns: the pre-pass every query goes through before the planner may reorder its clauses.
DataScript evaluates ``:where`` clauses in the written order and rejects a clause whose inputs
are not bound at its position ("insufficient bindings"): a predicate or function binding with an
unbound argument, a ``not-join`` or an ``or-join`` with unbound required variables, a plain
``not`` none of whose variables is bound.  Our planner runs clauses in cost order, so the query's
acceptance and the meaning of a plain ``not`` (its join variables: those bound *before* it in the
written order) are decided here, from the text alone, never from the order the planner picks or
from the data.  Rule calls are checked for known names, arity and required variables, and the
bodies of the rules they call in written order too, from the head variables the call binds
(DataScript inlines them, renaming variables), once per rule and binding pattern.
Must never: touch a database or evaluate clauses.
"""

from __future__ import annotations

from typing import Any

from .errors import QueryError, QueryParseError
from .parser import Const, FnBinding, Not, Or, Pattern, Predicate, RuleCall, Var, _fmt, vars_of


def _names(vs: Any) -> str:
    return "#{" + " ".join(sorted(v.name for v in vs)) + "}"


def _insufficient(missing: Any, c: Any) -> QueryParseError:
    return QueryParseError(f"insufficient bindings: {_names(missing)} not bound in {_fmt(c.form)}", c.form)


def _fn_inputs(c: Predicate | FnBinding) -> set[Var]:
    out = {a for a in c.args if isinstance(a, Var)}
    return out | {c.fn} if isinstance(c.fn, Var) else out


def check_written_order(
    clauses: tuple,
    bound: set[Var],
    rules: dict,
    has_rules: bool,
    not_joins: dict[int, tuple],
    checked: set | None = None,
) -> set[Var]:
    """Validate ``clauses`` in written order starting from ``bound``; returns the variables bound
    after them.  Records the join variables of each plain ``not`` in ``not_joins`` (by id).
    ``checked``: the (rule, bound arguments) whose bodies were checked already."""
    checked = set() if checked is None else checked
    seen = set(bound)
    for c in clauses:
        if isinstance(c, Pattern):
            seen |= vars_of(c)
        elif isinstance(c, (Predicate, FnBinding)):
            missing = _fn_inputs(c) - seen
            if missing:
                raise _insufficient(missing, c)
            seen |= vars_of(c)
        elif isinstance(c, Not):
            if c.join_vars is None:
                join = vars_of(c) & seen
                if not join:
                    raise QueryParseError(
                        f"insufficient bindings: none of {_names(vars_of(c))} is bound in {_fmt(c.form)}", c.form
                    )
                not_joins[id(c)] = tuple(sorted(join, key=lambda v: v.name))
                check_written_order(c.clauses, seen, rules, has_rules, not_joins, checked)
            else:
                missing = set(c.join_vars) - seen
                if missing:
                    raise _insufficient(missing, c)
                check_written_order(c.clauses, set(c.join_vars), rules, has_rules, not_joins, checked)
        elif isinstance(c, Or):
            missing = set(c.required) - seen
            if missing:
                raise _insufficient(missing, c)
            join = vars_of(c)
            for branch in c.branches:
                after = check_written_order(branch, join & seen, rules, has_rules, not_joins, checked)
                unbound = join - after
                if unbound:
                    raise QueryParseError(
                        f"insufficient bindings: {_names(unbound)} not bound in a branch of {_fmt(c.form)}", c.form
                    )
            seen |= join
        else:  # the parser makes no other clause
            assert isinstance(c, RuleCall), c
            check_rule_call(c, seen, rules, has_rules)
            adorn = tuple(isinstance(t, Const) or t in seen for t in c.args)
            if (c.name, adorn) not in checked:
                checked.add((c.name, adorn))
                for rule in rules[c.name]:
                    head_bound = {p for p, b in zip(rule.head, adorn, strict=False) if b}
                    check_written_order(rule.body, head_bound, rules, has_rules, {}, checked)
            seen |= vars_of(c)
    return seen


def check_rule_call(c: RuleCall, seen: set[Var], rules: dict, has_rules: bool) -> None:
    defs = rules.get(c.name)
    if defs is None:
        if not has_rules:
            raise QueryError(f"no rules given: {_fmt(c.form)} calls rule {c.name}, but :in has no % for the rules")
        raise QueryError(f"unknown rule {c.name} in {_fmt(c.form)}")
    head = defs[0].head
    if len(head) != len(c.args):
        raise QueryError(f"rule {c.name} takes {len(head)} arguments, called with {len(c.args)}: {_fmt(c.form)}")
    required = set(defs[0].required)
    missing = {t for p, t in zip(head, c.args, strict=True) if p in required and isinstance(t, Var) and t not in seen}
    if missing:
        names = " ".join(v.name for v in defs[0].required)
        raise QueryParseError(
            f"insufficient bindings: {_names(missing)} not bound in {_fmt(c.form)} (rule {c.name} requires [{names}])",
            c.form,
        )
