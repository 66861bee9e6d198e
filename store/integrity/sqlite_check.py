"""SQLite's own page-level check of the store's databases: `PRAGMA quick_check` / `integrity_check`.

The blob scan and the consistency checks read rows; a database whose pages were overwritten
can look fine to them (the damaged pages hold rows nobody reads) or make them fail with
"database disk image is malformed". So both run SQLite's own check first and report a
damaged database as one typed finding, `sqlite/corrupt`, instead of a traceback.

`quick_check` verifies every page and the b-tree structure (O(N)); `integrity_check` also
verifies that every index matches its table (slower). This module opens its own read-only
connection and never writes.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from .findings import Report

#: the databases of a store root that are checked when they exist
DATABASES = ("store.sqlite", "index.sqlite")
#: how many of SQLite's messages a finding keeps
MAX_MESSAGES = 20


def check_databases(root: str | Path, report: Report, *, full: bool = False) -> bool:
    """Check every database of the root into `report`; False when one is damaged."""
    ok = True
    for name in DATABASES:
        path = Path(root) / name
        if path.exists():
            ok = check_database(path, report, full=full) and ok
    return ok


def check_database(path: Path, report: Report, *, full: bool = False) -> bool:
    """Run quick_check (or integrity_check when `full`) on one database; False when it is damaged."""
    pragma = "integrity_check" if full else "quick_check"
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            conn.execute("PRAGMA busy_timeout=10000")
            messages = [row[0] for row in conn.execute(f"PRAGMA {pragma}({MAX_MESSAGES})")]
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:  # not a database at all, or a header SQLite cannot read
        messages = [str(exc)]
    report.count(f"sqlite_{pragma}")
    if messages == ["ok"]:
        return True
    report.add("sqlite/corrupt", f"{path.name}: SQLite's {pragma} failed: {messages[0]}"
               + (f" (+{len(messages) - 1} more)" if len(messages) > 1 else ""),
               database=path.name, path=str(path), check=pragma, messages=messages)
    return False
