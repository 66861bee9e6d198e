"""Every value of a write, checked once before it is typed: what no canonical form can hold.

`check_values` walks the plain data of a write (iteratively: hostile nesting must not exhaust
the stack) and rejects, naming the field, what would otherwise fail later and for more than
this write:
  - text that is not UTF-8: a lone surrogate (`"\\ud800"`-`"\\udfff"`, legal as a JSON escape)
    in any string or object key, which SQLite and the blob encoder cannot encode, so it used
    to raise `UnicodeEncodeError` for the whole group;
  - numbers with no JSON form (NaN, +-Infinity): stored as `inf` but indexed as `null`, the
    store and its index would disagree;
  - nesting deeper than `max_nesting_depth` below an event field;
  - a write whose size (its values as JSON, `write_size`) exceeds `max_write_bytes`.
Owns nothing else: the types of the fields are `model.parse_write`'s.
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import ValidationError
from ..settings import Settings

#: levels above an event field's value: the write object, its events list, the event object
_ABOVE_FIELDS = 3


def _text_error(text: str) -> str | None:
    """Why `text` cannot be stored as UTF-8 (a lone surrogate), or None."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (f"text is not valid UTF-8: lone surrogate U+{ord(text[exc.start]):04X} at character {exc.start}"
                " (a JSON \\u escape of half a surrogate pair)")
    return None


def _size_of(value: Any) -> int:
    """Bytes of one scalar in the write's JSON (strings as UTF-8, quotes included)."""
    if isinstance(value, str):
        return 2 + (len(value) if value.isascii() else len(value.encode("utf-8", "surrogatepass")))
    if isinstance(value, bytes | bytearray | memoryview):
        return len(value)
    return len(repr(value)) if isinstance(value, int | float) else 4


def _roots(raw: dict[str, Any]) -> list[tuple[Any, int, int | None, str]]:
    """(value, depth, event index, field) of every top-level field and every event field."""
    roots: list[tuple[Any, int, int | None, str]] = []
    for key, value in raw.items():
        events = value if key == "events" and isinstance(value, list) else None
        if events is None:
            roots.append((value, 2, None, key))
            continue
        for index, event in enumerate(events):
            if not isinstance(event, dict):
                roots.append((event, 3, index, "events"))
                continue
            roots.extend((sub, 4, index, name) for name, sub in event.items())
    return roots


def check_values(raw: dict[str, Any], settings: Settings) -> int:
    """Reject (ValidationError naming the field) what no canonical form can hold; return the
    write's size in bytes."""
    write_id = raw.get("write_id") if isinstance(raw.get("write_id"), str) else None

    def invalid(message: str, index: int | None, field: str | None) -> ValidationError:
        return ValidationError(message, write_id=write_id, event_index=index, field=field)

    max_depth = settings.max_nesting_depth + _ABOVE_FIELDS
    size = 0
    for key in raw:
        if isinstance(key, str) and (why := _text_error(key)):
            raise invalid(f"field name: {why}", None, key)
    stack = _roots(raw)
    for _value, _depth, index, field in stack:
        if index is not None and (why := _text_error(field)):
            raise invalid(f"field name: {why}", index, field)
    while stack:
        value, depth, index, field = stack.pop()
        if depth > max_depth:
            raise invalid(f"nested deeper than {settings.max_nesting_depth} levels", index, field)
        if isinstance(value, dict):
            for key, sub in value.items():
                if isinstance(key, str) and (why := _text_error(key)):
                    raise invalid(f"object key: {why}", index, field)
                size += _size_of(key) + 2
                stack.append((sub, depth + 1, index, field))
        elif isinstance(value, list | tuple):
            size += 2
            stack.extend((sub, depth + 1, index, field) for sub in value)
        else:
            if isinstance(value, str) and (why := _text_error(value)):
                raise invalid(why, index, field)
            if isinstance(value, float) and not math.isfinite(value):
                raise invalid(f"number {value} has no JSON form (NaN and infinities are refused)", index, field)
            size += _size_of(value) + 1
    if size > settings.max_write_bytes:
        raise invalid(f"write of {size} bytes; at most {settings.max_write_bytes}", None, None)
    return size
