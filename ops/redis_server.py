"""An embedded, private `redis-server`: 127.0.0.1 only, a free port, AOF inside a directory,
and (with a user and password) nobody in without them.

Used by `sessiondb up` when no broker is configured (data in `<root>/redis/`) and by the
test suite (a temp dir). Owns starting, waiting for and stopping that one process; it
must never touch a Redis it did not start (never the machine's 6379).

With `user` and `password` the server's default user is off (a client without credentials
can run nothing but AUTH/HELLO) and `user` gets `FLEET_ACL`: every key and channel and
every command but the `@admin` and `@dangerous` ones (CONFIG, FLUSHALL, FLUSHDB, DEBUG,
SHUTDOWN, MONITOR, KEYS, ACL ..., which neither kombu, Celery, Flower nor sessiondb need).
That user is for the workers, beat and Flower. With `producer` (a second user and password)
producers get `PRODUCER_ACL`: exactly what `SessionClient` does — publish to the `writes` and
`reads` queues, pop its own receipt list, read its read results — and nothing that forges or
steals: it cannot push a receipt, set or publish a result, or read or pop a queue.
The rules go in a 0600 config file in the directory, the passwords only as their SHA-256
(never on a command line, which other local users can read in /proc).
"""

from __future__ import annotations

import hashlib
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import redis

from sessiondb.store.private import UMASK, make_private_dir, write_private_file

INSTALL_HINT = "redis-server not found: run ./dev up (it installs it) or apt-get install redis-server"


#: what the fleet's Redis user may do: everything kombu/Celery/Flower use, no administration
FLEET_ACL = "~* &* +@all -@admin -@dangerous"
#: what a producer may do (Redis 7 ACL selectors: a command is let through when one of the
#: parenthesised rules allows the command on all of its keys). kombu publishes with LPUSH (and
#: sizes queues with LLEN in MULTI/EXEC), declares its routing in `_kombu.binding*` sets; the
#: client BLPOPs `sessiondb:receipts:<its id>`; Celery's result backend GETs and SUBSCRIBEs
#: `celery-task-meta-<task id>` for a remote read, and DELs it once read (its value holds
#: contents). No RPUSH, SET, PUBLISH, LRANGE, BRPOP, SCAN.
PRODUCER_ACL = ("resetkeys resetchannels -@all +ping +auth +hello +select +client|setname +multi +exec +discard"
                " ~sessiondb:receipts:* +blpop"
                " (~writes ~reads +lpush +llen)"
                " (~_kombu.binding* +sadd +smembers)"
                " (~celery-task-meta-* &celery-task-meta-* +get +mget +del +subscribe +unsubscribe)")
CONFIG_FILE = "sessiondb-redis.conf"


class RedisNotFound(RuntimeError):
    def __init__(self) -> None:
        super().__init__(INSTALL_HINT)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class TlsFiles:
    """PEM files for a TLS-only Redis: its certificate and key, and the CA clients verify it with."""

    cert_file: str
    key_file: str
    ca_file: str


class EmbeddedRedis:
    def __init__(self, directory: str | Path, port: int | None = None, appendfsync: str = "everysec",
                 user: str | None = None, password: str | None = None, tls: TlsFiles | None = None,
                 producer: tuple[str, str] | None = None) -> None:
        """`tls`: listen on TLS only (`--port 0 --tls-port`), clients need no certificate of their
        own; `url` is then a `rediss://` URL that verifies the server against `tls.ca_file`.
        `producer`: (user, password) of a second, producer-only user (`producer_url`)."""
        self.dir = Path(directory).resolve()
        self.tls = tls
        for name, secret in ((user, password), producer or (user, password)):
            if (name is None) != (secret is None) or (name is not None and not (name.isidentifier() and secret)):
                raise ValueError("EmbeddedRedis needs both a user (letters, digits, _) and a password, or neither")
        if producer is not None and (user is None or producer[0] == user):
            raise ValueError("EmbeddedRedis's producer user needs a fleet user, and another name")
        self.user, self.password = user, password
        self.producer = producer
        self._pick_port = not port  # a port we chose may be taken before redis-server binds it
        self.port = port or free_port()
        self.appendfsync = appendfsync
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The URL clients use: with the user and password when it has them (never print it:
        `tasks.broker.printable_url`)."""
        return self._url(self.user, self.password)

    @property
    def producer_url(self) -> str:
        """The URL of the producer-only user (the fleet user's `url` when there is none)."""
        return self._url(*self.producer) if self.producer else self.url

    def _url(self, user: str | None, password: str | None) -> str:
        auth = f"{quote(user, safe='')}:{quote(password or '', safe='')}@" if user else ""
        if self.tls is not None:
            query = f"ssl_cert_reqs=required&ssl_ca_certs={quote(self.tls.ca_file, safe='/')}"
            return f"rediss://{auth}127.0.0.1:{self.port}/0?{query}"
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def _listen_args(self) -> list[str]:
        if self.tls is None:
            return ["--port", str(self.port)]
        return ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", self.tls.cert_file,
                "--tls-key-file", self.tls.key_file, "--tls-ca-cert-file", self.tls.ca_file,
                "--tls-auth-clients", "no"]

    def _config_args(self) -> list[str]:
        """The ACL config file (0600) as redis-server's first argument; nothing without a user."""
        if self.user is None or self.password is None:
            return []
        def digest(password: str) -> str:
            return hashlib.sha256(password.encode()).hexdigest()

        lines = ["# written by sessiondb (ops/redis_server.py): the fleet's ACL",
                 "user default off resetpass -@all",
                 f"user {self.user} on #{digest(self.password)} resetchannels {FLEET_ACL}"]
        if self.producer is not None:
            lines.append(f"user {self.producer[0]} on #{digest(self.producer[1])} {PRODUCER_ACL}")
        path = self.dir / CONFIG_FILE
        write_private_file(path, "\n".join(lines) + "\n")
        return [str(path)]

    def start(self, timeout: float = 10.0, **popen: object) -> EmbeddedRedis:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisNotFound()
        make_private_dir(self.dir)
        logfile = self.dir / "redis.log"
        retries = 4
        while True:
            logged = logfile.stat().st_size if logfile.exists() else 0
            args = [binary, *self._config_args(), "--bind", "127.0.0.1", *self._listen_args(),
                    "--dir", str(self.dir),
                    "--appendonly", "yes", "--appendfsync", self.appendfsync, "--save", "",
                    "--protected-mode", "yes", "--daemonize", "no", "--logfile", str(logfile)]
            popen.setdefault("umask", UMASK)  # its AOF, log and dump files are private
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, **popen)  # type: ignore[call-overload]
            try:
                self.wait_ready(timeout)
            except RuntimeError:
                # Between free_port() and redis-server's bind another process may take the port: if we
                # chose it (and no client knows it yet, i.e. before the first start), choose another.
                lost_port = self.proc.poll() is not None and logfile.exists() and \
                    b"Address already in use" in logfile.read_bytes()[logged:]
                if not (self._pick_port and lost_port and retries):
                    raise
                retries -= 1
                self.port = free_port()
                continue
            self._pick_port = False  # started: clients know this port now, a restart must keep it
            return self

    def wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        try:
            while True:
                if self.proc is not None and self.proc.poll() is not None:
                    logfile = self.dir / "redis.log"
                    log = logfile.read_text(errors="replace")[-500:] if logfile.exists() else ""
                    raise RuntimeError(f"redis-server exited with {self.proc.returncode}: {log}")
                try:
                    if client.ping():
                        return
                except redis.RedisError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on port {self.port} did not answer within {timeout}s")
                time.sleep(0.05)
        finally:
            client.close()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM: Redis flushes the AOF and exits; SIGKILL if it does not within `timeout`."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
