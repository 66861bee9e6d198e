"""A lineage (`ops.graph.Lineage`) drawn as an SVG file, in pure Python (`sessiondb graph --svg`).

Owns the layout and the SVG text. Graphviz is not a dependency: the picture is a
layered tree, one row per depth below the root session. Each session's current line runs
straight down one column and whatever branches off (an abandoned branch, a fork, an
invocation of a child session) opens a column to the right, like `git log --graph`.
Edges that are not part of that tree (a resume moving the ref back, a session reached
twice) are drawn dashed on top. Text is measured as monospace, so boxes fit their labels
in any viewer.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape

from .graph import Edge, Lineage, Vertex

CHAR_W, PAD, BOX_H, ROW_H, COL_GAP, MARGIN = 7.2, 10, 40, 72, 28, 24
MAX_CHARS = 34  # a box never grows wider than this many characters: long titles are cut with …

EDGE_STYLE = {
    "head": ("#444", ""), "basis": ("#444", ""),
    "fork": ("#7b3fb5", ""), "continue": ("#7b3fb5", ""), "attached-child": ("#7b3fb5", ""),
    "invocation": ("#d9730d", ""), "resume": ("#c62828", "5,4"),
}


@dataclass
class Box:
    v: Vertex
    row: int
    col: int
    x: float = 0.0
    y: float = 0.0
    w: float = 0.0


def _cut(text: str) -> str:
    return text if len(text) <= MAX_CHARS else text[:MAX_CHARS - 1] + "…"


def _lines(v: Vertex) -> tuple[str, str]:
    detail = v.detail + (" · current" if v.current else "") + (" · abandoned" if v.abandoned else "")
    return _cut(v.name), _cut(detail)


def _continues(g: Lineage, vid: str, edge: Edge) -> bool:
    """Whether `edge` continues `vid`'s line: the next head, on the same side (current or abandoned)."""
    return edge.kind in ("head", "basis") and g.vertices[edge.dst].abandoned == g.vertices[vid].abandoned


def _children(g: Lineage, vid: str) -> list[Edge]:
    """Out-edges in drawing order: the line first, then what branches off, then abandoned heads."""
    def rank(e: Edge) -> int:
        if e.kind in ("head", "basis"):
            return 0 if _continues(g, vid, e) else 2
        return 1

    return sorted((e for e in g.out(vid) if e.kind != "resume"), key=rank)


def layout(g: Lineage) -> tuple[dict[str, Box], list[Edge], list[Edge]]:
    """Boxes by vertex id, the tree edges and the other edges."""
    boxes: dict[str, Box] = {}
    tree_edges: list[Edge] = []
    next_col = 0

    def column() -> int:
        nonlocal next_col
        next_col += 1
        return next_col - 1

    def visit(vid: str, row: int) -> list[Edge]:
        # A vertex whose line goes on takes the column of its next head (so a line runs straight
        # down); any other vertex opens a new column before its children do, so whatever
        # branches off (forks, invocations, abandoned heads) lands to its right.
        boxes[vid] = Box(g.vertices[vid], row, -1)
        todo = _children(g, vid)
        if not (todo and _continues(g, vid, todo[0]) and todo[0].dst not in boxes):
            boxes[vid].col = column()
        return todo

    def place(start: str, row: int) -> None:
        # Depth first, without recursion: a line of a few thousand heads is as many rows deep.
        stack: list[tuple[str, list[Edge]]] = [(start, visit(start, row))]
        while stack:
            vid, todo = stack[-1]
            while todo and todo[0].dst in boxes:
                todo.pop(0)
            if todo:
                edge = todo.pop(0)
                tree_edges.append(edge)
                stack.append((edge.dst, visit(edge.dst, boxes[vid].row + 1)))
                continue
            stack.pop()
            if boxes[vid].col < 0:
                boxes[vid].col = column()
            if stack and boxes[stack[-1][0]].col < 0:  # the first child to finish is the line's next head
                boxes[stack[-1][0]].col = boxes[vid].col

    place(g.root, 0)
    for vid in g.vertices:  # anything not reachable from the root (should not happen) gets a column
        if vid not in boxes:
            place(vid, 0)
    others = [e for e in g.edges if e not in tree_edges and e.src in boxes and e.dst in boxes]
    widths: dict[int, float] = {}
    for b in boxes.values():
        b.w = max(len(s) for s in _lines(b.v)) * CHAR_W + 2 * PAD
        widths[b.col] = max(widths.get(b.col, 0.0), b.w)
    lefts, x = {}, float(MARGIN)
    for col in sorted(widths):
        lefts[col] = x
        x += widths[col] + COL_GAP
    for b in boxes.values():
        b.x = lefts[b.col] + (widths[b.col] - b.w) / 2
        b.y = MARGIN + 28 + b.row * ROW_H
    return boxes, tree_edges, others


def _edge(a: Box, b: Box, edge: Edge, dashed: bool) -> tuple[str, str]:
    """The path of an edge and its label (drawn after the boxes, so no box hides it)."""
    color, dash = EDGE_STYLE.get(edge.kind, ("#444", ""))
    dash = dash or ("3,3" if dashed else "")
    if b.row <= a.row:  # pointing back up (a resume): from side to side, bowing outwards
        y1, y2 = a.y + BOX_H / 2, b.y + BOX_H / 2
        if b.x + b.w < a.x:  # b is to the left
            x1, x2 = a.x, b.x + b.w
            c1, c2 = x1 - 30, x2 + 30
        elif a.x + a.w < b.x:
            x1, x2 = a.x + a.w, b.x
            c1, c2 = x1 + 30, x2 - 30
        else:
            x1, x2 = a.x + a.w, b.x + b.w
            c1 = c2 = max(x1, x2) + 30
        d = f"M{x1:.1f},{y1:.1f} C{c1:.1f},{y1:.1f} {c2:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"
        lx, ly = (x1 + x2) / 2 + 4, (y1 + y2) / 2
    else:
        x1, y1 = a.x + a.w / 2, a.y + BOX_H
        x2, y2 = b.x + b.w / 2, b.y
        mid = (y1 + y2) / 2
        d = f"M{x1:.1f},{y1:.1f} C{x1:.1f},{mid:.1f} {x2:.1f},{mid:.1f} {x2:.1f},{y2:.1f}"
        lx, ly = (x1 + x2) / 2 + 4, mid - 3
    dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
    path = (f'<path d="{d}" fill="none" stroke="{color}" stroke-width="1.5"{dash_attr} '
            f'marker-end="url(#arrow-{edge.kind})"/>')
    label = ""
    if edge.kind not in ("head", "basis") and edge.label:
        label = (f'<text x="{lx:.1f}" y="{ly:.1f}" font-size="10" fill="{color}" stroke="white" stroke-width="3" '
                 f'paint-order="stroke">{escape(edge.label)}</text>')
    return path, label


def _box(b: Box) -> list[str]:
    v = b.v
    name, detail = _lines(v)
    fill = "#e3f0fb" if v.kind == "session" else ("#e8f5e9" if v.current else "#ffffff")
    stroke, width, dash, opacity = "#37474f", 1.2, "", 1.0
    if v.current:
        stroke, width = "#2e7d32", 3
    if v.abandoned:
        stroke, dash, opacity, fill = "#9e9e9e", ' stroke-dasharray="4,3"', 0.55, "#f5f5f5"
    tip = "\n".join([f"{v.kind} {v.name}", v.detail, *v.notes])
    return [
        f'<g class="{v.kind}{" current" if v.current else ""}{" abandoned" if v.abandoned else ""}"'
        f' opacity="{opacity}">',
        f"<title>{escape(tip)}</title>",
        f'<rect x="{b.x:.1f}" y="{b.y:.1f}" width="{b.w:.1f}" height="{BOX_H}" rx="{10 if v.kind == "session" else 4}"'
        f' fill="{fill}" stroke="{stroke}" stroke-width="{width}"{dash}/>',
        f'<text x="{b.x + PAD:.1f}" y="{b.y + 16:.1f}" font-size="12" font-weight="bold">{escape(name)}</text>',
        f'<text x="{b.x + PAD:.1f}" y="{b.y + 31:.1f}" font-size="10" fill="#555">{escape(detail)}</text>',
        "</g>",
    ]


LEGEND = [("current head", "#2e7d32", ""), ("abandoned", "#9e9e9e", "4,3"), ("fork", "#7b3fb5", ""),
          ("invocation", "#d9730d", ""), ("resume", "#c62828", "5,4")]


def render(g: Lineage, title: str = "") -> str:
    """The SVG document (a string) of a lineage."""
    boxes, tree_edges, others = layout(g)
    width = max([b.x + b.w for b in boxes.values()] + [420.0]) + MARGIN + 40
    height = max(b.y for b in boxes.values()) + BOX_H + MARGIN + 40
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
           f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="DejaVu Sans Mono, Menlo, Consolas, monospace">',
           "<defs>"]
    for kind, (color, _) in EDGE_STYLE.items():
        out.append(f'<marker id="arrow-{kind}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
                   f'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{color}"/>'
                   "</marker>")
    out.append("</defs>")
    out.append('<rect width="100%" height="100%" fill="white"/>')
    heading = title or f"lineage of {g.vertices[g.root].name}" + (f" ({g.origin})" if g.origin else "")
    out.append(f'<text x="{MARGIN}" y="{MARGIN + 4}" font-size="14" font-weight="bold">{escape(heading)}</text>')
    drawn = [_edge(boxes[e.src], boxes[e.dst], e, dashed=False) for e in tree_edges]
    drawn += [_edge(boxes[e.src], boxes[e.dst], e, dashed=True) for e in others]
    out += [path for path, _ in drawn]
    for b in boxes.values():
        out += _box(b)
    out += [label for _, label in drawn if label]
    x, y = float(MARGIN), height - MARGIN + 4
    for label, color, dash in LEGEND:
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<line x1="{x:.1f}" y1="{y - 4:.1f}" x2="{x + 18:.1f}" y2="{y - 4:.1f}" stroke="{color}" '
                   f'stroke-width="2.5"{dash_attr}/>')
        out.append(f'<text x="{x + 22:.1f}" y="{y:.1f}" font-size="10">{escape(label)}</text>')
        x += 22 + len(label) * 6.2 + 18
    out.append("</svg>")
    return "\n".join(out) + "\n"

