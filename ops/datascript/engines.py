"""The two engines as the fuzzer drives them: a DataScript session and our engine with a time budget.

Owns: ``DataScript``, one long-lived node process (js/session.js) per fuzz run: a data set is
loaded once and then queried many times, one JSON line each, so that a single slow query can be
timed out (the process is restarted and the data set reloaded); running our engine on an
in-memory SQLite database, a query over its budget stopped by SIGALRM (main thread only); and the
entity-id -> identity maps of both (every generated entity has a unique ``:T/id``).
Must never: compare results (``canon``) or generate anything (``grammar``).
"""

from __future__ import annotations

import json
import select
import signal
import subprocess
from typing import Any

from edn_format import Keyword

from sessiondb.store.datalog import Database

from .reference import JS_DIR, ensure_node_modules, js_edn, js_schema, js_tx


class FuzzTimeout(BaseException):
    """Raised by SIGALRM inside our engine (a BaseException so the engine cannot wrap it)."""


class DataScript:
    """A node process running js/session.js."""

    def __init__(self, timeout: float = 20.0) -> None:
        if not ensure_node_modules():
            raise RuntimeError("node/npm are not installed")
        self.timeout = timeout
        self.proc: subprocess.Popen | None = None
        self.loaded: tuple[dict, list] | None = None
        self._start()

    def _start(self) -> None:
        self.proc = subprocess.Popen(["node", "session.js"], cwd=JS_DIR, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1 << 20)

    def _call(self, cmd: dict, timeout: float) -> dict | None:
        assert self.proc and self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            return None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("DataScript session exited")
        return json.loads(line)

    def restart(self) -> None:
        self.close()
        self._start()
        if self.loaded:
            self.load(*self.loaded)

    def load(self, schema: dict, txs: list) -> None:
        self.loaded = (schema, txs)
        r = self._call({"op": "load", "schema": js_schema(schema), "txs": [js_tx(t) for t in txs]}, 600)
        if r is None or "error" in r:
            raise RuntimeError(f"DataScript rejected the data: {r}")

    def q(self, query: str, inputs: list) -> tuple[str, Any]:
        ins = [js_edn(i) if isinstance(i, str) and i.lstrip().startswith("[[") else i for i in inputs]
        r = self._call({"op": "q", "query": js_edn(query), "inputs": ins}, self.timeout)
        if r is None:
            self.restart()
            return ("timeout", None)
        return ("error", r["error"]) if "error" in r else ("value", r["value"])

    def close(self) -> None:
        if self.proc:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


def _on_alarm(signum: int, frame: Any) -> None:
    raise FuzzTimeout()


def ours_inputs(inputs: list, overrides: dict) -> list:
    """Our spelling of the inputs: ``{"kw": name}`` stands for an EDN keyword."""
    out = list(inputs)
    for k, v in (overrides or {}).items():
        out[int(k)] = Keyword(v["kw"]) if isinstance(v, dict) else v
    return out


def run_ours(db: Database, query: str, inputs: list, timeout: float = 20.0) -> tuple[str, Any]:
    old = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        return ("value", db.q(query, *inputs))
    except FuzzTimeout:
        return ("timeout", None)
    except Exception as exc:  # compared with DataScript's verdict
        return ("error", f"{type(exc).__name__}: {exc}")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def load_ours(schema: dict, txs: list) -> Database:
    db = Database.open(":memory:", schema)
    db.transact_many(txs)
    return db


def identity_queries(schema: dict) -> list[str]:
    return [f"[:find ?e ?v :where [?e :{a} ?v]]" for a, p in schema.items()
            if p.get("db/unique") == "db.unique/identity" and a.endswith("/id")]


def ours_ids(db: Database, schema: dict) -> dict[int, str]:
    ids: dict[int, str] = {}
    for q in identity_queries(schema):
        ids.update(dict(db.q(q)))
    return ids


def ds_ids(ds: DataScript, schema: dict) -> dict[int, str]:
    ids: dict[int, str] = {}
    for q in identity_queries(schema):
        kind, value = ds.q(q, [])
        if kind != "value":
            raise RuntimeError(f"DataScript identity query failed: {value}")
        ids.update({e: v for e, v in value})
    return ids
