"""Private files and directories: everything under a store root is the owner's alone.

The store root, its databases (store.sqlite with its -wal/-shm, the index generations),
blobs, quarantine, lock files, `fleet/` (credentials, broker URL, logs) and the embedded
Redis's AOF are created 0700 (directories) / 0600 (files), whatever the process umask: a
second local user must not read sessions, credentials or logs. SQLite creates a database's
-wal and -shm with the database file's own mode, so a database file created 0600 before
SQLite first opens it (`create_private_file`) keeps its journal private too. Owns only
these modes; it must never read or write a file's content.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700
#: the process umask of sessiondb's commands and of the fleet's children (files they or a
#: library create without an explicit mode: logs, Redis's AOF and RDB files)
UMASK = 0o077


def make_private_dirs(path: str | os.PathLike[str]) -> None:
    """`mkdir -p` with every directory it creates 0700 (the ones that exist are left alone)."""
    path = Path(path)
    if path.is_dir():
        return
    missing = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, DIR_MODE)
        except FileExistsError:
            continue
        os.chmod(directory, DIR_MODE)  # an umask stricter than 077 on the owner is not ours to keep


def make_private_dir(path: str | os.PathLike[str]) -> None:
    """The directory `path` exists (parents created 0700 too) and is 0700, even if it existed."""
    make_private_dirs(path)
    if (os.stat(path).st_mode & 0o777) != DIR_MODE:
        os.chmod(path, DIR_MODE)


def create_private_file(path: str | os.PathLike[str]) -> None:
    """Create `path` empty and 0600 if it does not exist (an existing file is left as it is)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    except FileExistsError:
        return
    os.close(fd)


def restrict_file(path: str | os.PathLike[str]) -> None:
    """An existing regular file (not a symlink) that group or others may access becomes 0600
    (a store created before files were private); anything else is left alone."""
    try:
        st = os.lstat(path)
        if stat.S_ISREG(st.st_mode) and st.st_mode & 0o077:
            os.chmod(path, FILE_MODE)
    except OSError:
        pass  # missing, or not ours to change


def write_private_file(path: str | os.PathLike[str], text: str) -> None:
    """Replace `path` atomically with `text`, 0600 from its first byte (never readable by others,
    not even for an instant, and never half written)."""
    path = Path(path)
    make_private_dirs(path.parent)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, path)


def open_private_append(path: str | os.PathLike[str]) -> int:
    """A descriptor appending to `path` (a log), created 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, FILE_MODE)
    os.fchmod(fd, FILE_MODE)
    return fd


def exposed(root: str | os.PathLike[str]) -> list[str]:
    """Every file or directory under `root` (root included) that group or others may read,
    write or enter, as `mode path` lines; symlinks are skipped (their mode means nothing)."""
    found = []
    for top, _dirs, files in os.walk(root):  # directories are visited as `top` (symlinked ones are not)
        for path in [top, *(os.path.join(top, name) for name in files)]:
            st = os.lstat(path)
            if not stat.S_ISLNK(st.st_mode) and st.st_mode & 0o077:
                found.append(f"{oct(st.st_mode & 0o777)} {path}")
    return sorted(found)
