"""Looking at processes and servers from a test: a clean environment, a process tree, HTTP."""

from __future__ import annotations

import base64
import os
import urllib.error
import urllib.request
from pathlib import Path


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without any SESSIONDB_* variable, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONDB_")}
    env.update(extra)
    return env


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (children, their children, ...)."""
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        for child in Path("/proc").glob(f"{parent}/task/*/children"):
            for text in child.read_text().split():
                found.add(int(text))
                todo.append(int(text))
    return found


def alive(pid: int) -> bool:
    """Is `pid` running (a zombie is not)?"""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def http(url: str, auth: str | None = None) -> tuple[int, bytes]:
    """GET `url` (with basic auth `user:password`): (status, body)."""
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""
