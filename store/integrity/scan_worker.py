"""Worker processes for the blob scan, so re-hashing uses every core.

Most blobs are a few KiB: per file, the work is a handful of short system calls and a
short hash, and CPython threads serialize on the GIL around such short calls. So a big
scan hands its units (top-level directories) to forked worker processes. A worker starts
instantly (it inherits the loaded modules), opens its OWN SQLite connection (it never
touches one it inherited), reads one JSON line per unit (the directory name) from its
request pipe and answers with one JSON `UnitResult` line on its result pipe, in order. JSON
only (msgspec), never pickle.

`ProcessUnits` is the scan's side: it forks the workers, deals units to them round-robin
with a few in flight each, yields results in unit order, and ends its workers (by the pids
it forked) however the scan ends. Workers only read (see `unit.py`).
"""

from __future__ import annotations

import os
import signal
import traceback
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO

import msgspec

from ..errors import StoreError
from .unit import UnitResult, UnitSpec, connect, scan_unit

_encode = msgspec.json.Encoder().encode
_IN_FLIGHT = 2  # units queued per worker: enough to keep it busy, small enough to bound memory


@dataclass
class _Worker:
    pid: int
    requests: BinaryIO
    results: BinaryIO


class ProcessUnits:
    """`workers` forked processes scanning the units of one run; `map` yields results in order."""

    def __init__(self, spec: UnitSpec, workers: int) -> None:
        self.workers: list[_Worker] = []
        try:
            for _ in range(max(1, workers)):
                self.workers.append(self._fork(spec))
        except BaseException:
            self.close()
            raise

    def _fork(self, spec: UnitSpec) -> _Worker:
        req_r, req_w = os.pipe()
        res_r, res_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                for sig in (signal.SIGINT, signal.SIGTERM):  # not the handlers of the process we forked from
                    signal.signal(sig, signal.SIG_DFL)
                os.close(req_w)
                os.close(res_r)
                for other in self.workers:  # the scan's ends of the other workers' pipes
                    other.requests.close()
                    other.results.close()
                _serve(spec, os.fdopen(req_r, "rb"), os.fdopen(res_w, "wb"))
                code = 0
            except BaseException:
                traceback.print_exc()  # the scan sees the worker end and raises; say why here
            finally:
                os._exit(code)  # never return into the scan's code, never run its cleanups
        os.close(req_r)
        os.close(res_w)
        return _Worker(pid, os.fdopen(req_w, "wb"), os.fdopen(res_r, "rb"))

    def map(self, tops: Sequence[str]) -> Iterator[UnitResult]:
        decoder = msgspec.json.Decoder(UnitResult)
        pending: deque[_Worker] = deque()
        sent = 0
        while sent < len(tops) or pending:
            while sent < len(tops) and len(pending) < _IN_FLIGHT * len(self.workers):
                worker = self.workers[sent % len(self.workers)]
                worker.requests.write(_encode(tops[sent]) + b"\n")
                worker.requests.flush()
                pending.append(worker)
                sent += 1
            worker = pending.popleft()
            line = worker.results.readline()
            if not line:
                raise StoreError(f"blob scan worker {worker.pid} ended unexpectedly", pid=worker.pid)
            yield decoder.decode(line)

    def close(self) -> None:
        for worker in self.workers:
            for pipe in (worker.requests, worker.results):  # a worker ends at the end of its input
                try:
                    pipe.close()
                except OSError:
                    pass
        for worker in self.workers:
            os.waitpid(worker.pid, 0)

    def __enter__(self) -> ProcessUnits:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _serve(spec: UnitSpec, requests: BinaryIO, results: BinaryIO) -> None:
    part = spec.partition()
    conn = connect(spec.db_path)
    try:
        for line in requests:
            top = msgspec.json.decode(line, type=str)
            results.write(_encode(scan_unit(conn, spec, part, top)) + b"\n")
            results.flush()
    except BrokenPipeError:  # the scan stopped listening
        pass
    finally:
        conn.close()
