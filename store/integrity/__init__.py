"""Integrity of a store root (docs/spec.md, Integrity): blob scans, consistency checks, and their reports.

    from sessiondb.store.integrity import scan_blobs, check_consistency, last_reports
    report = scan_blobs(store, full=True)      # re-hash blobs; quarantine corrupt files
    report = check_consistency(store)          # rows vs blobs vs heads (vs the index, when given)
    report.ok, report.as_dict()

Owns finding problems and reporting them. It never repairs canonical rows: the only changes
it makes are moving corrupt blob files to quarantine/ (and marking their blob row), deleting
orphans when asked to, and its own history and progress tables. Never imports Celery.
"""

from .blob_scan import DEFAULT_GRACE_SECONDS, DEFAULT_PERIOD_SECONDS, Progress, scan_blobs
from .consistency import IndexProbe, check_consistency
from .findings import TYPES, Finding, Report
from .partition import Partition
from .reports import last_reports, save_report

__all__ = [
    "DEFAULT_GRACE_SECONDS",
    "DEFAULT_PERIOD_SECONDS",
    "TYPES",
    "Finding",
    "IndexProbe",
    "Partition",
    "Progress",
    "Report",
    "check_consistency",
    "last_reports",
    "save_report",
    "scan_blobs",
]
