"""How expensive creating a file is right now, so that a benchmark's figures can be read.

On a file system without a journal (ext4 here), creating files is 5-15x slower for minutes
after many files were deleted (docs/benchmarks.md). Benchmarks print this probe first.
It only creates files, inside the benchmark's own directory, and never deletes any.
"""

from __future__ import annotations

import os
import time

FILES = 1000
SLOW_US = 100.0  # a settled file system here: ~25-40 us per new file


def file_create_us(base: str) -> float:
    """Microseconds per new empty file, over FILES files in a new directory under `base`."""
    probe = os.path.join(base, "fs-probe")
    os.makedirs(probe, exist_ok=True)
    start = time.perf_counter()
    for i in range(FILES):
        os.close(os.open(os.path.join(probe, str(i)), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    return (time.perf_counter() - start) / FILES * 1e6


def report(base: str) -> str:
    us = file_create_us(base)
    verdict = ("settled" if us < SLOW_US else
               "SLOW: files were deleted recently, so expect lower figures (docs/benchmarks.md)")
    return f"file system          : {us:.0f} us per new file ({verdict})"
