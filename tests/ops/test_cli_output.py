"""What a person reads from `view`, `history`, `messages`, `events`, `counters` and `graph`.

The real CLI in a subprocess at 80 columns, on a real store with turns, calls, a resume
that abandons a branch of two heads, a fork with its own head, and an invocation of a
child session. `--json` must stay the library's document, unchanged.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
from rich.cells import cell_len

from sessiondb.ops.demo import agent_session, fork_and_invoke
from sessiondb.store import Store

CLI = [sys.executable, "-m", "sessiondb.ops.cli"]
LONG = ("The plan, in detail: " + "read every file, note what each function owns, " * 6 + "then write the tests.\n"
        "Second line of the long message.")


def run(*args: str, root, columns: int = 80) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONDB_") and k not in ("FORCE_COLOR",)}
    env["COLUMNS"] = str(columns)
    done = subprocess.run([*CLI, *args, "--root", str(root)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done


def fits(text: str, columns: int = 80) -> None:
    wide = [line for line in text.splitlines() if cell_len(line.rstrip()) > columns]
    assert not wide, wide


def head_line(text: str, head: str) -> str:
    return line_with(text, f"{head} ·")


def line_with(text: str, *needles: str) -> str:
    found = [line for line in text.splitlines() if all(n in line for n in needles)]
    assert found, f"no line with {needles} in:\n{text}"
    return found[0]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("output") / "store"
    with Store.open(root) as store:
        for w in agent_session("a0", turns=4, resume=False):  # heads a0-h1 .. a0-h4
            store.commit(w)
        # a resume to a0-h2 leaves a0-h3 and a0-h4 behind; the next turn's head grows from a0-h2
        store.commit({"write_id": "a0:resume", "session": "a0", "events": [
            {"type": "session/restored", "kind": "resume", "source_head": "a0-h2", "expected_head": "a0-h4"},
            {"type": "message/added", "role": "user", "content": LONG},
            {"type": "message/added", "role": "assistant", "content": "[bold]not markup[/bold] {\"k\": 1}"},
            {"type": "message/added", "role": "system", "content": {"rows": [1, 2, 3]}},
            {"type": "head/created", "head_id": "a0-h5", "expected_head": "a0-h2"}]})
        for w in fork_and_invoke("a0", "a0-fork", "a0-child"):
            store.commit(w)
        store.commit({"write_id": "fork:h1", "session": "a0-fork", "events": [
            {"type": "head/created", "head_id": "a0-fork-h1", "expected_head": None}]})
        store.commit({"write_id": "e:start", "session": "empty", "events": [{"type": "session/started"}]})
    return root


HEADS = ["a0-h1", "a0-h2", "a0-h3", "a0-h4", "a0-h5"]


def test_view_is_a_summary_a_person_reads(root):
    text = run("view", "a0", root=root).stdout
    fits(text)
    assert not text.lstrip().startswith("{") and len(text.splitlines()) < 60
    lines = text.splitlines()
    assert lines[0].split() == ["a0", "demo", "agent", "a0"]
    assert "running" in lines[1] and "created" in lines[1] and "updated" in lines[1]
    assert "current head: a0-h5" in text
    assert "Transcript · 8 messages" in text
    line_with(text, "system", "You are a careful coding agent.")
    line_with(text, "1", "user", "task 1: sum the first 10 squares")
    cut = line_with(text, "user", "The plan, in detail")
    assert cut.rstrip().endswith("…") and "Second line" not in text  # the first line, cut to the width
    line_with(text, "assistant", "[bold]not markup[/bold]")
    line_with(text, "system", '{"rows":[1,2,3]}')
    assert "Calls · 2 calls" in text and "tokens in" in text and "$" in text
    with Store.open(root) as store:
        models = {c["model"] for c in store.view("a0")["calls"]}
    for model in models:
        line_with(text, model, "completed")


def test_view_shows_heads_as_a_tree_current_marked_abandoned_named(root):
    text = run("view", "a0", root=root).stdout
    assert "Heads · 5 heads, 2 abandoned" in text
    for head in HEADS:
        head_line(text, head)
    assert "◀ current" in head_line(text, "a0-h5")
    for head in ("a0-h3", "a0-h4"):
        assert "(abandoned)" in head_line(text, head)
    for head in ("a0-h1", "a0-h2", "a0-h5"):
        assert "abandoned" not in head_line(text, head)
    assert "resumed here from a0-h4" in text
    line_with(text, "fork", "a0-fork")
    line_with(text, "invoked", "a0-child")


def test_view_of_a_head_names_the_head_being_viewed(root):
    text = run("view", "a0#a0-h3", root=root).stdout
    assert "current head: a0-h5" in text and "viewing: a0-h3" in text
    assert "Transcript · 7 messages" in text  # system + 3 turns x (user, assistant)


def test_json_stays_the_library_document(root):
    with Store.open(root) as store:
        docs = {"view": store.view("a0"), "history": store.history_view("a0"),
                "counters": store.high_water_counters("a0"), "events": store.event_view("a0"),
                "messages": store.message_records("a0")}
    for command, doc in docs.items():
        printed = json.loads(run(command, "a0", "--json", root=root).stdout)
        assert printed == json.loads(json.dumps(doc, default=str)), command
    with_content = json.loads(run("messages", "a0", "--json", "--content", root=root).stdout)
    assert with_content[0]["content"] == "You are a careful coding agent."


def test_history_summarises_everything_recorded(root):
    text = run("history", "a0", root=root).stdout
    fits(text)
    assert len(text.splitlines()) < 80
    assert "current head: a0-h5" in text
    assert "events in" in text and "head/created 5" in text
    for head in HEADS:
        head_line(text, head)
    line_with(text, "resume", "a0#a0-h2")
    line_with(text, "fork", "a0#a0-h1", "a0-fork")
    line_with(text, "a0-inv1", "a0-child", "completed")
    line_with(text, "Restores and forks ·", " derivations")
    line_with(text, "Invocations · 1 invocation")
    assert "Latest events · 20 of" in text


def test_counters_is_a_small_table(root):
    text = run("counters", "a0", root=root).stdout
    fits(text)
    assert "High-water counters of a0" in text
    with Store.open(root) as store:
        counters = store.high_water_counters("a0")
    for kind, value in counters.items():
        assert line_with(text, kind).split() == [kind, str(value)]


def test_messages_shows_number_turn_role_and_wrapped_content(root):
    text = run("messages", "a0", root=root).stdout
    fits(text)
    assert line_with(text, "#", "turn", "role", "content")
    assert "content_blob" not in text and "event_id" not in text
    line_with(text, "1", "system", "You are a careful coding agent.")
    # the long message is all there, wrapped inside its column (continuation lines start blank)
    lines = text.splitlines()
    column = line_with(text, "#", "turn", "role", "content").index("content")
    first = lines.index(line_with(text, "The plan"))
    body = [lines[first][column:].strip()]
    for line in lines[first + 1:]:
        if line[:column].strip():
            break
        body.append(line[column:].strip())
    assert len(body) > 3 and " ".join(body) == " ".join(LONG.split())
    line_with(text, "assistant", "[bold]not markup[/bold]")
    assert "8 messages" in text


def test_messages_stays_readable_when_narrow(root):
    text = run("messages", "a0", root=root, columns=60).stdout
    fits(text, 60)
    line_with(text, "system", "You are a careful coding agent.")


def test_empty_results_say_so_never_brackets(root):
    text = run("messages", "empty", root=root).stdout
    assert text.strip() == "0 messages"
    view = run("view", "empty", root=root).stdout
    assert "Transcript · 0 messages" in view and "Calls · 0 calls" in view and "[]" not in view
    assert "current head: none yet" in view and "(no heads)" in view
    query = run("query", '[:find ?m :where [?c :call/model ?m] [(= ?m "nobody")]]', root=root).stdout
    assert query.strip() == "0 rows"


def test_events_is_a_table_that_fits(root):
    text = run("events", "a0", root=root).stdout
    fits(text)
    line_with(text, "session/started", "session a0")
    line_with(text, "head/created", "head a0-h5")
    assert "events of a0" in text


def test_graph_draws_every_head_the_current_marked_and_other_sessions(root):
    text = run("graph", "a0", root=root).stdout
    fits(text)
    for head in [*HEADS, "a0-fork-h1", "a0-child-h1"]:
        head_line(text, head)
    assert "◀ current" in head_line(text, "a0-h5")
    assert "(abandoned)" in head_line(text, "a0-h3") and "(abandoned)" in head_line(text, "a0-h4")
    # marks that read without colour: ● on the current branch, ○ abandoned
    assert all(f"● {h} ·" in text for h in ("a0-h1", "a0-h2", "a0-h5"))
    assert all(f"○ {h} ·" in text for h in ("a0-h3", "a0-h4"))
    assert "◀ current" in head_line(text, "a0-fork-h1") and "◀ current" in head_line(text, "a0-child-h1")
    line_with(text, "fork", "a0-fork")
    line_with(text, "invoked", "a0-child", "a0-inv1")
    line_with(text, "resumed here from a0-h4")
    # the abandoned branch of two heads hangs off a0-h2, nested (not on the current line)
    lines = text.splitlines()
    indent = {h: head_line(text, h).index(h) for h in HEADS}
    assert indent["a0-h1"] == indent["a0-h2"] == indent["a0-h5"] < indent["a0-h3"]
    assert any("branch of 2 heads (abandoned)" in line for line in lines)


def test_graph_of_a_derived_session_says_where_it_came_from(root):
    assert run("graph", "a0-child", root=root).stdout.startswith("invoked by a0 (a0-inv1, completed)")
    assert run("graph", "a0-fork", root=root).stdout.startswith("fork of a0#a0-h1")


def test_graph_depth_zero_names_other_sessions_without_following_them(root):
    text = run("graph", "a0", "--depth", "0", root=root).stdout
    assert "a0-child-h1" not in text and "not followed" in line_with(text, "a0-child")


def test_graph_svg_is_well_formed_and_names_every_head(root, tmp_path):
    svg = tmp_path / "a0.svg"
    done = run("graph", "a0", "--svg", str(svg), root=root)
    assert f"wrote {svg}: 7 heads in 3 sessions" in done.stdout
    tree = ET.parse(svg)
    ns = {"svg": "http://www.w3.org/2000/svg"}
    assert tree.getroot().tag == "{http://www.w3.org/2000/svg}svg"
    texts = [t.text or "" for t in tree.getroot().iter("{http://www.w3.org/2000/svg}text")]
    for head in [*HEADS, "a0-fork-h1", "a0-child-h1"]:
        assert head in texts, head
    groups = {g.find("svg:text", ns).text: g.get("class") for g in tree.getroot().iter("{http://www.w3.org/2000/svg}g")}
    assert groups["a0-h5"] == "head current" and groups["a0-h3"] == groups["a0-h4"] == "head abandoned"
    assert groups["a0"] == "session"
    # boxes never overlap: one row per depth, distinct columns within a row
    rects = [(float(r.get("x")), float(r.get("y")), float(r.get("width")))
             for r in tree.getroot().iter("{http://www.w3.org/2000/svg}rect") if r.get("x")]
    for i, (x1, y1, w1) in enumerate(rects):
        for x2, y2, w2 in rects[i + 1:]:
            assert y1 != y2 or x1 + w1 <= x2 or x2 + w2 <= x1
    graph_json = json.loads(run("graph", "a0", "--json", root=root).stdout)
    assert {v["name"] for v in graph_json["vertices"] if v["kind"] == "head"} == {*HEADS, "a0-fork-h1", "a0-child-h1"}


def test_a_title_with_markup_or_xml_is_printed_as_written(tmp_path):
    root = tmp_path / "store"
    with Store.open(root) as store:
        store.commit({"write_id": "x1", "session": "x", "events": [
            {"type": "session/started", "title": "<b>&[red]title[/red]"},
            {"type": "head/created", "head_id": "x-h1", "expected_head": None}]})
    assert "<b>&[red]title[/red]" in run("view", "x", root=root).stdout
    svg = tmp_path / "x.svg"
    run("graph", "x", "--svg", str(svg), root=root)
    texts = [t.text or "" for t in ET.parse(svg).getroot().iter("{http://www.w3.org/2000/svg}text")]
    assert any("<b>&[red]title[/red]" in t for t in texts)


def test_small_documents_read_as_key_value_lines(tmp_path):
    root = tmp_path / "store"
    with Store.open(root) as store:
        store.commit({"write_id": "y1", "session": "y", "events": [{"type": "session/started"}]})
    assert run("alias", "why", "y", root=root).stdout.startswith("alias why → y (committed, tx ")
    status = run("index", "status", root=root).stdout
    fits(status)
    assert not status.lstrip().startswith("{")
    assert line_with(status, "lag").split()[0] == "lag" and line_with(status, "watermark")


def test_a_long_line_of_heads_is_summarised_in_view_and_drawn_whole_in_graph(tmp_path):
    root = tmp_path / "store"
    writes = [{"write_id": "l0", "session": "l", "events": [{"type": "session/started", "title": "long"}]}]
    for i in range(1, 41):
        writes.append({"write_id": f"l{i}", "session": "l", "events": [
            {"type": "message/added", "role": "user", "content": f"step {i}"},
            {"type": "head/created", "head_id": f"l-h{i}", "expected_head": f"l-h{i - 1}" if i > 1 else None}]})
    with Store.open(root) as store:
        store.commit_many(writes)
    view = run("view", "l", root=root).stdout
    fits(view)
    assert "… 37 more heads (l-h2 … l-h38)" in view and "◀ current" in head_line(view, "l-h40")
    assert len(view.splitlines()) < 70
    drawn = run("graph", "l", root=root).stdout
    for i in range(1, 41):
        head_line(drawn, f"l-h{i}")
