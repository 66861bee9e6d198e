"""The one error hierarchy of the storage library.

Every error a caller of `store` can meet is a `StoreError`. Each carries the data a caller
needs to act (the offending write, event index and field; the actual current head; the
conflicting alias target) and renders a one-line message that says what to do.
Rejections are also turned into receipts (`as_dict`), so the same data reaches producers
on other machines. This module must never import anything from the rest of sessiondb.
"""

from __future__ import annotations

from typing import Any

#: at most this many characters of any value a rejection echoes back (write id, field, ...)
ECHO_MAX_CHARS = 200
#: a message quotes values of its own (msgspec's "Invalid enum value ..."): bounded too
MESSAGE_MAX_CHARS = 1000


def echo(value: str, limit: int = ECHO_MAX_CHARS) -> str:
    """`value` as it may be echoed back in an error, a receipt or a dead-letter row: lone
    surrogates escaped (they cannot be encoded as UTF-8: the receipt itself would fail) and at
    most `limit` characters, so a 10 MB write id does not make a 30 MB rejection."""
    if not value.isascii():
        value = value.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(value) <= limit:
        return value
    return f"{value[:limit]}…({len(value.encode('utf-8'))} bytes)"


def echoed(value: Any, limit: int = ECHO_MAX_CHARS) -> Any:
    """`echo` of a string; other values (ids, counts, None) unchanged."""
    return echo(value, limit) if isinstance(value, str) else value


class StoreError(Exception):
    """Base of all sessiondb storage errors."""

    kind = "store/error"
    _by_kind: dict[str, type[StoreError]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        StoreError._by_kind[cls.kind] = cls

    def __init__(self, message: str, **data: Any) -> None:
        super().__init__(message)
        self.message = message
        self.data = {k: v for k, v in data.items() if v is not None}

    def as_dict(self) -> dict[str, Any]:
        """The error as plain data: what a rejection receipt and a dead-letter row record
        (every string bounded and encodable: `echo`)."""
        data = {name: echoed(value) for name, value in self.data.items()}
        return {"type": self.kind, "message": echo(self.message, MESSAGE_MAX_CHARS), **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StoreError:
        """The error of `as_dict` again, as its own class (on another machine, from a receipt).

        The message is kept as it was; the data is in `.data` and as attributes (subclass
        constructors are not re-run: they would build the message anew)."""
        data = dict(data)
        kind = data.pop("type", cls.kind)
        error = Exception.__new__(StoreError._by_kind.get(kind, StoreError))
        StoreError.__init__(error, str(data.pop("message", kind)), **data)
        error.kind = kind
        for name, value in data.items():
            setattr(error, name, value)
        return error


class ValidationError(StoreError):
    """A write (or one of its events) does not match the schema; nothing was written."""

    kind = "write/invalid"

    def __init__(
        self,
        message: str,
        *,
        write_id: str | None = None,
        event_index: int | None = None,
        field: str | None = None,
        **data: Any,
    ) -> None:
        write_id, field = echoed(write_id), echoed(field)
        where = []
        if write_id is not None:
            where.append(f"write {write_id!r}")
        if event_index is not None:
            where.append(f"event {event_index}")
        if field is not None:
            where.append(f"field {field!r}")
        prefix = (", ".join(where) + ": ") if where else ""
        super().__init__(prefix + message, write_id=write_id, event_index=event_index, field=field, **data)
        self.write_id, self.event_index, self.field = write_id, event_index, field
        for name, value in self.data.items():  # e.g. `suggestion` for an unknown event type
            setattr(self, name, value)


class WriteFailedError(StoreError):
    """SQLite or the disk refused one write that the plan had accepted (it is rejected alone)."""

    kind = "write/failed"


class InternalError(StoreError):
    """The store failed on one write for a reason that is not the write's fault (a bug); the
    writer rejects that write alone and lives."""

    kind = "write/internal-error"


class ConflictError(StoreError):
    """An id that already exists with different content, or a reference that breaks a rule."""

    kind = "write/conflict"

    def __init__(self, message: str, *, event_index: int | None = None, **data: Any) -> None:
        super().__init__(message, event_index=event_index, **data)
        self.event_index = event_index


class IdConflictError(ConflictError):
    """A write id already committed with different content: the new content was NOT applied.
    (The same id with the same content is a duplicate delivery and gets the stored receipt.)"""

    kind = "write/id-conflict"

    def __init__(self, write_id: str, committed_tx: int | None) -> None:
        super().__init__(
            f"write {echo(write_id)!r} was already committed (tx {committed_tx}) with different content;"
            " a write id names one write: give a new write a new id",
            write_id=write_id, committed_tx=committed_tx)
        self.write_id, self.committed_tx = write_id, committed_tx


class HeadConflictError(ConflictError):
    """Compare-and-set on a session's current head failed: another head is current."""

    kind = "head/conflict"

    def __init__(
        self, session: str, expected: str | None, actual: str | None, *, event_index: int | None = None
    ) -> None:
        super().__init__(
            f"session {session!r}: expected current head {expected!r} but it is {actual!r};"
            " re-read the session and retry from its current head",
            event_index=event_index,
            session=session,
            expected_head=expected,
            actual_head=actual,
        )
        self.session, self.expected, self.actual = session, expected, actual


class AliasConflictError(ConflictError):
    """An alias already names another session, or collides with a session id."""

    kind = "alias/conflict"

    def __init__(self, alias: str, message: str, *, existing: str | None = None, **data: Any) -> None:
        super().__init__(message, alias=alias, existing=existing, **data)
        self.alias, self.existing = alias, existing


class NotFoundError(StoreError):
    """A session, head, alias or other named thing does not exist."""

    kind = "not-found"

    def __init__(self, what: str, name: str, *, event_index: int | None = None) -> None:
        super().__init__(f"{what} {name!r} not found", what=what, name=name, event_index=event_index)
        self.what, self.name, self.event_index = what, name, event_index


class CorruptBlobError(StoreError):
    """A blob file is missing or its bytes no longer hash to its id."""

    kind = "blob/corrupt"

    def __init__(self, blob_id: str, reason: str) -> None:
        super().__init__(f"blob {blob_id}: {reason}", blob_id=blob_id, reason=reason)
        self.blob_id, self.reason = blob_id, reason


class WriterLockHeldError(StoreError):
    """Another process holds the store root's writer lock (a fleet's writer): this process
    may read the root but must not write to it."""

    kind = "store/writer-lock-held"

    def __init__(self, root: str, holder_pid: int | None) -> None:
        holder = f"pid {holder_pid}" if holder_pid else "another process"
        super().__init__(
            f"store at {root}: the writer lock is held by {holder} (a fleet's writer); this process may"
            " read but not write: send writes through the fleet (SessionClient, `sessiondb write`)"
            " or stop that writer",
            root=root,
            holder_pid=holder_pid,
        )
        self.root, self.holder_pid = root, holder_pid


class SchemaVersionError(StoreError):
    """The store root was written by a newer sessiondb than this one, or (opened read-only,
    which never migrates) by an older one."""

    kind = "store/schema-version"

    def __init__(self, root: str, found: int, supported: int) -> None:
        if found > supported:
            advice = f"this sessiondb supports up to {supported}; upgrade sessiondb to open it"
        else:
            advice = (f"older than this sessiondb's {supported}, and a read-only open never migrates;"
                      " open it for writing once (start its writer, e.g. `sessiondb up`) to migrate it")
        super().__init__(
            f"store at {root} has schema version {found}, {advice}",
            root=root,
            found=found,
            supported=supported,
        )
        self.root, self.found, self.supported = root, found, supported


class NoStoreError(StoreError):
    """A read-only open found no store: the root or its store.sqlite does not exist."""

    kind = "store/missing"

    def __init__(self, root: str, reason: str) -> None:
        super().__init__(
            f"no sessiondb store at {root} ({reason}); check the store root (--root or SESSIONDB_ROOT)",
            root=root,
            reason=reason,
        )
        self.root, self.reason = root, reason


class NotAStoreError(StoreError):
    """store.sqlite exists but is not a sessiondb store: not SQLite at all, an empty SQLite
    database (read-only), or another program's database. Nothing was changed."""

    kind = "store/not-a-store"

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(
            f"{path} is not a sessiondb store ({reason}); point --root (or SESSIONDB_ROOT) at a sessiondb"
            " store root, or move the file away",
            path=path,
            reason=reason,
        )
        self.path, self.reason = path, reason


class ReadOnlyStoreError(StoreError):
    """A write on a store opened with `readonly=True`."""

    kind = "store/read-only"

    def __init__(self, root: str) -> None:
        super().__init__(f"store at {root} was opened read-only; open it without readonly=True to write",
                         root=root)
        self.root = root


class DatabaseUrlError(StoreError):
    """`SESSIONDB_DATABASE_URL` is not a database URL sessiondb can open (the URL is shown
    without its password)."""

    kind = "store/database-url"

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"SESSIONDB_DATABASE_URL {url}: {reason}", url=url, reason=reason)
        self.url, self.reason = url, reason


class WriterFencedError(StoreError):
    """This process was the writer of a PostgreSQL store but no longer holds its writer lock
    (its lock session was cut, or another writer took over): the group was not committed, and
    this writer must step down (wait for the lock again) before it writes anything."""

    kind = "store/writer-fenced"

    def __init__(self, store: str, reason: str) -> None:
        super().__init__(f"store at {store}: not the writer any more ({reason}); nothing of this group was"
                         " committed", store=store, reason=reason)
        self.store, self.reason = store, reason


class SessionDeletedError(StoreError):
    """The session was deleted (a tombstone keeps its id): it cannot be written to or read, and
    its id is never used again."""

    kind = "session/deleted"

    def __init__(self, session: str, deleted_at: str | None = None, reason: str | None = None, *,
                 event_index: int | None = None) -> None:
        when = f" at {deleted_at}" if deleted_at else ""
        super().__init__(f"session {echo(session)!r} was deleted{when}; a deleted session id is never reused",
                         session=session, deleted_at=deleted_at, reason=reason, event_index=event_index)
        self.session, self.deleted_at, self.reason = session, deleted_at, reason


class DependantsError(StoreError):
    """Deleting a session that others depend on (forks, attached children, invocations,
    derivations) without `cascade` or `detach`: nothing was deleted."""

    kind = "session/has-dependants"

    def __init__(self, session: str, dependants: list[dict[str, Any]]) -> None:
        shown = ", ".join(f"{d['session']} ({d['why']})" for d in dependants[:5])
        more = f" and {len(dependants) - 5} more" if len(dependants) > 5 else ""
        super().__init__(f"session {echo(session)!r} has dependants: {shown}{more};"
                         " delete them too (cascade) or copy what they need (detach)",
                         session=session, dependants=dependants)
        self.session, self.dependants = session, dependants
