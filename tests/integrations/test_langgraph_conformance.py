"""LangGraph's own checkpointer contract: the `langgraph-checkpoint-conformance` suite run against
`SessionDBSaver` (and, as a control, against LangGraph's `InMemorySaver`)."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("langgraph.checkpoint.conformance")

from langgraph.checkpoint.conformance import checkpointer_test, validate  # noqa: E402
from langgraph.checkpoint.conformance.capabilities import BASE_CAPABILITIES  # noqa: E402
from langgraph.checkpoint.memory import InMemorySaver  # noqa: E402

from sessiondb import Store  # noqa: E402
from sessiondb.integrations.langgraph import SessionDBSaver  # noqa: E402


def report_of(registered) -> dict:
    report = asyncio.run(validate(registered))
    failures = {cap: r.failures for cap, r in report.results.items() if r.passed is False}
    return {"report": report, "failures": failures}


def test_in_memory_saver_passes_its_own_suite():
    @checkpointer_test(name="InMemorySaver")
    async def memory():
        yield InMemorySaver()

    out = report_of(memory)
    assert out["report"].passed_all_base(), out["failures"]


def test_sessiondb_saver_passes_every_capability_it_has(tmp_path):
    made = []

    @checkpointer_test(name="SessionDBSaver")
    async def sessiondb_saver():
        store = Store.open(tmp_path / f"store{len(made)}")
        made.append(store)
        yield SessionDBSaver(store)
        store.close()

    out = report_of(sessiondb_saver)
    report = out["report"]
    assert not out["failures"], out["failures"]
    assert report.passed_all_base()
    results = report.results
    for cap in BASE_CAPABILITIES:
        assert results[cap.value].passed is True and results[cap.value].tests_passed > 0, cap
    # the extended capabilities sessiondb has, passed too
    assert results["copy_thread"].passed is True and results["prune"].passed is True
    assert sum(r.tests_passed for r in results.values()) >= 60
