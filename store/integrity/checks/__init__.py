"""The consistency checks, one module each; `CHECKS` is the table `check_consistency` runs.

Each check reads through one connection (inside the caller's read transaction) and adds
findings to a report. None of them writes.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection

from ...blobs import BlobStore
from ..findings import Report
from . import counters, forgotten, heads, refs, transcript

Check = Callable[[Connection, BlobStore, Report], None]

#: name -> check, in the order they run
CHECKS: dict[str, Check] = {
    "refs": lambda conn, _blobs, report: refs.check(conn, report),
    "heads": heads.check,
    "counters": lambda conn, _blobs, report: counters.check(conn, report),
    "transcript": transcript.check,
    "forgotten": forgotten.check,
}
