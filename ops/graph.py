"""The lineage of a session as a graph, and its picture in a terminal (`sessiondb graph`).

Owns the lineage model: which heads a session made (the head DAG, each head pointing at
its `basis`), which of them lie on the current branch, which were abandoned (left by a
resume or a ref move), where the ref was moved back (resumes), and which other sessions
grew out of it (forks, continues, attached children, invocations of child sessions),
followed down to `depth` sessions away. It reads the store's public `history_view` only,
never its tables.

`tree(lineage)` draws it as a rich Tree; `ops.graph_svg` draws the same model as SVG.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from rich.text import Text
from rich.tree import Tree

# How many sessions one picture follows at most: a fleet's fan-out should not print a book.
MAX_SESSIONS = 60


@dataclass
class Vertex:
    id: str                      # "s:<session>" or "h:<head>": sessions and heads never clash
    kind: str                    # "session" | "head"
    name: str                    # the session id or head id, as a user types it
    detail: str = ""             # "turn 3 · turn-final", or the session's title and status
    session: str = ""
    current: bool = False        # the session's current head
    abandoned: bool = False      # a head no longer on its session's current branch
    notes: list[str] = field(default_factory=list)  # "resumed here from a0-h3 (event 30)"


@dataclass
class Edge:
    src: str
    dst: str
    kind: str      # head | basis | fork | continue | attached-child | invocation | resume
    label: str = ""


@dataclass
class Lineage:
    root: str
    vertices: dict[str, Vertex] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)
    origin: str = ""             # where the root session itself came from, if anywhere
    truncated: list[str] = field(default_factory=list)  # sessions not followed (depth or size limits)
    _out: dict[str, list[Edge]] = field(default_factory=dict, init=False, repr=False)
    _indexed: int = field(default=-1, init=False, repr=False)

    def out(self, vid: str) -> list[Edge]:
        """The edges leaving `vid`, in the order they were added (indexed again when edges were added)."""
        if self._indexed != len(self.edges):
            self._out = {}
            for e in self.edges:
                self._out.setdefault(e.src, []).append(e)
            self._indexed = len(self.edges)
        return self._out.get(vid, [])

    @property
    def heads(self) -> list[Vertex]:
        return [v for v in self.vertices.values() if v.kind == "head"]


def session_vid(session: str) -> str:
    return f"s:{session}"


def head_vid(head: str) -> str:
    return f"h:{head}"


def on_branch(heads: list[dict[str, Any]], current: str | None) -> set[str]:
    """The heads of the current branch: the current head and its basis chain."""
    basis = {h["head_id"]: h["basis"] for h in heads}
    chain: set[str] = set()
    while current is not None and current in basis and current not in chain:
        chain.add(current)
        current = basis[current]
    return chain


def replay_refs(history: dict[str, Any]) -> dict[int, tuple[str | None, str | None]]:
    """The current head just before and just after each event of the session, from its audit log.

    A head becomes current when created (the usual `advance`), and a resume or ref update
    moves it. Used to name the head a resume left, and to place an invocation at the head
    it was made from when the producer did not name `caller_head_before`."""
    resumes = {d["event_id"]: d["source_head"] for d in history["derivations"]
               if d["kind"] == "resume" and d["target_session"] == history["session"]["session_id"]}
    current: str | None = None
    refs: dict[int, tuple[str | None, str | None]] = {}
    for event in history["events"]:
        before = current
        if event["type"] in ("head/created", "session/ref-updated") and event.get("entity_id"):
            current = event["entity_id"]
        elif event["event_id"] in resumes:
            current = resumes[event["event_id"]]
        refs[event["event_id"]] = (before, current)
    return refs


def _head_detail(head: dict[str, Any]) -> str:
    parts = [f"turn {head['turn_id']}"] if head.get("turn_id") is not None else []
    parts.append(str(head["kind"]))
    return " · ".join(parts)


def _session_detail(row: dict[str, Any]) -> str:
    parts = [repr(row["title"])] if row.get("title") else []
    parts.append(str(row["status"]))
    return " · ".join(parts)


def build(store: Any, session: str, depth: int = 3) -> Lineage:
    """The lineage of SESSION: its heads, and sessions derived from or invoked by it, `depth` levels down."""
    first = store.history_view(session)
    sid = first["session"]["session_id"]
    lineage = Lineage(root=session_vid(sid), origin=origin_of(first))
    todo: deque[tuple[str, int, dict[str, Any] | None]] = deque([(sid, 0, first)])
    seen = {sid}
    while todo:
        name, level, history = todo.popleft()
        history = history or store.history_view(name)
        for child in _add_session(lineage, history):
            if child in seen:
                continue
            seen.add(child)
            if level + 1 > depth or len(seen) > MAX_SESSIONS:
                lineage.truncated.append(child)
                lineage.vertices.setdefault(session_vid(child), Vertex(
                    session_vid(child), "session", child, "not followed", child))
                continue
            todo.append((child, level + 1, None))
    return lineage


def origin_of(history: dict[str, Any]) -> str:
    """One line on where the session came from (a fork's source head, its caller), or ""."""
    sid = history["session"]["session_id"]
    for d in history["derivations"]:
        if d["target_session"] == sid and d["kind"] != "resume":
            return f"{d['kind']} of {d['source_session']}#{d['source_head']}"
    for inv in history["invocations"]:
        if inv["callee_session"] == sid:
            return f"invoked by {inv['caller_session']} ({inv['invocation_id']}, {inv['status']})"
    return ""


def _add_session(lineage: Lineage, history: dict[str, Any]) -> list[str]:
    """Add one session's vertex, heads and outgoing edges; returns the sessions it leads to."""
    row = history["session"]
    sid = row["session_id"]
    svid = session_vid(sid)
    lineage.vertices[svid] = Vertex(svid, "session", sid, _session_detail(row), sid)
    heads = history["heads"]
    current = row["current_head"]
    branch = on_branch(heads, current)
    own = {h["head_id"] for h in heads}
    for h in heads:
        hvid = head_vid(h["head_id"])
        lineage.vertices[hvid] = Vertex(hvid, "head", h["head_id"], _head_detail(h), sid,
                                        current=h["head_id"] == current, abandoned=h["head_id"] not in branch)
        parent = head_vid(h["basis"]) if h["basis"] in own else svid
        lineage.edges.append(Edge(parent, hvid, "basis" if parent != svid else "head"))
    refs = replay_refs(history)
    for d in history["derivations"]:
        if d["kind"] == "resume" and d["target_session"] == sid:
            before = refs.get(d["event_id"], (None, None))[0]
            target = lineage.vertices.get(head_vid(d["source_head"]))
            if target is not None:
                left = f" from {before}" if before and before != d["source_head"] else ""
                target.notes.append(f"resumed here{left} (event {d['event_id']})")
            if before and before != d["source_head"] and before in own:
                lineage.edges.append(Edge(head_vid(before), head_vid(d["source_head"]), "resume",
                                          f"resume @{d['event_id']}"))
    leads: list[str] = []
    for d in history["derivations"]:
        if d["source_session"] == sid and d["target_session"] != sid:
            src = head_vid(d["source_head"]) if d["source_head"] in own else svid
            lineage.edges.append(Edge(src, session_vid(d["target_session"]), d["kind"], d["kind"]))
            leads.append(d["target_session"])
    for inv in history["invocations"]:
        if inv["caller_session"] != sid:
            continue
        made_from = inv["caller_head_before"] or refs.get(inv["event_id"], (None, None))[0]
        src = head_vid(made_from) if made_from in own else svid
        lineage.edges.append(Edge(src, session_vid(inv["callee_session"]), "invocation",
                                  f"{inv['invocation_id']}, {inv['status']}"))
        leads.append(inv["callee_session"])
    return leads


# -- the terminal picture ---------------------------------------------------------------------

MARKS = {"fork": "⑂ fork", "continue": "↪ continue", "attached-child": "⊕ attached", "invocation": "⇢ invoked"}


def _label(v: Vertex, via: Edge | None = None) -> Text:
    text = Text()
    if via is not None and via.kind in MARKS:
        text.append(f"{MARKS[via.kind]} ", style="magenta")
    if v.kind == "head":  # marks that survive without colour: a pipe, a log, a screen reader
        text.append("○ " if v.abandoned else "● ", style="green" if not v.abandoned else "")
    text.append(v.name, style="bold cyan" if v.kind == "session" else ("bold green" if v.current else ""))
    if via is not None and via.kind == "invocation":
        text.append(f" ({via.label})", style="magenta")
    if v.detail:
        text.append(f" · {v.detail}")
    if v.current:
        text.append(" ◀ current", style="bold green")
    if v.abandoned:
        text.append(" (abandoned)")
        text.stylize("dim")
    return text


class _TreeBuilder:
    """A spanning tree of the lineage, with each session's current line kept flat.

    A session's heads are a chain; nesting each head under its basis would indent a
    50-turn session 200 columns deep. So the line through the current head is listed flat
    under its session, and only what branches off a head (an abandoned branch, a fork, an
    invocation, a resume) is nested under that head, each side branch itself flat."""

    def __init__(self, lineage: Lineage, collapse: int | None = None) -> None:
        self.g = lineage
        self.drawn: set[str] = set()
        self.collapse = collapse  # a run of more plain heads than this is shown as its ends and a count

    def session(self, parent: Tree | None, v: Vertex, via: Edge | None = None) -> Tree:
        node = Tree(_label(v, via), guide_style="dim") if parent is None else parent.add(_label(v, via))
        self.drawn.add(v.id)
        starts = [e for e in self.g.out(v.id) if e.kind == "head"]
        if not starts and v.detail != "not followed":
            node.add(Text("(no heads)", style="dim"))
        for i, edge in enumerate(starts):
            self.line(node, edge.dst, flat=i == 0)
        self.offshoots(node, v.id)
        return node

    def line(self, node: Tree, start: str, flat: bool) -> None:
        """The chain from `start`, following the child on the current branch (else the first)."""
        chain = [start]
        while True:
            kids = [e.dst for e in self.g.out(chain[-1]) if e.kind == "basis"]
            if flat:  # the current line ends at the current head; what grew past it was abandoned
                kids = [k for k in kids if not self.g.vertices[k].abandoned]
            if not kids:
                break
            kids.sort(key=lambda k: self.g.vertices[k].abandoned)  # stable: in the order heads were made
            chain.append(kids[0])
        if not flat and len(chain) > 1:
            v = self.g.vertices[start]
            state = " (abandoned)" if v.abandoned else ""
            node = node.add(Text(f"branch of {len(chain)} heads{state}", style="dim" if v.abandoned else ""))
        for vid in self._shown(node, chain):
            if vid not in self.g.vertices:  # "… 690 more heads (…)"
                node.add(Text(vid, style="dim"))
                continue
            v = self.g.vertices[vid]
            self.drawn.add(vid)
            hn = node.add(_label(v))
            for note in v.notes:
                hn.add(Text(f"⟲ {note}", style="yellow"))
            kids = [e.dst for e in self.g.out(vid) if e.kind == "basis"]
            for k in kids:
                if k not in chain:
                    self.line(hn, k, flat=False)
            self.offshoots(hn, vid)

    def _plain(self, vid: str, chain: set[str]) -> bool:
        """A head with nothing to show but itself: not current, no resume, nothing branching off."""
        v = self.g.vertices[vid]
        return not (v.current or v.notes or any(e.kind != "basis" or e.dst not in chain for e in self.g.out(vid)))

    def _shown(self, node: Tree, chain: list[str]) -> list[str]:
        """The heads of a chain to draw; a long run of plain heads becomes its two ends and a count."""
        if self.collapse is None or len(chain) <= self.collapse:
            return chain
        members = set(chain)
        shown: list[str] = []
        run: list[str] = []

        def flush() -> None:
            if len(run) > self.collapse:  # type: ignore[operator]
                self.drawn.update(run)
                shown.append(run[0])
                names = self.g.vertices[run[1]].name, self.g.vertices[run[-2]].name
                shown.append(f"… {len(run) - 2} more heads ({names[0]} … {names[1]})")
                shown.append(run[-1])
            else:
                shown.extend(run)
            run.clear()

        for vid in chain:
            if self._plain(vid, members):
                run.append(vid)
            else:
                flush()
                shown.append(vid)
        flush()
        return shown

    def offshoots(self, node: Tree, vid: str) -> None:
        for edge in self.g.out(vid):
            if edge.kind in ("head", "basis", "resume"):
                continue
            target = self.g.vertices[edge.dst]
            if edge.dst in self.drawn:  # a session reached twice: name it, draw it once
                node.add(_label(target, edge).append(" (shown above)", style="dim"))
            else:
                self.session(node, target, edge)


LEGEND = "● current branch  ○ abandoned  ◀ current head  ⟲ resume  ⑂ fork  ⇢ invocation"


def tree(lineage: Lineage, collapse: int | None = None) -> Tree:
    """The lineage as a rich Tree: every head named, the current one marked, abandoned ones dimmed.

    With `collapse`, a run of more than that many plain heads (nothing branches off them)
    shows as its first and last head and a count: a summary of a 1,000-turn session fits a screen."""
    return _TreeBuilder(lineage, collapse).session(None, lineage.vertices[lineage.root])
