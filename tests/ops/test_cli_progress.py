"""`write --wait` and `demo` through a real fleet: a progress bar on stderr (on a terminal),
then a summary that counts committed, duplicate and rejected writes apart."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from sessiondb.ops.fleet_demo import outcome, planned_writes
from sessiondb.ops.render import tally_line
from sessiondb.store import receipt_counts

CLI = [sys.executable, "-m", "sessiondb.ops.cli"]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def plain(data: bytes) -> str:
    return ANSI.sub("", data.decode())


def test_tally_counts_duplicates_apart_from_committed():
    receipts = [{"status": "committed"}, {"status": "committed", "duplicate": True, "tx_id": 4},
                {"status": "committed", "duplicate": True}, {"status": "rejected", "error": {"message": "no"}}]
    counts = receipt_counts(receipts)
    assert counts == {"committed": 1, "duplicate": 2, "rejected": 1}
    assert tally_line(counts) == "4 writes: 1 committed, 2 duplicate, 1 rejected"
    result = outcome("agent-0", receipts, 1.5)
    assert (result["writes"], result["committed"], result["duplicate"], result["rejected"]) == (4, 1, 2, 1)
    assert result["errors"] == ["no"]


def writes_file(tmp_path):
    path = tmp_path / "writes.jsonl"
    lines = [{"write_id": "p-start", "session": "p", "events": [{"type": "session/started"}]},
             {"write_id": "p-1", "session": "p", "events": [{"type": "message/added", "role": "user", "content": "a"}]},
             {"write_id": "p-2", "session": "p", "events": [{"type": "message/added", "role": "nobody"}]}]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return path


def test_write_wait_summary_is_one_line_and_the_bar_stays_on_stderr(fleet, tmp_path):
    fleet.writer()
    path = writes_file(tmp_path)
    env = dict(fleet.env, COLUMNS="80", TTY_COMPATIBLE="1")  # as on a terminal: the bar is drawn
    done = subprocess.run([*CLI, "write", str(path), "--wait"], env=env, capture_output=True, timeout=180)
    assert done.returncode == 1  # one write was rejected
    stdout, stderr = plain(done.stdout), plain(done.stderr)
    assert stdout.strip() == "3 writes: 2 committed, 0 duplicate, 1 rejected"
    assert "waiting for receipts" in stderr and "enqueuing" in stderr
    assert "waiting for receipts" not in stdout
    assert stderr.strip().splitlines()[-1].startswith("rejected p-2:")  # after the bar, on its own line
    # the same file again: nothing new is written; however the receipts mark it, the counts add up
    again = subprocess.run([*CLI, "write", str(path), "--wait"], env=fleet.env, capture_output=True, timeout=180)
    counts = re.fullmatch(r"3 writes: (\d+) committed, (\d+) duplicate, 1 rejected", again.stdout.decode().strip())
    assert counts and int(counts[1]) + int(counts[2]) == 2
    assert again.stderr.decode().count("\n") == 1  # on a pipe: no bar, only the rejection


def test_write_without_wait_says_how_many_were_enqueued(fleet, tmp_path):
    fleet.writer()
    done = subprocess.run([*CLI, "write", str(writes_file(tmp_path))], env=fleet.env, capture_output=True,
                          timeout=180)
    assert done.returncode == 0 and done.stdout.decode().startswith("3 writes enqueued")


def test_demo_draws_a_bar_then_a_summary_counting_committed_writes(fleet):
    fleet.writer()
    total = planned_writes(1, 2)
    env = dict(fleet.env, COLUMNS="80", TTY_COMPATIBLE="1")
    done = subprocess.run([*CLI, "demo", "--agents", "1", "--turns", "2"], env=env, capture_output=True, timeout=300)
    assert done.returncode == 0, plain(done.stderr)
    stdout, stderr = plain(done.stdout), plain(done.stderr)
    assert "demo writes" in stderr and "demo writes" not in stdout
    flat = " ".join(stdout.split())
    assert f"{total} writes from 1 producer processes via the fleet: {total} committed" in flat
    assert all(len(line.rstrip()) <= 80 for line in stdout.splitlines())
    # run twice: nothing new is written; committed and duplicate still add up to every write sent
    again = subprocess.run([*CLI, "demo", "--agents", "1", "--turns", "2"], env=fleet.env, capture_output=True,
                           timeout=300)
    assert again.returncode == 0, again.stderr.decode()
    flat = " ".join(again.stdout.decode().split())
    found = re.search(r"(\d+) writes from 1 producer processes via the fleet: (\d+) committed"
                      r"(?:, (\d+) duplicate)?", flat)
    assert found and int(found[1]) == total == int(found[2]) + int(found[3] or 0)
