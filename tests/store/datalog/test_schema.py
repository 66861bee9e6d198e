"""Schema validation."""

from __future__ import annotations

import pytest

from sessiondb.store.datalog import Database, SchemaError


@pytest.mark.parametrize(
    "schema, message",
    [
        ({"a/b": {"db/unique": "db.unique/sometimes"}}, "db/unique"),
        ({"a/b": {"db/cardinality": "db.cardinality/few"}}, "db/cardinality"),
        ({"a/b": {"db/flavour": "x"}}, "unknown property"),
        ({"a/b": "ref"}, "must be a map"),
        ({"a/_b": {"db/valueType": "db.type/ref"}}, "reverse"),
        ({"a/b": {"db/valueType": "db.type/tuple"}}, "tuple"),
    ],
)
def test_malformed_schema_is_rejected(tmp_path, schema, message):
    with pytest.raises(SchemaError, match=message):
        Database.open(tmp_path / "s.sqlite", schema)


def test_schema_can_be_edn(tmp_path):
    with Database.open(tmp_path / "s.sqlite", "{:a/id {:db/unique :db.unique/identity}}") as db:
        assert db.schema.unique("a/id") == "identity"


def test_schema_keys_may_have_leading_colon(tmp_path):
    with Database.open(tmp_path / "s.sqlite", {":a/ref": {":db/valueType": ":db.type/ref"}}) as db:
        assert db.schema.is_ref("a/ref")
