"""`sessiondb delete` and `sessiondb tombstones`, run as a user runs them (real subprocesses, real store)."""

from __future__ import annotations

import json
import subprocess

import pytest
from helpers import run_cli as run

from sessiondb.ops.demo import agent_session, fork_and_invoke
from sessiondb.store import SessionDeletedError, Store


@pytest.fixture
def root(tmp_path):
    with Store.open(tmp_path / "store") as store:
        for w in [*agent_session("a0", turns=3), *fork_and_invoke("a0", "a0-fork", "a0-child"),
                  *agent_session("lone", turns=2)]:
            store.commit(w)
    return tmp_path / "store"


def one_line_error(done: subprocess.CompletedProcess, *words: str) -> None:
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_dry_run_shows_what_would_go_and_changes_nothing(root):
    before = (root / "store.sqlite").read_bytes()
    done = run("delete", "lone", "--dry-run", "--json", root=root)
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert plan["status"] == "dry-run" and plan["counts"]["messages"] > 0 and plan["bytes_freed"] > 0
    assert (root / "store.sqlite").read_bytes() == before
    text = run("delete", "lone", "--dry-run", root=root)
    assert text.returncode == 0 and text.stdout.startswith("would delete lone (plain):")


def test_delete_then_the_session_reads_as_deleted(root):
    done = run("delete", "lone", "--reason", "user request", root=root)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("deleted lone (plain):")
    one_line_error(run("view", "lone", root=root), "lone", "was deleted")
    one_line_error(run("delete", "lone", root=root), "was deleted")
    stones = json.loads(run("tombstones", "--json", root=root).stdout)
    assert [(t["session_id"], t["reason"]) for t in stones] == [("lone", "user request")]
    assert run("tombstones", "lone", root=root).returncode == 0
    one_line_error(run("tombstones", "a0", root=root), "never deleted")
    with Store.open(root, readonly=True) as store, pytest.raises(SessionDeletedError):
        store.view("lone")


def test_dependants_are_refused_in_one_line_unless_cascade_or_detach(root):
    one_line_error(run("delete", "a0", root=root), "a0-fork", "cascade", "detach")
    one_line_error(run("delete", "a0", "--cascade", "--detach", root=root), "not both")
    one_line_error(run("delete", "nobody", root=root), "nobody", "not found")
    with Store.open(root, readonly=True) as store:
        fork_view = store.view("a0-fork")
    done = run("delete", "a0", "--detach", "--json", root=root)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["mode"] == "detach"
    with Store.open(root, readonly=True) as store:
        assert store.view("a0-fork") == fork_view
    done = run("delete", "a0-fork", "--cascade", "--json", root=root)
    assert done.returncode == 0, done.stderr
    assert "a0-fork" in json.loads(done.stdout)["deleted"]
    assert run("check", root=root).returncode == 0
