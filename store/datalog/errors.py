"""The Datalog engine's error family.

Owns: one base error (``DatalogError``) and the few kinds callers catch.
Must never: import anything from the engine (every module imports this one).
"""

from __future__ import annotations


class DatalogError(Exception):
    """Base of every error the Datalog engine raises on purpose."""


class EdnError(DatalogError):
    """An EDN string could not be read."""


class QueryParseError(DatalogError):
    """A query, rule set or pull pattern is malformed; the message names the form."""

    def __init__(self, message: str, form: object = None) -> None:
        super().__init__(message)
        self.form = form


class QueryError(DatalogError):
    """A well-formed query failed while running (bad input, bad built-in call)."""


class TransactError(DatalogError):
    """Transaction data was rejected; nothing of the transaction was applied."""


class SchemaError(DatalogError):
    """The schema is malformed or a value breaks it."""
