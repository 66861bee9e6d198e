"""The evaluation context: the relations bound so far while a clause list is evaluated.

Owns: ``Context`` (the bound relations, the sources, the rules and their solver) and how a
new relation joins it (hash join with every relation sharing a variable; disjoint ones stay
apart until something needs them together).  Shared by ``query`` and ``rules``.
Must never: evaluate clauses or touch a database.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import QueryError
from .relation import Rel, hash_join, product

if TYPE_CHECKING:
    from .rules import Solver


class Context:
    """The relations bound so far plus what clauses need to evaluate (sources, rules)."""

    __slots__ = ("rels", "sources", "rules", "solver", "in_fix", "empty")

    def __init__(self, sources: dict[str, Any], rules: dict, solver: Solver | None, in_fix: bool = False) -> None:
        self.rels: list[Rel] = []
        self.sources = sources
        self.rules = rules
        self.solver = solver
        self.in_fix = in_fix
        self.empty = False

    def child(self, seed: Rel | None = None) -> Context:
        c = Context(self.sources, self.rules, self.solver, self.in_fix)
        if seed is not None:
            c.add(seed)
        return c

    def bound(self) -> set:
        out: set = set()
        for r in self.rels:
            out.update(r.vars)
        return out

    def has(self, var: Any) -> bool:
        return any(var in r.pos for r in self.rels)

    def size(self, var: Any) -> int:
        for r in self.rels:
            if var in r.pos:
                return len(r.rows)
        return 0

    def values(self, var: Any) -> set:
        for r in self.rels:
            if var in r.pos:
                return r.column(var)
        raise QueryError(f"variable {var} is not bound")

    def add(self, rel: Rel) -> None:
        """Join ``rel`` into the context: hash-join with every relation sharing a variable."""
        if not rel.rows:
            self.empty = True
        # a fresh Rel object: predicates and not filter ``rows`` of context relations in place
        keep, result = [], Rel(rel.vars, rel.rows)
        for r in self.rels:
            if any(v in r.pos for v in rel.vars):
                result = hash_join(r, result)
            else:
                keep.append(r)
        keep.append(result)
        self.rels = keep
        if not result.rows:
            self.empty = True

    def merge(self, vars: Any) -> Rel:
        """One relation holding all of ``vars`` (a product of the relations involved)."""
        vars = set(vars)
        keep, result = [], None
        for r in self.rels:
            if vars.intersection(r.vars):
                result = r if result is None else product(result, r)
            else:
                keep.append(r)
        if result is None:
            result = Rel((), [()])
        missing = vars.difference(result.vars)
        if missing:
            raise QueryError(f"insufficient bindings: #{{{' '.join(sorted(v.name for v in missing))}}} not bound")
        keep.append(result)
        self.rels = keep
        return result

    def project(self, vars: tuple) -> Rel:
        if self.empty:
            return Rel(vars, [])
        return self.merge(vars).project(vars)
