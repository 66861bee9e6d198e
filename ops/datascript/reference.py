"""Run DataScript (npm ``datascript@1.8.1``) as the reference engine via node.

Translation between the two dialects lives here:
  * schema: ``{"a/b": {"db/unique": "db.unique/identity"}}`` -> ``{":db/unique": ":db.unique/identity"}``;
  * queries: ``:ns/name`` keywords (attributes) become ``"ns/name"`` strings;
  * results: JS arrays -> Python lists; pulled ``"id"`` (DataScript's :db/id) -> ``"db/id"``.
Used by the differential tests and by ops/bench/datalog.py.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

JS_DIR = Path(__file__).parent / "js"
_ATTR_KW = re.compile(r'(?<![\w"?])(:)([A-Za-z][\w.\-]*/[\w.\-?!*]+)')


def ensure_node_modules() -> bool:
    """``npm ci`` once if node_modules is missing; False when node/npm are unavailable."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return False
    if not (JS_DIR / "node_modules" / "datascript").exists():
        proc = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=JS_DIR, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"npm ci in {JS_DIR} failed (is the npm registry reachable?):\n{proc.stderr[-2000:]}")
    return True


def js_schema(schema: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    return {a: {":" + k.lstrip(":"): ":" + v.lstrip(":") for k, v in props.items()} for a, props in schema.items()}


def js_tx(tx: list) -> list:
    """Entity maps: the JS API spells :db/id as the string ":db/id"."""
    return [{(":db/id" if k == "db/id" else k): v for k, v in e.items()} if isinstance(e, dict) else e for e in tx]


def js_edn(text: str) -> str:
    """Rewrite attribute keywords (``:ns/name``) into strings for the npm build of DataScript."""
    out = []
    i = 0
    # leave string literals alone
    for m in re.finditer(r'"(?:[^"\\]|\\.)*"', text):
        out.append(_ATTR_KW.sub(lambda k: '"' + k.group(2) + '"', text[i : m.start()]))
        out.append(m.group(0))
        i = m.end()
    out.append(_ATTR_KW.sub(lambda k: '"' + k.group(2) + '"', text[i:]))
    return "".join(out)


def run(
    schema: dict,
    txs: list,
    queries: list[dict[str, Any]],
    pulls: list[dict[str, Any]] | None = None,
    timeout: float = 300,
) -> dict[str, Any]:
    doc = {
        "schema": js_schema(schema),
        "txs": [js_tx(tx) for tx in txs],
        "queries": [
            {**q, "query": js_edn(q["query"]), "inputs": [_js_input(i) for i in q.get("inputs", [])]} for q in queries
        ],
        "pulls": [{**p, "pattern": js_edn(p["pattern"])} for p in (pulls or [])],
    }
    proc = subprocess.run(
        ["node", "runner.js"], cwd=JS_DIR, input=json.dumps(doc), capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0:
        raise RuntimeError(f"datascript runner failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


def _js_input(x: Any) -> Any:
    # rule sets are passed as EDN strings: their attribute keywords need the same rewrite
    return js_edn(x) if isinstance(x, str) and x.lstrip().startswith("[[") else x


def fix_pulled(x: Any) -> Any:
    """DataScript JS names :db/id "id" in pulled maps; ours is "db/id"."""
    if isinstance(x, dict):
        return {("db/id" if k == "id" else k): fix_pulled(v) for k, v in x.items()}
    if isinstance(x, list):
        return [fix_pulled(i) for i in x]
    return x
