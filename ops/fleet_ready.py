"""Is the fleet up? The probes `sessiondb up` waits on before it says "running", and the
words for a child that exited.

Ready means: the writer process holds `<root>/writer.lock` (its pid is in the file and
the flock is held), every worker has answered a Celery ping by its node name (a worker
answers only once its consumer runs, i.e. after every bootstep, the writer's lock step
included), and Flower answers HTTP (any status: 401 with basic auth is an answer). Owns
only these probes; it must never start or stop a process, nor touch the store's data.
"""

from __future__ import annotations

import re
import signal
import urllib.error
import urllib.request
from pathlib import Path

from celery import Celery

from sessiondb.store.writer_lock import LOCK_FILE, holder_pid, is_locked

#: the line a Python traceback ends with ("ValueError: ..."), or a logged error / CLI error line
_EXCEPTION_LINE = re.compile(r"^[\w.]*(Error|Exception|Exit|Interrupt)\b.*:")
_ERROR_LINE = re.compile(r"\b(ERROR|CRITICAL)\b|^error:|Traceback|Unrecoverable", re.IGNORECASE)


def last_error_line(log_path: Path, offset: int = 0) -> str:
    """The most telling line a process wrote to its log since `offset`: the last exception line,
    else the last error line, else the last line; "" for an empty log."""
    try:
        with open(log_path, "rb") as log:
            log.seek(offset)
            text = log.read()[-65536:].decode(errors="replace")
    except OSError:
        return ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for pattern in (_EXCEPTION_LINE, _ERROR_LINE):
        for line in reversed(lines):
            if pattern.search(line):
                return line
    return lines[-1] if lines else ""


def describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "is running"
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with code {returncode}"


def writer_holds_lock(root: Path, writer_pid: int) -> bool:
    """The process `writer_pid` holds the writer lock of `root` right now."""
    return holder_pid(root) == writer_pid and is_locked(root / LOCK_FILE)


def unanswered_pings(app: Celery, names: set[str], timeout: float = 1.0) -> set[str]:
    """Which of the worker node `names` do not answer a ping within `timeout` s."""
    if not names:
        return set()
    try:
        replies = app.control.ping(destination=sorted(names), timeout=timeout) or []
    except Exception:  # noqa: BLE001 - broker trouble: nobody answered, and the next round tries again
        return set(names)
    answered = {name for reply in replies for name in reply}
    return names - answered


def http_answers(url: str, timeout: float = 1.0) -> bool:
    try:
        urllib.request.urlopen(url, timeout=timeout).close()
    except urllib.error.HTTPError:
        return True  # it answers (e.g. 401 with basic auth)
    except OSError:
        return False
    return True
