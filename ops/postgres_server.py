"""An embedded, private PostgreSQL server: a fresh cluster in a directory, 127.0.0.1 only, a
free port, password (SCRAM) authentication for every connection, its socket in the directory.

Used by the test suite and the benchmarks to run the PostgreSQL backend against a real server
they own (never the machine's 5432). Owns creating the cluster (`initdb`), starting, waiting
for and stopping that one server; it must never touch a cluster it did not create.

PostgreSQL refuses to run as root: as root, `initdb` and `postgres` run as the `postgres` user
(Debian's package creates it), and the directory is handed to that user.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

from .redis_server import free_port

INSTALL_HINT = "PostgreSQL not found: run ./dev test (it installs it) or apt-get install postgresql"


class PostgresNotFound(RuntimeError):
    def __init__(self) -> None:
        super().__init__(INSTALL_HINT)


def server_bin(name: str) -> str:
    """The path of a PostgreSQL server program: on PATH, else Debian's /usr/lib/postgresql/<v>/bin."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                        key=lambda path: int(Path(path).parts[-3]) if Path(path).parts[-3].isdigit() else 0)
    if not candidates:
        raise PostgresNotFound()
    return candidates[-1]


class EmbeddedPostgres:
    """`EmbeddedPostgres(directory).start()`; `url` for SQLAlchemy; `stop()` (or `kill()`)."""

    USER = "sessiondb"
    DATABASE = "sessiondb"

    def __init__(self, directory: str | os.PathLike[str], port: int | None = None) -> None:
        self.dir = Path(directory).resolve()
        self.data = self.dir / "data"
        self.port = port or free_port()
        self.password = secrets.token_urlsafe(18)
        self.proc: subprocess.Popen[bytes] | None = None
        self._as: tuple[int, int] | None = None  # (uid, gid) to run the server as, when we are root

    @property
    def url(self) -> str:
        """The SQLAlchemy URL (psycopg 3 driver), with the password: never print it."""
        return (f"postgresql+psycopg://{self.USER}:{quote(self.password, safe='')}@127.0.0.1:{self.port}"
                f"/{self.DATABASE}")

    def _demote(self) -> None:  # preexec_fn: drop root for initdb / postgres
        if self._as is not None:
            os.setgid(self._as[1])
            os.setuid(self._as[0])

    def _run(self, *argv: str) -> None:
        done = subprocess.run(argv, capture_output=True, preexec_fn=self._demote, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{Path(argv[0]).name} failed ({done.returncode}): "
                               f"{(done.stderr or done.stdout).decode(errors='replace')[-800:]}")

    def start(self, timeout: float = 30.0) -> EmbeddedPostgres:
        initdb, postgres = server_bin("initdb"), server_bin("postgres")
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            self._as = (user.pw_uid, user.pw_gid)
            os.chown(self.dir, user.pw_uid, user.pw_gid)
        if not (self.data / "PG_VERSION").exists():
            pwfile = self.dir / "pwfile"
            pwfile.write_text(self.password + "\n")
            os.chmod(pwfile, 0o600)
            if self._as is not None:
                os.chown(pwfile, *self._as)
            try:
                self._run(initdb, "-D", str(self.data), "-U", self.USER, "--pwfile", str(pwfile),
                          "--auth=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8" if _has_c_utf8() else "--locale=C")
            finally:
                pwfile.unlink()
            self._fresh = True
        else:
            self._fresh = False
        log = open(self.dir / "postgres.log", "ab")  # noqa: SIM115 - the server keeps it open
        self.proc = subprocess.Popen(
            [postgres, "-D", str(self.data), "-p", str(self.port), "-c", "listen_addresses=127.0.0.1",
             "-c", f"unix_socket_directories={self.dir}", "-c", "fsync=on", "-c", "synchronous_commit=on",
             "-c", "max_connections=100"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, preexec_fn=self._demote, start_new_session=True)
        log.close()
        self.wait_ready(timeout)
        if self._fresh:
            self._create_database()
        return self

    def _connect(self, database: str = "postgres"):  # noqa: ANN202 - a psycopg connection
        import psycopg

        return psycopg.connect(host="127.0.0.1", port=self.port, user=self.USER, password=self.password,
                               dbname=database, connect_timeout=2, autocommit=True)

    def wait_ready(self, timeout: float = 30.0) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                log = (self.dir / "postgres.log").read_text(errors="replace")[-800:]
                raise RuntimeError(f"postgres exited with {self.proc.returncode}: {log}")
            try:
                self._connect().close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"postgres on port {self.port} did not answer within {timeout}s") from None
                time.sleep(0.1)

    def _create_database(self) -> None:
        with self._connect() as conn:
            conn.execute(f'CREATE DATABASE "{self.DATABASE}"')

    def stop(self, timeout: float = 30.0) -> None:
        """SIGINT (a fast shutdown: sessions are ended, everything committed is kept); SIGKILL after `timeout`."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(2)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL the postmaster and its backends (a crash: the next start recovers from the WAL)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, 9)
            self.proc.wait()


def _has_c_utf8() -> bool:
    done = subprocess.run(["locale", "-a"], capture_output=True, text=True)
    return any(name.lower().replace("-", "") == "c.utf8" for name in done.stdout.split())
