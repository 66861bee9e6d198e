"""Producer-side mistakes in `SessionClient` raise the store's `ValidationError`, naming what the
store would name, and publish nothing (issue 12). Real Redis, no writer needed."""

from __future__ import annotations

import json

import pytest

from sessiondb.store import ValidationError
from sessiondb.tasks import SessionClient
from sessiondb.tasks.routing import WRITES


def deep(levels: int):
    value: object = "leaf"
    for _ in range(levels):
        value = [value]
    return value


@pytest.mark.parametrize(("write", "field", "event_index"), [
    (["not", "a", "dict"], None, None),
    ("a string", None, None),
    ({"session": "s", "events": []}, "write_id", None),
    ({"write_id": 7, "session": "s", "events": []}, "write_id", None),
    ({"write_id": "w", "session": None, "events": []}, "session", None),
    ({"write_id": "w", "session": "s", "events": "not a list"}, "events", None),
    ({"write_id": "w", "session": "s", "events": {"type": "session/started"}}, "events", None),
    ({"write_id": "w", "session": "s", "events": [{"type": "session/started"}, 42]}, None, 1),
    ({"write_id": "w", "session": "s", "events": [{"type": "message/added", "role": "user",
                                                    "content": deep(10_000)}]}, "content", 0),
    ({"write_id": "w", "session": "s", "events": [{"type": "message/added", "role": "user",
                                                    "content": json.loads('"\\udc00"')}]}, "content", 0),
])
def test_a_malformed_write_is_refused_by_the_client_with_the_stores_error(fleet, write, field, event_index):
    with SessionClient(fleet.settings) as client:
        with pytest.raises(ValidationError) as refused:
            client.submit(write)
    assert refused.value.kind == "write/invalid"
    assert refused.value.field == field and refused.value.event_index == event_index
    assert fleet.redis.llen(WRITES) == 0


def test_write_refuses_events_that_are_not_a_list_and_write_many_a_non_dict(fleet):
    with SessionClient(fleet.settings) as client:
        with pytest.raises(ValidationError) as refused:
            client.write("s", "session/started")  # type: ignore[arg-type]
        assert refused.value.field == "events"
        with pytest.raises(ValidationError):
            client.write_many([None])  # type: ignore[list-item]
        with pytest.raises(ValidationError) as refused:
            client.write("s", [{"type": "message/added", "role": "user", "content": deep(10_000)}])
        assert refused.value.field == "content"
    assert fleet.redis.llen(WRITES) == 0
