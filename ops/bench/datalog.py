"""Benchmark: the sessiondb Datalog engine versus DataScript (npm datascript@1.8.1 via node).

Owns: generating a session-like dataset (sessions, messages, turns, heads with
branching ancestry, calls, invocations, derivations), applying it, running a fixed
query set through both engines in the same run, and printing honest figures:
per-query (and per direct pull) median times and the ratio ours/DataScript with its
median, p90 and five worst cases, the apply rate (datoms/s) and the full-rebuild time
of a 1,000,000-datom index.
Must never: assert on timings (targets are printed next to the figures).

    python -m sessiondb.ops.bench.datalog                  # ~320k datoms + 1M rebuild
    python -m sessiondb.ops.bench.datalog --sessions 1000 --rebuild-datoms 0   # quick run
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from sessiondb.ops.datascript import dataset, reference
from sessiondb.store.datalog import Database

ANCESTRY = """[[(anc ?h ?a) [?h :head/basis ?a]]
               [(anc ?h ?a) [?h :head/basis ?x] (anc ?x ?a)]]"""
LONG_CHAIN = 300


def queries(sample_sids: list[str]) -> list[tuple[str, str, list]]:
    return [
        (
            "join: user messages of one session",
            '[:find ?mid :in $ ?sid :where [?s :session/id ?sid] [?m :message/session ?s] [?m :message/role "user"]'
            " [?m :message/id ?mid]]",
            ["s17"],
        ),
        (
            "join+aggregate: messages per session",
            "[:find ?sid (count ?m) :where [?m :message/session ?s] [?s :session/id ?sid]]",
            [],
        ),
        (
            "predicate: long messages",
            "[:find ?mid :where [?m :message/chars ?c] [(> ?c 4990)] [?m :message/id ?mid]]",
            [],
        ),
        (
            "string predicate: titles ending in beta",
            '[:find (count ?s) . :where [?s :session/title ?t] [(clojure.string/ends-with? ?t "beta")]]',
            [],
        ),
        (
            "recursive: ancestry of a deep head",
            "[:find ?aid :in $ % ?hid :where [?h :head/id ?hid] (anc ?h ?a) [?a :head/id ?aid]]",
            [ANCESTRY, f"long:h{LONG_CHAIN - 1}"],
        ),
        (
            "recursive: ancestry pairs of one session",
            "[:find ?hid ?aid :in $ % ?sid :where [?s :session/id ?sid] [?h :head/session ?s] (anc ?h ?a)"
            " [?h :head/id ?hid] [?a :head/id ?aid]]",
            [ANCESTRY, "s42"],
        ),
        (
            "aggregates: tokens by model",
            "[:find ?model (sum ?tok) (avg ?tok) (max ?tok) (count ?tok) :with ?c :where [?c :call/model ?model]"
            " [?c :call/tokens ?tok]]",
            [],
        ),
        (
            "join: failed calls before a final turn",
            '[:find ?cid :where [?c :call/status "failed"] [?c :call/turn ?t] [?t :turn/index ?i] [?c :call/session ?s]'
            ' [?t2 :turn/session ?s] [?t2 :turn/status "final"] [?t2 :turn/index ?j] [(> ?j ?i)] [?c :call/id ?cid]]',
            [],
        ),
        ("not: leaf heads", "[:find (count ?h) . :where [?h :head/id] (not [_ :head/basis ?h])]", []),
        (
            "or: system or user messages",
            '[:find (count ?m) . :where [?m :message/id] (or [?m :message/role "system"] [?m :message/role "user"])]',
            [],
        ),
        (
            "pull: 50 sessions with their messages",
            "[:find (pull ?s [:session/title {:message/_session [:message/id :message/role]}]) :in $ [?sid ...]"
            " :where [?s :session/id ?sid]]",
            [sample_sids],
        ),
        (
            "pull: recursive head chain",
            "[:find (pull ?h [:head/id {:head/basis ...}]) . :in $ ?hid :where [?h :head/id ?hid]]",
            [f"long:h{LONG_CHAIN - 1}"],
        ),
        (
            "large join: every message with its session",
            "[:find ?mid ?sid :where [?m :message/session ?s] [?s :session/id ?sid] [?m :message/id ?mid]]",
            [],
        ),
        (
            "large aggregate: chars by role and status",
            "[:find ?role ?st (count ?m) (sum ?c) (max ?c) :where [?m :message/role ?role] [?m :message/chars ?c]"
            " [?m :message/session ?s] [?s :session/status ?st]]",
            [],
        ),
        (
            "large aggregate: distinct turns per session",
            "[:find ?s (count-distinct ?t) :where [?m :message/session ?s] [?m :message/turn ?t]]",
            [],
        ),
        (
            "join: fork derivations",
            '[:find ?sid ?hid :where [?d :derivation/kind "fork"] [?d :derivation/source-head ?h] [?h :head/id ?hid]'
            " [?d :derivation/target ?t] [?t :session/id ?sid]]",
            [],
        ),
    ]


PULL_PATTERN = "[:session/title {:message/_session [:message/id :message/role]}]"


def pulls(sample_sids: list[str]) -> list[tuple[str, str, list, bool]]:
    """Direct ``pull`` / ``pull_many`` calls (name, pattern, eids, single): no query around them."""
    refs = [["session/id", sid] for sid in sample_sids]
    deep = ["head/id", f"long:h{LONG_CHAIN - 1}"]
    return [
        ("pull: one session with its messages", PULL_PATTERN, refs[:1], True),
        ("pull: wildcard of one session", "[*]", refs[1:2], True),
        ("pull: recursive head chain (db.pull)", "[:head/id {:head/basis ...}]", [deep], True),
        ("pull_many: 50 sessions with their messages", PULL_PATTERN, refs, False),
    ]


def long_chain_tx() -> list[dict]:
    tx: list[dict] = [{"db/id": "long", "session/id": "long", "session/title": "a long session"}]
    for i in range(LONG_CHAIN):
        h = {"db/id": f"long:h{i}", "head/id": f"long:h{i}", "head/session": "long", "head/kind": "turn-final"}
        if i:
            h["head/basis"] = f"long:h{i - 1}"
        tx.append(h)
    return tx


def fresh_path(tmp: str, name: str) -> Path:
    p = Path(tmp) / name
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(str(p) + suffix):
            os.remove(str(p) + suffix)
    return p


def timed(fn, repeat: int) -> tuple[float, float, object]:
    """Median wall and CPU milliseconds of ``repeat`` runs, and the last result."""
    runs, cpu, result = [], [], None
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        result = fn()
        cpu.append((time.process_time() - c) * 1000)
        runs.append((time.perf_counter() - t) * 1000)
    return statistics.median(runs), statistics.median(cpu), result


def size_of(result: object) -> int:
    if isinstance(result, (list, tuple, set)):
        return len(result)
    return 0 if result is None else 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=5000, help="sessions in the query dataset (~64 datoms each)")
    ap.add_argument("--rebuild-datoms", type=int, default=1_000_000, help="0 skips the rebuild measurement")
    ap.add_argument("--repeat", type=int, default=5, help="runs per query (median reported)")
    ap.add_argument("--no-datascript", action="store_true")
    args = ap.parse_args()

    txs = dataset.session_txs(11, args.sessions, heads=12) + [long_chain_tx()]
    with tempfile.TemporaryDirectory() as tmp:
        db = Database.open(fresh_path(tmp, "bench.sqlite"), dataset.SCHEMA)
        t, c = time.perf_counter(), time.process_time()
        rep = db.transact_many(txs)
        dt, dc = time.perf_counter() - t, time.process_time() - c
        print(f"dataset: {args.sessions} sessions, {len(txs)} transactions, {rep.added} datoms")
        print(
            f"apply:   {rep.added / dt:,.0f} datoms/s wall ({dt:.2f} s), {rep.added / dc:,.0f} datoms/s of CPU time"
            " (transact_many; target >= 200,000)"
        )

        sids = [f"s{i}" for i in range(0, args.sessions, max(1, args.sessions // 50))][:50]
        qs = queries(sids)
        ps = pulls(sids)
        ours = []
        for _name, q, inputs in qs:
            db.q(q, *inputs)  # warm: parse cache and SQLite page cache, like DataScript's JIT warm-up
            ours.append(timed(lambda q=q, inputs=inputs: db.q(q, *inputs), args.repeat))
        for _name, pattern, eids, single in ps:
            if single:
                call = lambda pattern=pattern, eids=eids: db.pull(pattern, eids[0])  # noqa: E731
            else:
                call = lambda pattern=pattern, eids=eids: db.pull_many(pattern, eids)  # noqa: E731
            call()
            ours.append(timed(call, args.repeat * 4))  # pulls are short: more runs for a stable median
        db.close()

        ds = None
        if not args.no_datascript and reference.ensure_node_modules():
            payload = [{"query": q, "inputs": inputs, "repeat": args.repeat + 1} for _n, q, inputs in qs]
            pull_payload = [
                {"pattern": pattern, "eids": eids, "single": single, "repeat": args.repeat * 4 + 1}
                for _n, pattern, eids, single in ps
            ]
            t = time.perf_counter()
            ds = reference.run(dataset.SCHEMA, txs, payload, pull_payload, timeout=1800)
            print(f"DataScript: transact {ds['tx_ms'] / 1000:.2f} s (in memory), run {time.perf_counter() - t:.1f} s")

        print()
        # the ratio is of CPU times: both engines run in turn on a machine shared with other work,
        # and CPU time (node: process.cpuUsage, all threads) is far less sensitive to that load
        print(f"{'query':44} {'ours ms':>8} {'DS ms':>8} {'ours cpu':>9} {'DS cpu':>8} {'ratio':>6} {'rows':>6}")
        ratios: list[tuple[float, str]] = []
        names = [n for n, _q, _i in qs] + [n for n, _p, _e, _s in ps]
        ds_rows = (ds["results"] + ds["pulls"]) if ds is not None else []
        nan = float("nan")
        for i, (name, (ms, cpu, result)) in enumerate(zip(names, ours, strict=True)):
            ds_ms = ds_cpu = None
            note = ""
            if ds is not None:
                r = ds_rows[i]
                if i >= len(qs) and "value" in r and ps[i - len(qs)][3]:
                    r = {**r, "value": r["value"][0]}  # a single pull: one map, like ours
                if "error" in r:
                    note = f"  DataScript error: {r['error'][:60]}"
                else:
                    ds_ms, ds_cpu = r["ms"], r.get("cpu_ms")
                    theirs = size_of(r["value"])
                    if theirs != size_of(result):
                        note = f"  (DataScript rows {theirs})"
            ratio = cpu / ds_cpu if ds_cpu else None
            if ratio is not None:
                ratios.append((ratio, name))
            print(
                f"{name:44} {ms:8.2f} {ds_ms if ds_ms is not None else nan:8.2f} {cpu:9.2f} "
                f"{ds_cpu if ds_cpu is not None else nan:8.2f} {ratio if ratio is not None else nan:6.2f}"
                f" {size_of(result):6}{note}"
            )
        if ratios:
            values = sorted(r for r, _n in ratios)
            p90 = values[min(len(values) - 1, round(0.9 * (len(values) - 1)))]
            print(
                f"\nCPU-time ratio ours/DataScript over {len(values)} cases: median {statistics.median(values):.2f}"
                f" (target <= 0.5), p90 {p90:.2f}, worst {values[-1]:.2f} (target <= 2.0)"
            )
            print("five worst: " + "; ".join(f"{n} {r:.2f}" for r, n in sorted(ratios, reverse=True)[:5]))

        if args.rebuild_datoms:
            per_session = rep.added / len(txs)
            n = int(args.rebuild_datoms / per_session * 1.03) + 1  # a little over, never under
            big = dataset.session_txs(12, n, heads=12)
            db2 = Database.open(fresh_path(tmp, "rebuild.sqlite"), dataset.SCHEMA)
            t, c = time.perf_counter(), time.process_time()
            rep2 = db2.transact_many(big)
            dt2, dc2 = time.perf_counter() - t, time.process_time() - c
            db2.close()
            print(
                f"\nrebuild: {rep2.added:,} datoms into a fresh file in {dt2:.2f} s wall, {dc2:.2f} s CPU "
                f"({rep2.added / dt2:,.0f} datoms/s; target <= 10 s for 1,000,000)"
            )


if __name__ == "__main__":
    main()
