"""The documentation stands on its own: it points only inside the repository.

README.md, docs/*.md and the module docstrings never refer to a spec outside the repository
or to runs and notes a reader cannot see, and every relative link (file and `#anchor`) in
the Markdown resolves.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SOURCES = sorted(p for folder in ("sessiondb", "store", "tasks", "workers", "ops", "tests")
                 for p in (REPO / folder).rglob("*.py") if "node_modules" not in p.parts)

# "SPEC §n" and ../shared/SPEC.md (an upper-case SPEC only: docs/spec.md is ours), unseen runs and notes
OUTSIDE = re.compile(r"\.\./shared|\bSPEC\b|(?i:this workplace|this machine|earlier notes|\bsession [0-9]+\b)")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def test_docs_exist() -> None:
    assert (REPO / "docs" / "spec.md").is_file()
    assert (REPO / "docs" / "api.md").is_file()


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_markdown_points_inside_the_repository(path: Path) -> None:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        match = OUTSIDE.search(line)
        assert match is None, f"{path.name}:{number}: refers to something a reader cannot see: {match.group(0)!r}"


def test_module_docstrings_point_inside_the_repository() -> None:
    found = []
    for path in SOURCES:
        docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        for match in OUTSIDE.finditer(docstring):
            found.append(f"{path.relative_to(REPO)}: {match.group(0)!r}")
    assert not found, found


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as dashes."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {slug(line.lstrip("#")) for line in path.read_text(encoding="utf-8").splitlines()
            if re.match(r"^#{1,6} ", line)}


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_links_resolve(path: Path) -> None:
    for target in LINK.findall(path.read_text(encoding="utf-8")):
        if re.match(r"^[a-z]+:", target):
            continue  # http(s), mailto: not checked here
        file, _, anchor = target.partition("#")
        linked = (path.parent / file).resolve() if file else path
        assert linked.exists(), f"{path.name}: link to {target!r}: no such file"
        if anchor:
            assert linked.suffix == ".md" and anchor in anchors(linked), f"{path.name}: no heading for {target!r}"
