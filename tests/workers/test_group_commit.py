"""One group commit in-process (real store root, no broker): receipts go back to their messages."""

from __future__ import annotations

from sessiondb.workers.group_commit import Delivery, commit_group


def msg(content: str, write_id: str) -> dict:
    return {"write_id": write_id, "session": "g", "events": [{"type": "message/added", "role": "user",
                                                              "content": content}]}


def test_receipts_are_split_back_per_message_in_order(store):
    store.commit({"write_id": "g-start", "session": "g", "events": [{"type": "session/started"}]})
    first = Delivery("m1", [msg("a", "w1"), msg("b", "w2")], None)
    second = Delivery("m2", [msg("c", "w3")], None)
    commit_group(store, [first, second])
    assert [r["write_id"] for r in first.receipts] == ["w1", "w2"]
    assert [r["write_id"] for r in second.receipts] == ["w3"]
    assert len({r["tx_id"] for r in first.receipts + second.receipts}) == 3


def test_things_that_are_not_writes_are_rejected_before_the_store(store):
    delivery = Delivery("m", [7, {"session": "g"}, {"write_id": "", "session": "g"}], None)
    commit_group(store, [delivery])
    assert [r["status"] for r in delivery.receipts] == ["rejected"] * 3
    assert all(r["error"]["type"] == "write/invalid" for r in delivery.receipts)


def test_a_message_whose_writes_are_not_a_list_is_one_rejected_write(store):
    delivery = Delivery("m", {"write_id": "x"}, None)  # type: ignore[arg-type]
    commit_group(store, [delivery])
    assert len(delivery.receipts) == 1 and delivery.receipts[0]["status"] == "rejected"


def test_a_redelivered_message_gets_the_stored_receipts_and_changes_nothing(store):
    store.commit({"write_id": "g-start", "session": "g", "events": [{"type": "session/started"}]})
    once, again = Delivery("m", [msg("a", "w1")], None), Delivery("m", [msg("a", "w1")], None)
    commit_group(store, [once])
    commit_group(store, [again])
    assert [{**r, "duplicate": True} for r in once.receipts] == again.receipts  # the original tx id, marked
    assert [m["message_id"] for m in store.message_records("g")] == [1]
