"""`sessiondb graph SESSION [--svg FILE]`: the picture of a session's lineage.

A thin command over `ops.graph` (the lineage model and the terminal tree) and
`ops.graph_svg` (the SVG file); registered on the main `app` like `ops.cli_data`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import typer
from rich.text import Text

from sessiondb.ops import graph as lineage_graph
from sessiondb.ops import graph_svg
from sessiondb.ops.cli_common import JsonOpt, RootOpt, app, emit, fail, open_store, out
from sessiondb.ops.render import count


@app.command()
def graph(session: str,
          svg: Path | None = typer.Option(None, "--svg", metavar="FILE", help="write an SVG picture to FILE"),
          depth: int = typer.Option(3, help="follow forked and invoked sessions this many sessions away"),
          root: Path | None = RootOpt, as_json: bool = JsonOpt) -> None:
    """The lineage of SESSION: heads (current marked, abandoned dimmed), resumes, forks, invocations."""
    if depth < 0:
        fail("--depth must be >= 0")
    with open_store(root) as store:
        lineage = lineage_graph.build(store, session, depth)
    sessions = sum(v.kind == "session" for v in lineage.vertices.values())
    if svg is not None:
        try:
            svg.write_text(graph_svg.render(lineage), encoding="utf-8")
        except OSError as exc:
            fail(f"cannot write {svg}: {exc}")
        if as_json:
            emit({"svg": str(svg), "heads": len(lineage.heads), "sessions": sessions}, True)
        else:
            what = f"{count(len(lineage.heads), 'head')} in {count(sessions, 'session')}"
            out.print(Text(f"wrote {svg}: {what}"), soft_wrap=True)
        return
    if as_json:
        emit({"root": lineage.root, "origin": lineage.origin, "truncated": lineage.truncated,
              "vertices": [dataclasses.asdict(v) for v in lineage.vertices.values()],
              "edges": [dataclasses.asdict(e) for e in lineage.edges]}, True)
        return
    if lineage.origin:
        out.print(Text(lineage.origin))
    out.print(lineage_graph.tree(lineage))
    out.print(Text(lineage_graph.LEGEND, style="dim"))
    if lineage.truncated:
        out.print(Text(f"not followed (--depth {depth}): {', '.join(lineage.truncated)}", style="dim"))
