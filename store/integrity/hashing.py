"""Re-hashing one blob file with blake3: does it still hash to its name, at its recorded size?

Owns reading a blob file cheaply and safely: a first read of exactly the recorded size plus
one byte (one syscall; a regular file only reads short at its end, so that alone tells a
wrong size), or a careful read of the whole file for the re-read of a suspect. This module
never moves, deletes or marks anything: it only reads and reports.
"""

from __future__ import annotations

import errno
import os
from typing import NamedTuple

import blake3

#: the error of a blob name that holds a symbolic link (never followed: its target is outside the blob tree)
NOT_A_FILE = "not a regular file"
#: files at least this big are hashed with several threads each (blake3's own parallelism)
BIG_FILE = 4 * 1024 * 1024


class Hashed(NamedTuple):
    """The outcome of reading one blob file: its digest and size, or why it could not be read.

    (A named tuple: the scan makes one per blob, and it is the cheapest record to build.)"""

    hexdigest: str | None
    size: int
    error: str | None = None  # "missing", NOT_A_FILE or "unreadable: ..."

    @property
    def missing(self) -> bool:
        return self.error == "missing"


def hash_file(path: str, expected_size: int | None = None) -> Hashed:
    """Read and hash one file: at most `expected_size` + 1 bytes when given, else all of it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return Hashed(None, -1, "missing")
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a symbolic link at the blob's name
            return Hashed(None, -1, NOT_A_FILE)
        return Hashed(None, -1, f"unreadable: {exc.strerror}")
    try:
        if expected_size is not None:
            data = os.read(fd, expected_size + 1)
        else:
            with os.fdopen(os.dup(fd), "rb", buffering=0) as f:
                data = f.readall()
    except OSError as exc:
        return Hashed(None, -1, f"unreadable: {exc.strerror}")
    finally:
        os.close(fd)
    threads = blake3.blake3.AUTO if len(data) >= BIG_FILE else 1
    return Hashed(blake3.blake3(data, max_threads=threads).hexdigest(), len(data))
