"""Partitions of the blob space: every blob id and every misnamed place has exactly one owner."""

from __future__ import annotations

import pytest

from sessiondb.store.integrity import Partition


def test_n_slices_cover_the_256_directories_once():
    slices = [Partition.of(partition=f"{i}/3") for i in range(3)]
    owned = [p for s in slices for p in s.prefixes]
    assert sorted(owned) == [f"{b:02x}" for b in range(256)]
    for hexdigest in ("00" + "1" * 62, "7f" + "2" * 62, "ff" * 32):
        assert sum(s.owns(hexdigest) for s in slices) == 1
    for place in ("", "ab", "abcd"):
        assert sum(s.reports_misnamed(place) for s in slices) == 1


def test_prefixes_become_merged_sql_ranges():
    part = Partition.of(prefixes=["1", "0", "2A", "2b"])
    assert part.name == "0,1,2a,2b"
    assert part.ranges() == [("blake3:0000", "blake3:1fffg"), ("blake3:2a00", "blake3:2bffg")]
    assert part.owns_dir("2a") and part.owns_dir("05") and not part.owns_dir("2c")


@pytest.mark.parametrize("bad", [{"partition": "3/3"}, {"partition": "x"}, {"prefixes": ["g"]},
                                 {"prefixes": ["12345"]}, {"prefixes": []},
                                 {"prefixes": ["0"], "partition": "0/2"}])
def test_a_bad_partition_is_refused(bad):
    with pytest.raises(ValueError):
        Partition.of(**bad)


def test_a_partition_of_scattered_prefixes_scans_exactly_its_blobs(store):
    from helpers import message, started, write

    from sessiondb.store.integrity import scan_blobs

    store.commit(started("s"))
    store.commit(write("s", *[message(f"m{i}") for i in range(80)]))
    with store.engine.connect() as conn, conn.begin():
        ids = [r[0] for r in conn.exec_driver_sql("SELECT blob_id FROM blobs")]
    prefixes = ["1", "3", "a"]  # three separate ranges of the id space
    mine = [b for b in ids if b[7] in "13a"]
    report = scan_blobs(store, full=True, prefixes=prefixes, workers=0)
    assert report.counts["blobs_hashed"] == report.counts["files_listed"] == len(mine)
    assert report.findings == [] and report.counts["planned_done"] == report.counts["planned"] == len(mine)
