"""The blob store: content addressing, durable publication, dedupe, quarantine of corrupt files."""

from __future__ import annotations

import os

import pytest

from sessiondb.store.blobs import BlobStore
from sessiondb.store.blobs.canonical import blob_id, canonical_json
from sessiondb.store.errors import CorruptBlobError


@pytest.fixture
def blobs(tmp_path):
    b = BlobStore(tmp_path)
    yield b
    b.close()


def all_files(blobs: BlobStore) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, f), blobs.dir) for d, _, fs in os.walk(blobs.dir) for f in fs)


@pytest.mark.parametrize("anonymous", [True, False], ids=["anonymous-temp-files", "named-temp-files"])
def test_put_many_publishes_complete_files_at_hash_paths_and_leaves_no_temp_files(blobs, anonymous):
    blobs._anonymous_ok = blobs._anonymous_ok and anonymous
    payloads = {blob_id(p): p for p in (os.urandom(n) for n in (0, 1, 1000, 70_000))}
    written = blobs.put_many(payloads)
    assert sorted(written) == sorted(payloads)
    for bid, data in payloads.items():
        hexdigest = bid.removeprefix("blake3:")
        assert blobs.path(bid) == blobs.dir / hexdigest[:2] / hexdigest[2:4] / hexdigest
        assert blobs.get(bid) == data
    assert len(all_files(blobs)) == 4  # nothing but the blobs themselves


def test_an_existing_good_blob_is_reused(blobs):
    bid = blobs.put(b"same bytes")
    inode = blobs.path(bid).stat().st_ino
    assert blobs.put_many({bid: b"same bytes"}) == []
    assert blobs.path(bid).stat().st_ino == inode


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_an_existing_corrupt_blob_is_quarantined_and_replaced(blobs, damage):
    bid = blobs.put(b"precious bytes")
    path = blobs.path(bid)
    damaged = b"Precious bytes" if damage == "flip" else b"prec"
    path.write_bytes(damaged)
    with pytest.raises(CorruptBlobError, match="hash mismatch"):
        blobs.get(bid)
    assert blobs.put_many({bid: b"precious bytes"}) == [bid]
    assert blobs.get(bid) == b"precious bytes"
    assert [p.read_bytes() for p in blobs.quarantine_dir.iterdir()] == [damaged]  # kept, never deleted


def test_a_missing_blob_is_a_clear_error(blobs):
    with pytest.raises(CorruptBlobError, match="missing"):
        blobs.get(blob_id(b"never written"))


def test_ids_that_are_not_hashes_never_become_paths(blobs):
    for bad in ("blake3:../../etc/passwd", "sha1:" + "0" * 64, "blake3:" + "G" * 64):
        with pytest.raises(ValueError, match="not a blob id"):
            blobs.path(bad)


def test_canonical_json_is_the_same_for_equal_values():
    assert canonical_json({"b": [1, {"y": 2, "x": 1}], "a": "é"}) == '{"a":"é","b":[1,{"x":1,"y":2}]}'.encode()
