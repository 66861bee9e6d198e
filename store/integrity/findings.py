"""Typed integrity findings and the `Report` that carries them.

Owns the catalogue of finding types (`TYPES`: name -> severity and what it means), the
`Finding` record and the `Report` a scan or check returns. Pure data: this module never
reads or writes the store, and never decides *whether* something is wrong — the scans and
checks do; they describe what they found here.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["error", "warning"]

#: every finding type: (severity, one line saying what it means). docs/integrity.md says what to do.
TYPES: dict[str, tuple[Severity, str]] = {
    "blob/missing": ("error", "a blob row or a row's *_blob column names a blob that has no file"),
    "blob/hash-mismatch": ("error", "a blob file's bytes no longer hash to its name (moved to quarantine/)"),
    "blob/size-mismatch": ("error", "a blob file's size differs from the size its row records"),
    "blob/quarantined": ("error", "a blob was quarantined earlier and no write has restored it yet"),
    "blob/unreadable": ("error", "a blob file exists but cannot be read (permissions, I/O error)"),
    "blob/not-a-file": ("error", "a blob's name holds a symbolic link or other non-regular file (moved to"
                                 " quarantine; writing the same content again restores it)"),
    "blob/orphan": ("warning", "a blob file that no row references, older than the grace period"),
    "blob/temp-leftover": ("warning", "a temp file of an interrupted blob write, older than the grace period"),
    "blob/bad-name": ("warning", "a file or directory in the blob tree whose name or place is not a blob's"),
    "sqlite/corrupt": ("error", "SQLite's own check (quick_check / integrity_check) found damaged pages or"
                                " b-trees in store.sqlite or index.sqlite"),
    "head/state-unreadable": ("error", "a head's state blob is missing, corrupt or not a head state"),
    "head/state-mismatch": ("error", "a head's state blob disagrees with its head row or its session's events"),
    "ref/dangling": ("error", "a row points at a session, head, row or blob that does not exist"),
    "counter/below-used": ("error", "a high-water counter is below the highest id already used"),
    "index/lag": ("warning", "the Datalog index is behind the store's transaction log"),
    "index/mismatch": ("error", "the Datalog index disagrees with a replay of the transaction batches"),
    "forget/left-behind": ("error", "a deleted session (tombstone) left rows, tx facts, index facts or payloads"
                                    " it alone referenced behind"),
    "transcript/unpaired-call": ("warning", "a final turn holds a tool call without its result, or a result"
                                            " without its call"),
}


@dataclass(frozen=True)
class Finding:
    """One problem: its type (a key of TYPES), a one-line message, and the data to act on."""

    type: str
    message: str
    data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError(f"unknown finding type {self.type!r}")

    @property
    def severity(self) -> Severity:
        return TYPES[self.type][0]

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type, "severity": self.severity, "message": self.message, "data": self.data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        return cls(data["type"], data["message"], dict(data.get("data") or {}))


@dataclass
class Report:
    """What one scan or check found. `ok` is False when any finding is an error.

    `kind` is `blob-scan/full`, `blob-scan/incremental` or `consistency`; `status` is
    `completed` or `interrupted`; `counts` holds the work done (blobs hashed, bytes, ...)."""

    kind: str
    started_at: str
    finished_at: str | None = None
    status: str = "completed"
    partition: str = "all"
    findings: list[Finding] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    report_id: int | None = None

    @property
    def ok(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    def by_type(self) -> dict[str, int]:
        return dict(sorted(Counter(f.type for f in self.findings).items()))

    def of_type(self, finding_type: str) -> list[Finding]:
        return [f for f in self.findings if f.type == finding_type]

    def add(self, finding_type: str, message: str, /, **data: Any) -> Finding:
        finding = Finding(finding_type, message, data)
        self.findings.append(finding)
        return finding

    def count(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able data: a task result, the CLI's --json output, a history row."""
        return {
            "report_id": self.report_id,
            "kind": self.kind,
            "status": self.status,
            "partition": self.partition,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "ok": self.ok,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "by_type": self.by_type(),
            "counts": dict(self.counts),
            "findings": [f.as_dict() for f in self.findings],
        }
