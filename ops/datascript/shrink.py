"""Shrinking a divergence: fewer entities, fewer datoms, fewer clauses, shorter inputs.

Owns: ``Shrinker`` (greedy; entities by ddmin-style halving, then clauses and nested clauses of the
query, input collections, then single attributes) and the EDN text surgery it needs.  It is given a
``check(entities, query) -> (verdict, ours, datascript)`` callable, so it knows nothing of engines;
a step is kept only while the verdict stays a divergence of the same kind (which side errors).
Must never: decide what a divergence is (``canon``) or run an engine itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

Check = Callable[[dict, dict], tuple[str, Any, Any]]


class Shrinker:
    """Greedy shrinking of (entities, query) while the divergence persists (same kind of verdict)."""

    def __init__(self, entities: dict, q: dict, check: Check, budget_s: float = 120.0, max_checks: int = 200) -> None:
        self.entities, self.q, self.check = entities, q, check
        self.deadline = time.monotonic() + budget_s
        self.checks_left = max_checks
        self.errorish = None

    def _diverges(self, ents: dict, q: dict) -> tuple[bool, Any, Any]:
        if self.checks_left <= 0 or time.monotonic() > self.deadline:
            return False, None, None
        self.checks_left -= 1
        v, mine, theirs = self.check(ents, q)
        shape = (isinstance(mine, dict) and "error" in mine, isinstance(theirs, dict) and "error" in theirs)
        if self.errorish is None:
            self.errorish = shape
        return (v == "diverge" and shape == self.errorish), mine, theirs

    def run(self) -> dict:
        ents, q = dict(self.entities), dict(self.q)
        ok, mine, theirs = self._diverges(ents, q)
        if not ok:
            return {}
        # entities first: on a big data set every check costs a reload, and halving the data is
        # the cheapest big step; the query shrinks faster on small data
        ents = self._shrink_entities(ents, q)
        q = self._shrink_query(ents, q)
        ents = self._shrink_entities(ents, q)
        ents = self._shrink_attrs(ents, q)
        return {"entities": ents, "query": q}

    def _shrink_query(self, ents: dict, q: dict) -> dict:
        changed = True
        while changed:
            changed = False
            for cand in query_variants(q):
                if self._diverges(ents, cand)[0]:
                    q, changed = cand, True
                    break
        return q

    def _shrink_entities(self, ents: dict, q: dict) -> dict:
        # ddmin-style: drop chunks of entities (refs into dropped ones go with them)
        keys = list(ents)
        n = 2
        while len(keys) > 1:
            chunk = max(1, len(keys) // n)
            removed = False
            for i in range(0, len(keys), chunk):
                rest = keys[:i] + keys[i + chunk :]
                if rest and self._diverges({k: ents[k] for k in rest}, q)[0]:
                    keys, removed = rest, True
                    n = max(n - 1, 2)
                    break
            if not removed:
                if chunk == 1 or self.checks_left <= 0:
                    break
                n = min(n * 2, len(keys))
        return {k: ents[k] for k in keys}

    def _shrink_attrs(self, ents: dict, q: dict) -> dict:
        for ident in list(ents):
            for a in list(ents[ident]):
                if a.endswith("/id"):
                    continue
                trial = {**ents, ident: {k: v for k, v in ents[ident].items() if k != a}}
                if self._diverges(trial, q)[0]:
                    ents = trial
        return ents


def query_variants(q: dict) -> list[dict]:
    """Smaller queries: one clause (or one nested clause) removed, :with dropped, relation find."""
    text = q["query"]
    out = []
    head, where = text.split(" :where ", 1)
    clauses = split_forms(where[:-1])
    for i in range(len(clauses)):
        if len(clauses) > 1:
            out.append(clauses[:i] + clauses[i + 1 :])
        inner = _inner_variants(clauses[i])
        out += [clauses[:i] + [c] + clauses[i + 1 :] for c in inner]
    variants = [{**q, "query": f"{head} :where {' '.join(c)}]", "rel_query": _rel_where(q, c)} for c in out]
    for i, value in enumerate(q["inputs"]):
        # collection / relation inputs: drop half, then single items (a tuple input then fails to
        # bind in both engines, which the shrinker rejects as a different verdict)
        lookup_ref = len(value) == 2 and str(value[0]).endswith("/id") if isinstance(value, list) else False
        if isinstance(value, list) and len(value) > 1 and not lookup_ref:
            half = len(value) // 2
            for kept in [value[:half], value[half:]] + [value[:j] + value[j + 1 :] for j in range(min(len(value), 8))]:
                variants.append({**q, "inputs": q["inputs"][:i] + [kept] + q["inputs"][i + 1 :]})
    if " :with " in head:
        h2 = head.split(" :with ", 1)[0] + (" :in " + head.split(" :in ", 1)[1] if " :in " in head else "")
        variants.append({**q, "query": f"{h2} :where {where}", "rel_query": q["rel_query"]})
    return variants


def _rel_where(q: dict, clauses: list[str]) -> str:
    head = q["rel_query"].split(" :where ", 1)[0]
    return f"{head} :where {' '.join(clauses)}]"


def _inner_variants(form: str) -> list[str]:
    """``(not a b)`` -> ``(not b)``..., ``(or a b c)`` -> ``(or a c)``...; keeps at least one."""
    if not form.startswith("("):
        return []
    items = split_forms(form[1:-1])
    if items[0] not in ("not", "not-join", "or", "or-join", "and"):
        return []  # a rule call: its arguments are not clauses
    head_n = 2 if items[0] in ("not-join", "or-join") else 1
    body = items[head_n:]
    out = []
    min_body = 2 if items[0] in ("or",) else 1
    if len(body) > min_body:
        for i in range(len(body)):
            out.append("(" + " ".join(items[:head_n] + body[:i] + body[i + 1 :]) + ")")
    for i, b in enumerate(body):
        for sub in _inner_variants(b):
            out.append("(" + " ".join(items[:head_n] + body[:i] + [sub] + body[i + 1 :]) + ")")
    return out


def split_forms(text: str) -> list[str]:
    """Top-level EDN forms of a sequence body (strings respected)."""
    out, depth, start, i, n = [], 0, None, 0, len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            if depth == 0 and start is None:
                out.append(text[i : j + 1])
            i = j + 1
            continue
        if ch in "([{":
            if depth == 0:
                start = i
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0:
                out.append(text[start : i + 1])
                start = None
        elif depth == 0 and not ch.isspace():
            j = i
            while j < n and not text[j].isspace() and text[j] not in "([{)]}":
                j += 1
            out.append(text[i:j])
            i = j
            continue
        i += 1
    return out
