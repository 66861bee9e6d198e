"""The API reference (docs/api.md) builds from the docstrings, without a warning.

Runs the very pdoc command that docs/api.md gives, into a temporary directory, and checks
that the pages name the public calls. The public methods of `Store`, `SessionClient` and
`WriteHandle` must have docstrings, or the reference would list them bare.
"""

from __future__ import annotations

import inspect
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from sessiondb import Store
from sessiondb.tasks import SessionClient, WriteHandle

REPO = Path(__file__).resolve().parents[1]


def build_command() -> list[str]:
    """The pdoc command of docs/api.md's shell block."""
    text = (REPO / "docs" / "api.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```sh\n(.*?)^```", text, flags=re.M | re.S)
    lines = [line for block in blocks for line in block.splitlines() if " -m pdoc " in line]
    assert len(lines) == 1, f"docs/api.md should give one pdoc command, found {lines}"
    argv = shlex.split(lines[0])
    assert argv[1:3] == ["-m", "pdoc"] and "-o" in argv, argv
    return argv


def test_the_reference_builds_without_warnings(tmp_path: Path) -> None:
    pytest.importorskip("pdoc")
    argv = build_command()
    out = argv.index("-o") + 1
    assert argv[out] == "docs/_build/api"
    argv[0], argv[out] = sys.executable, str(tmp_path / "api")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONDB_")}
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert not done.stderr.strip(), f"pdoc warned:\n{done.stderr}"
    page = (tmp_path / "api" / "sessiondb.html").read_text(encoding="utf-8")
    for name in ("Store.open", "Store.commit", "Store.commit_many", "Store.view", "Store.history_view",
                 "SessionClient.write", "SessionClient.view"):
        assert f'id="{name}"' in page, f"the reference does not document {name}"
    assert 'id="WriteHandle.receipt"' in (tmp_path / "api" / "sessiondb" / "tasks.html").read_text(encoding="utf-8")
    assert "compare-and-set" in page  # the docstrings themselves, not only the signatures
    for module in ("sessiondb/store/datalog.html", "sessiondb/store/index.html", "sessiondb/store/integrity.html"):
        assert (tmp_path / "api" / module).is_file(), module
    assert not list((tmp_path / "api").rglob("bench*")), "benchmarks are development tools, not API"


@pytest.mark.parametrize("cls", [Store, SessionClient, WriteHandle], ids=lambda c: c.__name__)
def test_public_methods_have_docstrings(cls: type) -> None:
    assert inspect.getdoc(cls), f"{cls.__name__} has no docstring"
    bare = [name for name, member in vars(cls).items()
            if not name.startswith("_") and callable(getattr(cls, name)) and not inspect.getdoc(member)]
    assert not bare, f"{cls.__name__}: public methods without a docstring: {bare}"


def test_every_error_a_store_call_can_raise_is_importable_from_sessiondb() -> None:
    """A user catches what `Store` raises with `from sessiondb import ...`: every public
    StoreError class of sessiondb.store is there too (WriterLockHeldError was not)."""
    import sessiondb
    import sessiondb.store as store

    errors = {name for name in store.__all__
              if isinstance(getattr(store, name), type) and issubclass(getattr(store, name), store.StoreError)}
    assert errors <= set(sessiondb.__all__), errors - set(sessiondb.__all__)
    assert all(getattr(sessiondb, name) is getattr(store, name) for name in errors)
