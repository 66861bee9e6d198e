"""Canonical bytes for payloads, and blob ids.

The same value must hash to the same blob id on every machine, so structured payloads are
serialized one way only: JSON, keys sorted, no insignificant whitespace, UTF-8, no NaN or
infinities. Text is stored as its UTF-8 bytes, binary as given. This module owns that
encoding and the `blake3:<hex>` id format; it never touches the filesystem.
"""

from __future__ import annotations

import math
import re

import blake3
import msgspec

BLOB_ID_RE = re.compile(r"^blake3:[0-9a-f]{64}$")

TEXT = "text/plain; charset=utf-8"
JSON = "application/json"
BINARY = "application/octet-stream"

_encoder = msgspec.json.Encoder(order="sorted")


class PayloadError(ValueError):
    """A payload that has no canonical form (bad UTF-8, NaN, too deep, unsupported type)."""


def blob_id(data: bytes) -> str:
    return "blake3:" + blake3.blake3(data).hexdigest()


def canonical_json(value: object, max_depth: int = 64) -> bytes:
    """Canonical JSON bytes of a JSON-like value (dict with str keys, list, str, int, float, bool, None)."""
    _check(value, max_depth)
    return _encoder.encode(value)


def payload_bytes(value: object, max_depth: int = 64) -> tuple[bytes, str]:
    """The bytes stored for a payload value and its media type."""
    if isinstance(value, str):
        try:
            return value.encode("utf-8"), TEXT
        except UnicodeEncodeError as exc:
            raise PayloadError(f"text is not valid UTF-8 at character {exc.start}") from None
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value), BINARY
    return canonical_json(value, max_depth), JSON


def _check(value: object, max_depth: int) -> None:
    # Iterative walk: hostile input must not be able to exhaust the Python stack.
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > max_depth:
            raise PayloadError(f"nested deeper than {max_depth} levels")
        if isinstance(item, dict):
            for key, sub in item.items():
                if not isinstance(key, str):
                    raise PayloadError(f"object key {key!r} is not a string")
                _check_text(key)
                stack.append((sub, depth + 1))
        elif isinstance(item, list | tuple):
            stack.extend((sub, depth + 1) for sub in item)
        elif isinstance(item, str):
            _check_text(item)
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise PayloadError(f"number {item} has no JSON form")
        elif item is None or isinstance(item, bool | int):
            continue
        else:
            raise PayloadError(f"values of type {type(item).__name__} cannot be stored as JSON")


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise PayloadError(f"text is not valid UTF-8 at character {exc.start}") from None
