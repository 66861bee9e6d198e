"""`gc_paused()`: the cyclic garbage collector paused while a burst of acyclic objects is built.

Group commits and views create thousands of plain dicts and lists that hold no reference
cycles; the collector's passes triggered by them (each scanning the whole young heap, and
now and then everything) were a large share of both. Reference counting still frees them;
cycles made meanwhile are collected after. Never holds any other state.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
