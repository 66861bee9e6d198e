"""Generative differential run: the Datalog engine against DataScript on generated cases.

Owns: the command line of ops/datascript/fuzz.py — how many cases, from which seed, at which
sizes — and printing the counts: cases, queries, agreements, divergences (each printed; the
first ``--shrink`` shrunk and, with ``--save``, saved as regression cases under
tests/store/datalog/regressions/), errors on each side, timeouts, differences skipped on
purpose (by name, with the reason) and the time taken.
Must never: assert anything (the deterministic suite replays saved cases; CI runs a slice).

    python -m sessiondb.ops.bench.datalog_fuzz --cases 200 --seed 1
    python -m sessiondb.ops.bench.datalog_fuzz --cases 20 --seed 7 --sizes 5000,50000 --shrink 5 --save
"""

from __future__ import annotations

import argparse
import time


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=50, help="generated data sets (each with 25-60 queries)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--sizes", default="", help="entity counts to draw from (default: 10,300,5000,50000 weighted)")
    ap.add_argument("--queries", type=int, default=0, help="queries per case (default: by size)")
    ap.add_argument("--timeout", type=float, default=20.0, help="per query and engine, seconds")
    ap.add_argument("--shrink", type=int, default=3, help="shrink at most this many divergences")
    ap.add_argument("--save", action="store_true", help="save shrunk divergences as regression cases")
    ap.add_argument("--shrink-known", action="store_true", help="also shrink divergences of reported findings")
    ap.add_argument("--quiet", action="store_true", help="only the summary (and divergences)")
    ap.add_argument("--rare", action="store_true",
                    help="top-level clauses from grammar.RARE: the productions that reach rare engine branches")
    ap.add_argument("--coverage", action="store_true",
                    help="measure branch coverage of store/datalog reached by this run (needs `pip install coverage`)")
    ap.add_argument("--coverage-file", default=None, help="keep the coverage data in this file (to combine runs)")
    args = ap.parse_args(argv)
    cov = None
    if args.coverage:
        import coverage  # measuring only: not a dependency of the project

        # by package, not path: measures whichever store.datalog is imported (e.g. a snapshot put first on sys.path)
        cov = coverage.Coverage(branch=True, source_pkgs=["sessiondb.store.datalog"], data_file=args.coverage_file)
        cov.start()  # before the engine is imported, so module-level lines count
    from sessiondb.ops.datascript import fuzz
    sizes = [int(x) for x in args.sizes.split(",") if x] or None

    def log(line: str) -> None:
        if not args.quiet or not line.startswith("case "):  # --quiet keeps progress lines and divergences
            print(line, flush=True)

    t0 = time.monotonic()
    st = fuzz.fuzz(args.cases, args.seed, timeout=args.timeout, sizes=sizes, shrink=args.shrink,
                   save=args.save, log=log, queries=args.queries or None, shrink_known=args.shrink_known,
                   rare=args.rare)
    print()
    print(f"cases           {st.cases}")
    print(f"queries         {st.queries}  (compared; skipped on purpose not included)")
    print(f"agreements      {st.agree}  (of which both engines rejected the query: {st.both_errors})")
    print(f"divergences     {st.diverge}")
    for name, n in st.known.most_common():
        print(f"  of which      {n:6d}  {name}: {fuzz.KNOWN[name][0]}")
    print(f"  unexplained   {st.diverge - sum(st.known.values())}")
    print(f"errors          ours {st.ours_errors}, DataScript {st.ds_errors}")
    print(f"timeouts        {st.timeouts}  (either engine over {args.timeout:g} s: not compared)")
    print(f"rewritten       {st.rewritten}  (repeated pattern variables spelled out for DataScript, then compared)")
    for name, n in st.skipped.most_common():
        print(f"skipped         {n:6d}  {name}: {fuzz.KEPT[name][0]}")
    print(f"time            {time.monotonic() - t0:.1f} s")
    if cov is not None:
        cov.stop()
        cov.save()
        print()
        total = cov.report(show_missing=True, skip_covered=False)
        print(f"branch coverage of store/datalog by this run: {total:.1f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
