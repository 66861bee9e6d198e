"""What the read commands print for a person (`--json` prints the library's documents instead).

Owns the human views of `view`, `history`, `messages`, `events` and `counters`, and the
one-line summaries of `write --wait` and `demo` (`tally` counts receipts). Every view fits
the console's width (80 columns in a pipe, `$COLUMNS` when set): a transcript line is cut
with "…", a message body is wrapped. User data is always printed as `Text`, never as
markup, so a message containing `[bold]` prints as written. An empty list says "0
messages", never `[]`.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from . import graph

# A summary shows the end of a long transcript; `sessiondb messages` lists every message.
TRANSCRIPT_ROWS = 200
EVENT_ROWS = 20
HEAD_RUN = 6  # longer runs of plain heads show as their ends and a count (`sessiondb graph` shows all)


def when(stamp: str | None) -> str:
    """`2026-12-01T21:52:21.742812Z` -> `2026-12-01 21:52:21` (UTC, to the second)."""
    return "-" if not stamp else stamp.replace("T", " ")[:19]


def count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _table(*columns: str, **kw: Any) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, header_style="bold", **kw)
    for col in columns:
        table.add_column(col, justify="right" if col in ("#", "turn", "in", "out", "cost", "tx") else "left")
    return table


def heading(text: str) -> Text:
    return Text(text, style="bold underline")


# -- the session line ---------------------------------------------------------------------

def session_header(row: dict[str, Any]) -> Group:
    """Two lines: id and title; status, kind, created and updated."""
    first = Text(row["session_id"], style="bold cyan")
    if row.get("title"):
        first.append(f"  {row['title']}")
    kind = "root" if row.get("kind") == "root" else f"{row.get('kind')} of {row.get('parent') or '?'}"
    created = when(row["created_at"])

    def since(stamp: str) -> str:  # a later time on the same day needs no date again
        return when(stamp)[11:] if when(stamp)[:10] == created[:10] else when(stamp)

    second = Text(f"{row['status']} · {kind} · created {created}, updated {since(row['updated_at'])}")
    if row.get("ended_at"):
        second.append(f", ended {since(row['ended_at'])}")
    return Group(first, second)


def _head_line(doc: dict[str, Any], selected: str | None) -> Text:
    current = doc["refs"]["current_head"]
    if current is None:
        return Text("current head: none yet")
    line = Text("current head: ")
    line.append(current, style="bold green")
    if selected and selected != current:
        line.append("  viewing: ")
        line.append(selected, style="bold")
    return line


# -- content previews ---------------------------------------------------------------------

def as_text(value: Any) -> str:
    """A stored payload as text a person can read: strings as they are, JSON compact, bytes counted."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"
    return json.dumps(value, ensure_ascii=False, default=str)


def blob_text(store: Any, blob_id: str | None) -> str:
    """A blob's bytes as text: UTF-8 (text and canonical JSON are), else its size."""
    if not blob_id:
        return ""
    data = store.blob(blob_id)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return f"<{len(data)} bytes>"


def first_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return ""
    return lines[0].strip() + (" …" if len(lines) > 1 else "")


# -- view ---------------------------------------------------------------------------------

def transcript(store: Any, doc: dict[str, Any]) -> list[Any]:
    messages = doc["messages"]
    sid = doc["session"]["session_id"]
    parts: list[Any] = [heading(f"Transcript · {count(len(messages), 'message')}")]
    if not messages:
        return parts
    shown = messages[-TRANSCRIPT_ROWS:]
    if len(shown) < len(messages):
        parts.append(Text(f"… {len(messages) - len(shown)} earlier messages not shown "
                          f"(sessiondb messages {sid} lists them all)", style="dim"))
    table = _table("#", "turn", "role", "content")
    table.columns[2].no_wrap = True
    # The content column may shrink (rich narrows wrappable columns to fit the width) and each
    # cell refuses to wrap: one line per message, cut with "…" at the terminal's edge.
    from_session = None
    for m in shown:
        if m["session_id"] != from_session and (from_session is not None or m["session_id"] != sid):
            table.add_row("", "", "", Text(f"— from {m['session_id']} —", style="dim"))
        from_session = m["session_id"]
        table.add_row(str(m["message_id"]), "-" if m["turn_id"] is None else str(m["turn_id"]),
                      Text(m["role"], style="bold"),
                      Text(first_line(blob_text(store, m["content_blob"])), no_wrap=True, overflow="ellipsis"))
    parts.append(table)
    return parts


def money(cost: float | None) -> str:
    return "-" if cost is None else f"${cost:.4f}"


def calls_table(calls: list[dict[str, Any]]) -> list[Any]:
    tin = sum(c["input_tokens"] or 0 for c in calls)
    tout = sum(c["output_tokens"] or 0 for c in calls)
    cost = sum(c["cost"] or 0.0 for c in calls)
    title = f"Calls · {count(len(calls), 'call')}"
    if calls:
        title += f" · {tin:,} tokens in, {tout:,} out · {money(cost)}"
    parts: list[Any] = [heading(title)]
    if calls:
        table = _table("#", "turn", "model", "status", "in", "out", "cost")
        for c in calls:
            table.add_row(str(c["call_id"]), "-" if c["turn_id"] is None else str(c["turn_id"]),
                          Text(c["model"] or c["call_type"] or "-"), Text(c["status"]),
                          "-" if c["input_tokens"] is None else f"{c['input_tokens']:,}",
                          "-" if c["output_tokens"] is None else f"{c['output_tokens']:,}", money(c["cost"]))
        parts.append(table)
    return parts


def heads_tree(store: Any, session: str) -> list[Any]:
    """Every head of the session as a tree (the current one marked, abandoned ones dimmed);
    sessions it forked or invoked are named, not followed (`sessiondb graph` follows them)."""
    lineage = graph.build(store, session, depth=0)
    parts: list[Any] = [heading(f"Heads · {count(len(lineage.heads), 'head')}"
                                + (f", {sum(h.abandoned for h in lineage.heads)} abandoned"
                                   if any(h.abandoned for h in lineage.heads) else ""))]
    if lineage.origin:
        parts.append(Text(lineage.origin))
    parts.append(graph.tree(lineage, collapse=HEAD_RUN))
    parts.append(Text(graph.LEGEND, style="dim"))
    return parts


def print_view(console: Console, store: Any, doc: dict[str, Any], selected: str | None = None) -> None:
    """`sessiondb view`: the session line, the head, transcript, calls, heads."""
    sid = doc["session"]["session_id"]
    console.print(session_header(doc["session"]))
    console.print(_head_line(doc, selected))
    if doc["inherited"]:
        console.print(Text(f"inherits from: {', '.join(doc['inherited'])}"))
    extra = [count(len(doc[k]), k[:-1]) for k in ("turns", "evals", "snapshots", "invocations") if doc[k]]
    if extra:
        console.print(Text(" · ".join(extra), style="dim"))
    for part in [Text(), *transcript(store, doc), Text(), *calls_table(doc["calls"]), Text(),
                 *heads_tree(store, sid)]:
        console.print(part)


# -- history ------------------------------------------------------------------------------


def _section(console: Console, title: str, noun: str, items: list[dict[str, Any]], columns: tuple[str, ...],
             row: Callable[[dict[str, Any]], tuple[Any, ...]]) -> None:
    """A blank line, `title · N nouns`, and a table of the items (none: the heading alone)."""
    console.print(Text())
    console.print(heading(f"{title} · {count(len(items), noun)}"))
    if items:
        table = _table(*columns)
        for item in items:
            table.add_row(*row(item))
        console.print(table)

def print_history(console: Console, store: Any, doc: dict[str, Any]) -> None:
    """`sessiondb history`: everything recorded, abandoned branches included, in summary."""
    sid = doc["session"]["session_id"]
    events = doc["events"]
    console.print(session_header(doc["session"]))
    console.print(_head_line(doc, None))
    kinds = Counter(e["type"] for e in events)
    txs = len({e["tx_id"] for e in events})
    line = f"{count(len(events), 'event')} in {count(txs, 'transaction')}"
    if kinds:
        line += ": " + ", ".join(f"{t} {n}" for t, n in kinds.most_common())
    console.print(Text(line))
    console.print(Text())
    for part in heads_tree(store, sid):
        console.print(part)
    _section(console, "Restores and forks", "derivation", doc["derivations"], ("kind", "from", "into", "event", "at"),
             lambda d: (d["kind"], Text(f"{d['source_session']}#{d['source_head'] or '-'}"),
                        Text(d["target_session"]), str(d["event_id"]), when(d["at"])))
    _section(console, "Invocations", "invocation", doc["invocations"], ("id", "caller", "callee", "status", "started"),
             lambda inv: (Text(inv["invocation_id"]), Text(inv["caller_session"]), Text(inv["callee_session"]),
                          inv["status"], when(inv["started_at"])))
    console.print(Text())
    shown = events[-EVENT_ROWS:]
    title = f"Latest events · {len(shown)} of {len(events)}" if len(shown) < len(events) else "Events"
    console.print(heading(title))
    console.print(events_table(shown))
    if len(shown) < len(events):
        console.print(Text(f"sessiondb events {sid} lists all {len(events)}", style="dim"))


# -- events, messages, counters -----------------------------------------------------------

def clock(stamps: list[str]) -> tuple[str, Any]:
    """Times as a person scans them: `21:52:21` when all fall on one day (named once), else in full."""
    days = {s[:10] for s in stamps if s}
    if len(days) == 1:
        return f"at (UTC, {days.pop()})", lambda s: when(s)[11:]
    return "at (UTC)", when


def events_table(events: list[dict[str, Any]]) -> Table | Text:
    if not events:
        return Text("0 events")
    at, fmt = clock([e["at"] for e in events])
    table = _table("#", "type", "entity", "status", "tx", at)
    table.columns[1].no_wrap = table.columns[5].no_wrap = True
    table.columns[2].overflow = "fold"
    for e in events:
        entity = e["entity"] or ""
        if e.get("entity_id") is not None:
            entity += f" {e['entity_id']}"
        table.add_row(str(e["event_id"]), Text(e["type"]), Text(entity), Text(e["status"] or ""), str(e["tx_id"]),
                      fmt(e["at"]))
    return table


def print_events(console: Console, session: str, events: list[dict[str, Any]]) -> None:
    console.print(events_table(events))
    if events:
        console.print(Text(f"{count(len(events), 'event')} of {session}", style="dim"))


def print_messages(console: Console, session: str, records: list[dict[str, Any]]) -> None:
    """`sessiondb messages`: #, turn, role and the whole content, wrapped to the width."""
    if not records:
        console.print(Text("0 messages"))
        return
    table = _table("#", "turn", "role", "content")
    table.columns[3].overflow = "fold"
    table.columns[2].no_wrap = True
    for r in records:
        table.add_row(str(r["message_id"]), "-" if r["turn_id"] is None else str(r["turn_id"]),
                      Text(r["role"], style="bold"), Text(as_text(r.get("content", ""))))
    console.print(table)
    console.print(Text(f"{count(len(records), 'message')} on the current branch of {session}", style="dim"))


def print_counters(console: Console, session: str, counters: dict[str, int]) -> None:
    console.print(heading(f"High-water counters of {session}"))
    console.print(Text("the highest id of each kind, across all branches", style="dim"))
    table = _table("kind", "highest")
    table.columns[1].justify = "right"
    for kind, value in counters.items():
        table.add_row(kind, str(value))
    console.print(table)


def mapping_table(data: dict[str, Any]) -> Table:
    """A small dict (an index status, a receipt) as `key  value` lines; nested values as compact JSON."""
    table = Table(box=None, pad_edge=False, show_header=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for key, value in data.items():
        table.add_row(Text(str(key)), Text("-" if value is None else value if isinstance(value, str)
                                           else json.dumps(value, default=str)))
    return table


# -- receipts -----------------------------------------------------------------------------

def is_duplicate(receipt: dict[str, Any]) -> bool:
    """A write id already applied: its stored receipt came back and nothing was written."""
    return bool(receipt.get("duplicate"))


def alias_line(name: str, session: str, receipt: dict[str, Any]) -> str:
    state = "already set" if is_duplicate(receipt) else f"{receipt.get('status')}, tx {receipt.get('tx_id')}"
    return f"alias {name} → {session} ({state})"


def tally_line(counts: dict[str, int]) -> str:
    """`22 writes: 0 committed, 22 duplicate, 0 rejected`."""
    total = sum(counts.values())
    return f"{count(total, 'write')}: " + ", ".join(f"{counts[k]} {k}" for k in ("committed", "duplicate", "rejected"))
