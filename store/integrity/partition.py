"""Which part of the blob space one scanner owns: a set of hash prefixes.

Scanner workers split the blob space by the first hex digits of blob ids. A `Partition`
is built from `prefixes` (e.g. ["0", "1a"]) or from `partition="i/n"` (the i-th of n equal
slices of the 256 first-byte directories), and answers: does a blob id belong to me, which
top-level directories do I walk, which SQL ranges of `blobs.blob_id` are mine, and which
partition reports a misnamed file found at a given place (exactly one does). Pure logic;
no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, or_, true

_HEX = re.compile(r"^[0-9a-f]{1,4}$")
_SPEC = re.compile(r"^(\d+)/(\d+)$")
PREFIX_DIGITS = 4  # prefixes are at most 4 hex digits: the two directory levels


@dataclass(frozen=True)
class Partition:
    prefixes: tuple[str, ...]  # sorted, lower-case hex; () means the whole space
    name: str = "all"

    @classmethod
    def of(cls, prefixes: Iterable[str] | None = None, partition: str | None = None) -> Partition:
        """Build from explicit `prefixes`, from `partition="i/n"`, or the whole space when both are None."""
        if prefixes is not None and partition is not None:
            raise ValueError("give either prefixes or partition, not both")
        if partition is not None and partition != "all":
            match = _SPEC.match(partition)
            if not match or not 0 <= int(match[1]) < int(match[2]) <= 256:
                raise ValueError(f"partition must look like 'i/n' with 0 <= i < n <= 256, not {partition!r}")
            i, n = int(match[1]), int(match[2])
            chosen = tuple(f"{b:02x}" for b in range(256 * i // n, 256 * (i + 1) // n))
            return cls(chosen, partition)
        if prefixes is None:
            return cls((), "all")
        cleaned = sorted({p.lower() for p in prefixes})
        for p in cleaned:
            if not _HEX.match(p):
                raise ValueError(f"a blob prefix is 1 to {PREFIX_DIGITS} hex digits, not {p!r}")
        if not cleaned:
            raise ValueError("prefixes is empty: a scanner must own at least one prefix")
        return cls(tuple(cleaned), ",".join(cleaned))

    @property
    def whole(self) -> bool:
        return not self.prefixes

    def owns(self, hexdigest: str) -> bool:
        return self.whole or hexdigest.startswith(self.prefixes)

    def owns_dir(self, top: str) -> bool:
        """Might files under blobs/<top>/ belong to this partition?"""
        return self.whole or any(p[:2] == top[: len(p[:2])] for p in self.prefixes)

    def reports_misnamed(self, place: str) -> bool:
        """Is this the one partition that reports a misnamed entry found under hex path `place`?

        `place` is the hex of the directories above the entry ("" at blobs/, "ab" in
        blobs/ab/, "abcd" in blobs/ab/cd/); the owner is the partition owning place + "0000"."""
        return self.owns((place + "0000")[:PREFIX_DIGITS])

    def ranges(self) -> list[tuple[str, str]]:
        """Merged [lo, hi) ranges of blob ids, for SQL."""
        spans: list[list[int]] = []
        for p in self.prefixes:
            lo = int(p.ljust(PREFIX_DIGITS, "0"), 16)
            hi = int(p.ljust(PREFIX_DIGITS, "f"), 16)
            if spans and lo <= spans[-1][1] + 1:
                spans[-1][1] = max(spans[-1][1], hi)
            else:
                spans.append([lo, hi])
        # 'g' sorts after every hex digit, so "<hi>g" bounds every id starting with <hi>
        return [(f"blake3:{lo:04x}", f"blake3:{hi:04x}g") for lo, hi in spans]

    def where(self, column: ColumnElement[str]) -> ColumnElement[bool]:
        """A SQL condition: `column` (a blob id) is in this partition."""
        if self.whole:
            return true()
        return or_(*[and_(column >= lo, column < hi) for lo, hi in self.ranges()])
