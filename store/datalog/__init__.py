"""sessiondb's standalone Datalog engine (DataScript dialect) over one SQLite file.

    from sessiondb.store.datalog import Database
    db = Database.open("index.sqlite", {"session/id": {"db/unique": "db.unique/identity"}})
    db.transact([{"session/id": "s1", "session/title": "hello"}])
    db.q('[:find ?t . :in ?sid :where [?s :session/id ?sid] [?s :session/title ?t]]', "s1")

Owns: the public names of the engine.  Must never: import anything outside the
standard library, sqlalchemy and edn_format.
"""

from edn_format import Keyword, Symbol

from .api import Database
from .db import BulkReport
from .edn import read as read_edn
from .errors import (
    DatalogError,
    EdnError,
    QueryError,
    QueryParseError,
    SchemaError,
    TransactError,
)
from .parser import parse_query
from .pull import parse_pattern
from .tx import Datom, TxReport

__all__ = [
    "Database",
    "BulkReport",
    "TxReport",
    "Datom",
    "Keyword",
    "Symbol",
    "read_edn",
    "parse_query",
    "parse_pattern",
    "DatalogError",
    "EdnError",
    "QueryParseError",
    "QueryError",
    "TransactError",
    "SchemaError",
]
