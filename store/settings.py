"""The one settings object of sessiondb, read from `SESSIONDB_*` environment variables.

`Settings.from_env()` is the only place in sessiondb that reads `os.environ`; everything
else receives a `Settings` (or the values it needs) explicitly. Field names map to
variables by upper-casing and prefixing: `group_commit_max` <- `SESSIONDB_GROUP_COMMIT_MAX`.
Types are converted (and bad values rejected with the variable's name) by msgspec.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import msgspec

PREFIX = "SESSIONDB_"


class Settings(msgspec.Struct, kw_only=True, frozen=True):
    #: store root directory: store.sqlite, blobs/, index.sqlite, quarantine/, writer.lock
    root: str = "./var/store"
    #: the canonical store's database: empty (default) -> SQLite, store.sqlite in the root; or a
    #: PostgreSQL URL, `postgresql://user:password@host:5432/db` (docs/postgres.md). Never logged
    #: with its password; blob files above `inline_max_bytes` stay in the root's blobs/
    database_url: str = ""
    #: Celery broker / result backend; empty broker -> `sessiondb up` starts a private Redis
    broker_url: str = ""
    result_backend: str = ""
    #: group commit: at most this many writes per SQLite transaction ...
    group_commit_max: int = 2000
    #: ... waiting at most this long for messages counted in the queue that have not come
    #: (an upper bound, not a delay: a lone write is committed at once; docs/fleet.md)
    group_commit_wait_ms: int = 5
    #: payloads of at most this many bytes are stored inline, in store.sqlite, in the same
    #: transaction as their rows; larger ones are blob files (0: every payload a file).
    #: 32 KiB: docs/benchmarks.md, "The inline threshold"
    inline_max_bytes: int = 32 * 1024
    #: SQLite `synchronous` pragma: FULL (default, durable on power loss) or NORMAL
    sqlite_synchronous: str = "FULL"
    #: how long a statement waits for another process's lock on store.sqlite before it fails
    #: (the writer then keeps the group and retries it, backing off)
    sqlite_busy_timeout_ms: int = 10_000
    #: limits that make hostile input a clean rejection
    max_payload_bytes: int = 16 * 1024 * 1024
    max_write_bytes: int = 64 * 1024 * 1024
    #: the writer does not even decode a broker message larger than this (0: 3 x max_write_bytes
    #: + 1 MiB, room for one write at the limit whose every character JSON escapes as \uXXXX)
    max_message_bytes: int = 0
    max_events_per_write: int = 10_000
    max_nesting_depth: int = 64
    #: integrity: orphans younger than this are left alone (a write may be in flight)
    scan_grace_seconds: int = 3600
    #: incremental scans re-hash every blob at least once per this period
    scan_period_seconds: int = 7 * 86400
    #: hashing processes per scan (0 = one per core)
    scan_workers: int = 0
    #: how often a running scan saves where it is, so a crashed scan resumes
    scan_checkpoint_seconds: float = 2.0
    #: scanner workers split the blob space into this many partitions
    scan_partitions: int = 1
    #: consistency check: index lag (in tx) tolerated before `index/lag` is reported
    index_max_lag: int = 0
    #: consistency check: how many tx batches to replay against the index when sampling
    index_check_sample: int = 200
    #: fleet: seconds an unacknowledged broker message stays hidden (far above the longest commit)
    visibility_timeout_s: int = 3600
    #: fleet: how long an unread receipt list lives in Redis (a producer that died never reads it)
    receipt_ttl_s: int = 3600
    #: fleet: the writer tells the indexer about new commits at most this often
    index_notify_debounce_ms: int = 1000
    #: fleet: workers send Celery task events from the start. Off by default, as in Celery: each
    #: event is a Redis round trip per message, and Flower turns them on itself (enable_events)
    task_events: bool = False
    #: fleet: ... and at most this many bytes of broker messages (it bounds the writer's memory)
    group_commit_max_bytes: int = 64 * 1024 * 1024
    #: producers: writes and bytes per broker message, and how long a write lingers for more
    #: while earlier writes of the same client wait for their receipts (else it goes at once)
    client_batch_max: int = 500
    client_batch_bytes: int = 4 * 1024 * 1024
    client_linger_ms: int = 20
    #: producers: re-send (same write ids) writes that got no receipt after this long
    client_resend_after_s: float = 60.0
    #: beat schedule, in seconds (<= 0 turns an entry off)
    beat_index_catch_up_s: float = 60.0
    beat_index_rebuild_s: float = 86400.0
    beat_scan_incremental_s: float = 3600.0
    beat_scan_full_s: float = 86400.0
    beat_check_s: float = 86400.0
    #: forgetting (docs/retention.md): blob GC leaves payloads first written (files: last
    #: modified) less than this many hours ago alone, referenced or not
    gc_grace_hours: float = 24.0
    #: retention: keep the last K heads of each session (0: off); older heads go when nothing needs them
    retain_heads: int = 0
    #: retention: drop abandoned branches (rows on no live branch) older than this many days (0: off)
    retain_abandoned_days: float = 0.0
    #: retention never removes a head or row younger than this many hours, whatever the policy
    retain_grace_hours: float = 24.0
    #: beat: run retention and then blob GC this often (only when a retention policy is set)
    beat_retention_s: float = 86400.0
    #: beat: run blob GC alone this often (<= 0: off; retention runs it anyway)
    beat_gc_s: float = 0.0
    #: the address Flower binds
    flower_address: str = "127.0.0.1"
    #: the embedded Redis of `sessiondb up`: its AOF fsync policy (always | everysec)
    redis_appendfsync: str = "everysec"
    #: the embedded Redis of `sessiondb up` on TLS only (`rediss://`): its certificate and key (PEM),
    #: and the CA clients verify it with (default: the certificate itself, i.e. self-signed)
    redis_tls_cert_file: str = ""
    redis_tls_key_file: str = ""
    redis_tls_ca_file: str = ""
    #: Flower basic auth ("user:password"); empty -> the login generated in <root>/fleet/credentials
    flower_basic_auth: str = ""
    flower_port: int = 5555
    #: `sessiondb up`: seconds for the writer to take its lock, every worker to answer a ping and
    #: Flower to answer HTTP; past it everything is stopped and `up` exits non-zero
    fleet_start_timeout_s: float = 120.0
    #: retention: delete sessions stopped (status stopped or error) for more than this many days
    #: and with no live dependants (`store.forget.age`); 0 (the default) turns it off
    retain_stopped_days: float = 0

    def __repr__(self) -> str:  # the database URL's password never reaches a log line or a traceback
        from .rows.dialect import shown_setting

        values = {name: getattr(self, name) for name in self.__struct_fields__}
        values["database_url"] = shown_setting(self.database_url)
        fields = ", ".join(f"{name}={value!r}" for name, value in values.items())
        return f"Settings({fields})"

    @property
    def message_limit(self) -> int:
        """The largest broker message body the writer decodes (`max_message_bytes`)."""
        return self.max_message_bytes or 3 * self.max_write_bytes + 1024 * 1024

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, object] = {
            name: env[PREFIX + name.upper()] for name in cls.__struct_fields__ if PREFIX + name.upper() in env
        }
        values.update(overrides)
        try:
            return msgspec.convert(values, cls, strict=False)
        except msgspec.ValidationError as exc:
            message, _, where = str(exc).partition(" - at `$.")
            name = PREFIX + where.rstrip("`").upper() if where else "a SESSIONDB_ setting"
            raise ValueError(f"bad setting {name}: {message}") from None
