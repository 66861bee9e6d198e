"""Every code example in README.md and docs/*.md runs as written.

Each document's examples run in order, in one namespace per document, with a fresh
temporary directory as the working directory (so `Store.open("var/store")` lands there) and
no `SESSIONDB_*` variables from the caller's environment. What runs:

- ```python blocks, always (unless marked `skip`);
- ```sh blocks marked `<!-- example: cli -->`: every line is a `sessiondb ...` command,
  run as a subprocess in the same directory, and must exit 0;
- ```clojure blocks marked `<!-- example: rules -->` (kept as the `%` input) or
  `<!-- example: query [%] [ARG ...] -->`: the query runs against the index of the store
  root named by the document's variable `root` (default `var/store`), caught up first;
  `%` stands for the last rules block and every other ARG is a string.

A block is marked by an HTML comment on the line(s) just before its fence:

- `<!-- example: needs-fleet -->`: the document's examples run against a real fleet (a
  redis-server on a free port, a writer and a reader worker on `var/store`), passed in
  through `SESSIONDB_BROKER_URL` and `SESSIONDB_ROOT`;
- `<!-- example: skip: REASON -->`: not run; the reason is required.

A ```python or ```sh block must either run or be skipped with a reason.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from fleet_fixtures import Fleet, redis_server, wait_until  # noqa: F401 - redis_server is a fixture

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

FENCE = re.compile(r"^```([\w-]*)\s*$")
MARKER = re.compile(r"^<!--\s*example:\s*(.*?)\s*-->\s*$")
CODE_LANGS = {"python", "sh", "shell", "bash", "console"}
SHELL_LANGS = CODE_LANGS - {"python"}


@dataclass
class Block:
    doc: str
    line: int  # of the opening fence, 1-based
    lang: str
    code: str
    markers: list[str]

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"

    def marker(self, name: str) -> str | None:
        """The text after `name` of the block's marker `name[: ...]`, or None when it has none."""
        for marker in self.markers:
            match = re.match(r"^([\w-]+)\s*:?\s*(.*)$", marker)
            if match and match.group(1) == name:
                return match.group(2).strip()
        return None

    @property
    def skipped(self) -> bool:
        return self.marker("skip") is not None


def blocks_of(path: Path) -> list[Block]:
    blocks: list[Block] = []
    markers: list[str] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        marker = MARKER.match(line)
        fence = FENCE.match(line)
        if marker:
            markers.append(marker.group(1))
        elif fence:
            start, body = i, []
            i += 1
            while i < len(lines) and lines[i].rstrip() != "```":
                body.append(lines[i])
                i += 1
            blocks.append(Block(path.name, start + 1, fence.group(1).lower(), "\n".join(body) + "\n", markers))
            markers = []
        elif line.strip():
            markers = []
        i += 1
    return blocks


def needs_fleet(blocks: list[Block]) -> bool:
    return any(b.marker("needs-fleet") is not None for b in blocks if not b.skipped)


# -- the checks that need nothing but the files ---------------------------------------------


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_every_example_runs_or_says_why_not(path: Path) -> None:
    for block in blocks_of(path):
        if block.skipped:
            assert block.marker("skip"), f"{block.where}: `skip` needs a reason: <!-- example: skip: WHY -->"
            continue
        if block.lang == "python":
            compile(block.code, block.where, "exec")
        elif block.lang in SHELL_LANGS:
            assert block.marker("cli") is not None, (
                f"{block.where}: a shell example either runs (<!-- example: cli -->: one `sessiondb` command a line)"
                " or says why it does not (<!-- example: skip: WHY -->)")


def test_the_parser_sees_markers_and_blocks() -> None:
    blocks = blocks_of(REPO / "README.md")
    assert any(b.lang == "python" and b.marker("needs-fleet") is not None for b in blocks)
    assert all(b.code.strip() for b in blocks)


# -- running them ---------------------------------------------------------------------------


def cli_commands(block: Block) -> list[list[str]]:
    commands = []
    for number, line in enumerate(block.code.splitlines()):
        words = shlex.split(line, comments=True)
        if not words:
            continue
        assert words[0] == "sessiondb", f"{block.doc}:{block.line + 1 + number}: not a sessiondb command: {line}"
        commands.append(words[1:])
    return commands


def run_cli(block: Block, cwd: Path, env: dict[str, str]) -> None:
    for args in cli_commands(block):
        done = subprocess.run([sys.executable, "-m", "sessiondb.ops.cli", *args], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, (
            f"{block.where}: `sessiondb {shlex.join(args)}` exited {done.returncode}:\n{done.stdout[-2000:]}"
            f"\n{done.stderr[-2000:]}")


def run_query(block: Block, cwd: Path, root: object, rules: str | None) -> None:
    from sessiondb.store.index import Index

    inputs: list[object] = []
    for arg in shlex.split(block.marker("query") or ""):
        if arg == "%":
            assert rules is not None, f"{block.where}: `%` but no <!-- example: rules --> block before it"
            inputs.append(rules)
        else:
            inputs.append(arg)
    with Index.open(cwd / str(root)) as index:
        index.catch_up()
        index.q(block.code, *inputs)


def start_fleet(request: pytest.FixtureRequest, cwd: Path) -> Fleet:
    server = request.getfixturevalue("redis_server")
    logs = cwd.parent / f"{cwd.name}-logs"
    logs.mkdir()
    fleet = Fleet(cwd / "var" / "store", server.url, logs)
    request.addfinalizer(fleet.close)
    fleet.redis.flushall()
    fleet.writer()
    reader = fleet.worker("reader")
    wait_until(lambda: b"ready." in fleet.log(reader), 60, "the reader worker")
    return fleet


def clean_environment(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    import os

    for name in list(os.environ):
        if name.startswith("SESSIONDB_"):
            monkeypatch.delenv(name)
    return dict(os.environ)


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_examples_run(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                      request: pytest.FixtureRequest) -> None:
    blocks = [b for b in blocks_of(path) if not b.skipped]
    runnable = [b for b in blocks if b.lang == "python" or b.marker("cli") is not None
                or b.marker("query") is not None or b.marker("rules") is not None]
    if not runnable:
        pytest.skip(f"{path.name} has no runnable examples")
    cwd = tmp_path / "work"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    env = clean_environment(monkeypatch)
    if needs_fleet(blocks):
        fleet = start_fleet(request, cwd)
        for name, value in (("SESSIONDB_BROKER_URL", fleet.broker_url), ("SESSIONDB_ROOT", str(fleet.root))):
            monkeypatch.setenv(name, value)
            env[name] = value
    namespace: dict[str, object] = {"__name__": f"docs_{path.stem}"}
    rules: str | None = None
    try:
        for block in runnable:
            if block.lang == "python":
                exec(compile(block.code, block.where, "exec"), namespace)  # noqa: S102 - the doc's own example
            elif block.marker("cli") is not None:
                run_cli(block, cwd, env)
            elif block.marker("rules") is not None:
                rules = block.code
            else:
                run_query(block, cwd, namespace.get("root", "var/store"), rules)
    finally:
        close_clients(namespace)


def close_clients(namespace: dict[str, object]) -> None:
    from sessiondb.store import Store
    from sessiondb.tasks import SessionClient

    for value in namespace.values():
        if isinstance(value, SessionClient | Store):
            value.close()
