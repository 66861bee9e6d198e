"""Attribute schema: parsing, validation and the questions the engine asks of it.

Owns: turning a DataScript-style schema map (EDN string, or Python dict keyed by
idents with or without the leading colon) into ``Schema``.
Must never: touch storage or know about queries.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import edn
from .errors import SchemaError

_KNOWN_KEYS = {
    "db/unique",
    "db/valueType",
    "db/cardinality",
    "db/index",
    "db/doc",
    "db/isComponent",
    "db/noHistory",
}
_UNIQUE = {"db.unique/identity": "identity", "db.unique/value": "value"}
_CARD = {"db.cardinality/one": False, "db.cardinality/many": True}


@dataclass(frozen=True)
class Attr:
    ident: str
    ref: bool = False
    many: bool = False
    unique: str | None = None  # "identity" | "value" | None
    component: bool = False


@dataclass
class Schema:
    attrs: dict[str, Attr] = field(default_factory=dict)
    raw: dict[str, dict[str, Any]] = field(default_factory=dict)

    def get(self, ident: str) -> Attr:
        a = self.attrs.get(ident)
        return a if a is not None else Attr(ident)

    def is_ref(self, ident: str) -> bool:
        a = self.attrs.get(ident)
        return a is not None and a.ref

    def is_many(self, ident: str) -> bool:
        a = self.attrs.get(ident)
        return a is not None and a.many

    def unique(self, ident: str) -> str | None:
        a = self.attrs.get(ident)
        return a.unique if a is not None else None

    def to_json(self) -> str:
        return json.dumps(self.raw, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Schema:
        return parse_schema(json.loads(text))


def _name(x: Any, where: str) -> str:
    name = edn.ident(x)
    if name is None:
        raise SchemaError(f"expected a keyword in schema at {where}, got {edn.fmt(x)}")
    return name


def parse_schema(schema: Any) -> Schema:
    """Validate a schema map; unknown properties and values raise ``SchemaError``."""
    if schema is None:
        return Schema()
    if isinstance(schema, str):
        schema = edn.read(schema)
    if not isinstance(schema, Mapping):
        raise SchemaError(f"schema must be a map of attribute -> properties, got {type(schema).__name__}")
    attrs: dict[str, Attr] = {}
    raw: dict[str, dict[str, Any]] = {}
    for key, props in schema.items():
        ident = _name(key, repr(key))
        if ident.startswith("db/") or "/_" in ident or ident.startswith("_"):
            raise SchemaError(f"attribute :{ident}: reserved or reverse-looking name")
        if not isinstance(props, Mapping):
            raise SchemaError(f"attribute :{ident}: properties must be a map, got {edn.fmt(props)}")
        norm: dict[str, Any] = {}
        for pk, pv in props.items():
            p = _name(pk, f"{ident} properties")
            if p not in _KNOWN_KEYS:
                raise SchemaError(f"attribute :{ident}: unknown property :{p}")
            norm[p] = _name(pv, f"{ident} :{p}") if p in ("db/unique", "db/valueType", "db/cardinality") else pv
        unique = norm.get("db/unique")
        if unique is not None and unique not in _UNIQUE:
            raise SchemaError(f"attribute :{ident}: bad :db/unique :{unique}")
        card = norm.get("db/cardinality", "db.cardinality/one")
        if card not in _CARD:
            raise SchemaError(f"attribute :{ident}: bad :db/cardinality :{card}")
        vtype = norm.get("db/valueType")
        if vtype is not None and not vtype.startswith("db.type/"):
            raise SchemaError(f"attribute :{ident}: bad :db/valueType :{vtype}")
        if vtype == "db.type/tuple":
            raise SchemaError(f"attribute :{ident}: :db.type/tuple is not supported")
        component = bool(norm.get("db/isComponent", False))
        if component and vtype != "db.type/ref":
            raise SchemaError(f"attribute :{ident}: :db/isComponent requires :db.type/ref")
        attrs[ident] = Attr(
            ident,
            ref=vtype == "db.type/ref",
            many=_CARD[card],
            unique=_UNIQUE.get(unique) if unique else None,
            component=component,
        )
        raw[ident] = {k: (v if isinstance(v, (bool, int, float, str)) else str(v)) for k, v in norm.items()}
    return Schema(attrs, raw)
