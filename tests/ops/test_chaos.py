"""The chaos run (ops/bench/chaos.py) for about a minute: kills of the writer, standby, indexer,
scanner and Redis under load from producers that never resend; every invariant must hold."""

from __future__ import annotations

import os
import subprocess
import sys


def test_a_minute_of_chaos_loses_nothing_and_applies_nothing_twice(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONDB_")}
    done = subprocess.run([sys.executable, "-m", "sessiondb.ops.bench.chaos", "--minutes", "1", "--seed", "3",
                           "--resend", "off", "--dir", str(tmp_path / "run")], env=env, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("chaos: ok") and " 0 lost, 0 applied twice, 0 out of order" in last, done.stdout
    assert '"committed_receipts": 0' not in done.stdout  # writes really flowed
