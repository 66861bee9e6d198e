"""The engine's module graph: no import cycles, and the db knows nothing of queries or pull.

DataScript keeps parser, query, pull and db apart; so do we: ``db`` is the datom database,
``api.Database`` adds ``q``/``pull`` on top.  Imports inside functions count (a lazy import is
still a cycle); ``if TYPE_CHECKING:`` imports do not (they never run).
"""

from __future__ import annotations

import ast
from pathlib import Path

import sessiondb.store.datalog

PKG = Path(sessiondb.store.datalog.__file__).parent
QUERY_SIDE = {"parser", "query", "find", "pull", "rules", "order", "context", "bindings", "api", "builtins"}


def _imports(path: Path) -> set[str]:
    """Sibling modules ``path`` imports at run time (module level or inside functions)."""
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for n in ast.walk(node))
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip or not isinstance(node, ast.ImportFrom) or node.level != 1:
            continue
        if node.module:
            out.add(node.module.split(".")[0])
        else:
            out.update(a.name for a in node.names)
    return out


def _graph() -> dict[str, set[str]]:
    mods = {p.stem: p for p in PKG.glob("*.py")}
    return {name: _imports(p) & set(mods) for name, p in mods.items()}


def test_no_import_cycles():
    graph = _graph()
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        assert node not in path, "import cycle: " + " -> ".join([*path[path.index(node) :], node])
        if node in done:
            return
        for dep in sorted(graph[node]):
            visit(dep, [*path, node])
        done.add(node)

    for name in sorted(graph):
        visit(name, [])


def test_db_imports_nothing_of_the_query_side():
    graph = _graph()
    reach: set[str] = set()
    todo = ["db"]
    while todo:
        for dep in graph[todo.pop()]:
            if dep not in reach:
                reach.add(dep)
                todo.append(dep)
    assert not reach & QUERY_SIDE, sorted(reach & QUERY_SIDE)


def test_public_names_still_work():
    from sessiondb.store.datalog import Database, parse_pattern, parse_query

    db = Database.open(":memory:", {"a/id": {"db/unique": "db.unique/identity"}})
    db.transact([{"a/id": "x", "a/n": 1}])
    assert db.q("[:find ?n . :where [?e :a/id \"x\"] [?e :a/n ?n]]") == 1
    assert db.pull("[:a/n]", ["a/id", "x"]) == {"a/n": 1}
    assert db.pull_many("[:a/id]", [["a/id", "x"], ["a/id", "nope"]]) == [{"a/id": "x"}, None]
    assert parse_query("[:find ?e :where [?e :a/id]]").kind == "rel"
    assert parse_pattern("[*]").wildcard
    db.close()
