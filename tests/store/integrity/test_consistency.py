"""Consistency checks: rows vs blobs vs head states; each inconsistency is made for real in SQLite."""

from __future__ import annotations

import msgspec
import pytest
from helpers import head, message, started, write

from sessiondb.store.blobs.canonical import canonical_json
from sessiondb.store.integrity import check_consistency, last_reports


def dangling(report, table: str, column: str) -> list:
    return [f for f in report.of_type("ref/dangling") if (f.data["table"], f.data["column"]) == (table, column)]


def test_a_healthy_store_is_consistent(busy):
    report = check_consistency(busy)
    assert report.findings == [] and report.ok
    assert report.counts["heads_checked"] == 6 and report.counts["index_skipped"] == 1
    assert last_reports(busy, "consistency")[0].report_id == report.report_id


def test_a_head_whose_session_row_is_gone_is_a_dangling_ref(busy, kit):
    kit.execute(busy, "DELETE FROM sessions WHERE session_id = 'a'")
    report = check_consistency(busy)
    [heads] = dangling(report, "heads", "session_id")
    assert heads.data["target"] == "a" and heads.data["rows"] == 3 and heads.severity == "error"
    [events] = dangling(report, "events", "session_id")  # one finding per table, not one per event
    assert events.data["rows"] == len(kit.sql(busy, "SELECT 1 FROM events WHERE session_id = 'a'"))
    assert not report.ok


def test_a_missing_current_head_and_invocation_head_are_dangling_refs(busy, kit):
    kit.execute(busy, "DELETE FROM heads WHERE head_id = 'c-h1'")
    report = check_consistency(busy)
    assert [f.data["target"] for f in dangling(report, "sessions", "current_head")] == ["c-h1"]
    assert [f.data["target"] for f in dangling(report, "invocations", "callee_head_after")] == ["c-h1"]


def test_an_invocation_whose_caller_session_is_gone_is_a_dangling_ref(busy, kit):
    kit.execute(busy, "DELETE FROM sessions WHERE session_id = 'p'")
    report = check_consistency(busy)
    assert [f.data["target"] for f in dangling(report, "invocations", "caller_session")] == ["p"]
    assert [f.data["target"] for f in dangling(report, "derivations", "source_session")] == ["p"]


def test_alias_and_derivation_targets_that_are_gone_are_dangling_refs(busy, kit):
    busy.write_alias("helper", "c")
    kit.execute(busy, "DELETE FROM sessions WHERE session_id IN ('c', 'f')")
    report = check_consistency(busy)
    assert [f.data["target"] for f in dangling(report, "aliases", "session_id")] == ["c"]
    assert [f.data["target"] for f in dangling(report, "derivations", "target_session")] == ["f"]


def test_a_blob_reference_without_a_blob_row_is_a_dangling_ref(busy, kit):
    blob = kit.sql(busy, "SELECT content_blob FROM messages WHERE session_id = 'a' AND message_id = 1")[0]
    kit.execute(busy, "DELETE FROM blobs WHERE blob_id = :b", b=blob)
    [finding] = check_consistency(busy).findings
    assert finding.type == "ref/dangling" and finding.data["target_table"] == "blobs"
    assert finding.data["target"] == blob


def test_a_corrupt_head_state_blob_is_unreadable(busy, kit):
    state = kit.sql(busy, "SELECT state_blob FROM heads WHERE head_id = 'a-h2'")[0]
    kit.flip_byte(busy.blobs.path(state), at=5)
    [finding] = check_consistency(busy).findings
    assert finding.type == "head/state-unreadable" and finding.data["head"] == "a-h2"
    assert "hash mismatch" in finding.data["reason"]


def test_a_head_state_that_is_not_a_head_state_is_unreadable(busy, kit):
    bogus = busy.blobs.put(canonical_json({"hello": "world"}))
    kit.execute(busy, "INSERT INTO blobs (blob_id, size, kind, media_type, created_at, status)"
                " VALUES (:b, 17, 'head-state', 'application/json', '2026-01-01', 'ok')",
                b=bogus)
    kit.execute(busy, "UPDATE heads SET state_blob = :b WHERE head_id = 'p-h1'", b=bogus)
    [finding] = check_consistency(busy).findings
    assert finding.type == "head/state-unreadable" and "missing" in finding.data["reason"]


def test_a_head_state_that_disagrees_with_its_row_is_a_mismatch(busy, kit):
    blob = kit.sql(busy, "SELECT state_blob FROM heads WHERE head_id = 'a-h1'")[0]
    state = msgspec.json.decode(busy.blob(blob))
    state["kind"] = "compaction"  # the row says turn-final
    state["members"] = [["a", [[1, 2]]]]  # and the head's own event is not a member
    forged = busy.blobs.put(canonical_json(state))
    kit.execute(busy, "INSERT INTO blobs (blob_id, size, kind, media_type, created_at, status)"
                " VALUES (:b, 1, 'head-state', 'application/json', '2026-01-01', 'ok')",
                b=forged)
    kit.execute(busy, "UPDATE heads SET state_blob = :b WHERE head_id = 'a-h1'", b=forged)
    findings = check_consistency(busy).findings
    assert {f.type for f in findings} == {"head/state-mismatch"}
    assert sorted(f.data["field"] for f in findings) == ["kind", "members"]


def test_a_counter_below_the_highest_used_id_is_reported(busy, kit):
    kit.execute(busy, "UPDATE counters SET value = 1 WHERE session_id = 'a' AND kind = 'message'")
    kit.execute(busy, "DELETE FROM counters WHERE session_id = 'p' AND kind = 'turn'")
    findings = check_consistency(busy).findings
    assert sorted((f.type, f.data["session"], f.data["kind"], f.data["counter"]) for f in findings) == [
        ("counter/below-used", "a", "message", 1), ("counter/below-used", "p", "turn", 0)]


def tool_turn(session: str, *contents: tuple[str, object], status: str = "final") -> list[dict]:
    events = [{"type": "turn/started"}]
    events += [message(content, role=role, turn=1) for role, content in contents]
    events += [{"type": "turn/put", "turn_id": 1, "status": status}]
    return [started(session), write(session, *events)]


OPENAI_CALL = ("assistant", {"role": "assistant", "content": None, "tool_calls": [
    {"id": "call_1", "type": "function", "function": {"name": "sum", "arguments": "{}"}},
    {"id": "call_2", "type": "function", "function": {"name": "max", "arguments": "{}"}}]})
OPENAI_RESULT = ("observation", {"role": "tool", "tool_call_id": "call_1", "content": "10"})


def test_a_tool_call_without_its_result_in_a_final_turn_is_a_warning(store):
    for w in tool_turn("s", ("user", "add these"), OPENAI_CALL, OPENAI_RESULT):
        store.commit(w)
    report = check_consistency(store)
    [finding] = report.findings
    assert finding.type == "transcript/unpaired-call" and finding.severity == "warning"
    assert finding.data == {"session": "s", "turn": 1, "tool_call": "call_2", "message": 2, "missing": "result"}
    assert report.ok  # warnings do not fail the check


def test_a_result_without_its_call_is_flagged_and_paired_calls_are_not(store):
    anthropic_call = ("assistant", [{"type": "text", "text": "let me look"},
                                    {"type": "tool_use", "id": "toolu_1", "name": "ls", "input": {}}])
    anthropic_result = ("user", [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "a.txt"}])
    stray = ("observation", {"role": "tool", "tool_call_id": "call_9", "content": "?"})
    for w in tool_turn("s", anthropic_call, anthropic_result, stray):
        store.commit(w)
    [finding] = check_consistency(store).findings
    assert finding.data["tool_call"] == "call_9" and finding.data["missing"] == "call"


def test_an_unpaired_call_in_a_turn_that_is_still_running_is_not_flagged(store):
    for w in tool_turn("s", OPENAI_CALL, status="running"):
        store.commit(w)
    assert check_consistency(store).findings == []


def test_tool_calls_written_as_plain_text_are_not_parsed(store):
    for w in tool_turn("s", ("assistant", '{"tool_calls": [{"id": "call_1"}]}')):
        store.commit(w)
    assert check_consistency(store).findings == []


def test_only_the_named_checks_run(busy, kit):
    kit.execute(busy, "UPDATE counters SET value = 1 WHERE session_id = 'a' AND kind = 'message'")
    assert check_consistency(busy, only=["refs", "heads"]).findings == []
    assert check_consistency(busy, only=["counters"]).by_type() == {"counter/below-used": 1}
    with pytest.raises(ValueError, match="unknown checks"):
        check_consistency(busy, only=["nope"])


def test_heads_of_a_store_with_restores_and_forks_are_consistent(store):
    store.commit(write("s", {"type": "session/started"}, message("one"), head("h1", None)))
    store.commit(write("s", message("two"), head("h2", "h1")))
    store.commit(write("s", {"type": "session/restored", "kind": "resume", "source_head": "h1",
                             "expected_head": "h2"}, message("two, again"), head("h3", "h1")))
    store.commit(write("g", {"type": "session/started"},
                       {"type": "session/restored", "kind": "fork", "source_head": "h3"}, head("g1", None)))
    report = check_consistency(store)
    assert report.findings == [] and report.counts["heads_checked"] == 4
