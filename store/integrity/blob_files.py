"""What is on disk in the blob tree: listing `blobs/` and sorting each entry into a kind.

A blob file lives at `blobs/<2 hex>/<2 hex>/<64 hex>` and its name starts with its two
directories; a blob write in progress leaves `<final>.tmp-<8 hex>` next to it. Everything
else is misnamed. This module lists one top-level directory at a time (so memory stays
bounded and a partition walks only its own directories) and never opens, hashes, moves
or deletes a file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from ..blobs.disk import TEMP_MARK

_BLOB = re.compile(r"^[0-9a-f]{64}$")
_TEMP = re.compile(r"^([0-9a-f]{64})" + re.escape(TEMP_MARK) + r"[0-9a-f]{8}$")
_DIR = re.compile(r"^[0-9a-f]{2}$")


@dataclass
class Listing:
    """The entries of one top-level directory (or of blobs/ itself, for `bad` at the top)."""

    blobs: dict[str, str] = field(default_factory=dict)  # hexdigest -> path
    temps: list[tuple[str, str]] = field(default_factory=list)  # (hexdigest of the final name, path)
    bad: list[tuple[str, str, str]] = field(default_factory=list)  # (place, path, why)


def top_dirs(blob_dir: str) -> tuple[list[str], Listing]:
    """The valid top-level directory names (sorted), and a listing of misnamed top-level entries."""
    names: list[str] = []
    top = Listing()
    with os.scandir(blob_dir) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False) and _DIR.match(entry.name):
                names.append(entry.name)
            else:
                top.bad.append(("", entry.path, _why_bad(entry, "a directory named by 2 hex digits")))
    return sorted(names), top


def list_top(blob_dir: str, top: str) -> Listing:
    """Every entry under blobs/<top>/, sorted into blobs, temp files and misnamed entries.

    Leaf directories are read with `os.listdir` (names only: the cheapest listing there is,
    and a full scan lists ~65,000 of them). So an entry named like a blob is taken to be a
    file; if it is a directory, reading it fails and the scan reports it as unreadable."""
    listing = Listing()
    try:
        seconds = sorted(os.scandir(os.path.join(blob_dir, top)), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return listing
    for second in seconds:
        if not (second.is_dir(follow_symlinks=False) and _DIR.match(second.name)):
            listing.bad.append((top, second.path, _why_bad(second, "a directory named by 2 hex digits")))
            continue
        place = top + second.name
        leaf = second.path
        try:
            names = os.listdir(leaf)
        except FileNotFoundError:  # removed while we looked
            continue
        blobs = listing.blobs
        for name in names:
            if len(name) == 64 and name.startswith(place) and _BLOB.match(name):
                blobs[name] = f"{leaf}/{name}"
            elif _BLOB.match(name):
                listing.bad.append((place, f"{leaf}/{name}", f"a blob name in the wrong directory (belongs in "
                                                             f"{name[:2]}/{name[2:4]}/)"))
            elif (temp := _TEMP.match(name)) and temp[1].startswith(place):
                listing.temps.append((temp[1], f"{leaf}/{name}"))
            else:
                listing.bad.append((place, f"{leaf}/{name}", "not a blob name (64 lower-case hex digits)"))
    return listing


def _why_bad(entry: os.DirEntry[str], expected: str) -> str:
    if entry.is_symlink():
        return f"a symbolic link where {expected} belongs"
    kind = "directory" if entry.is_dir(follow_symlinks=False) else "file"
    return f"a {kind} where {expected} belongs"
