"""`sessiondb up`: the whole fleet on one machine, supervised, stopped cleanly on Ctrl-C.

First takes the launcher lock (`ops.fleet_lock`: one fleet per root; a second `up`
refuses at once, naming the first). Then starts (when no broker is configured) a private
`redis-server` on 127.0.0.1 with AOF in `<root>/redis/`, its default user off and two ACL
users from `<root>/fleet/credentials` (`ops.credentials`, generated on the first run): the
fleet's (its children's; also in `<root>/fleet/worker_broker_url`) and a producer-only one,
whose URL goes in `<root>/fleet/broker_url` for producers and later commands (both 0600), then
the writer, indexer, scanner, reader, beat and Flower as child processes (logs in
`<root>/fleet/logs/`). Flower asks for the login kept in the same credentials file unless
`SESSIONDB_FLOWER_BASIC_AUTH` says otherwise. Everything it and its children create is 0600
/ 0700 (`store.private`); a password is never printed, but the Flower login is, once, when
it is generated.

It says "running" only once the fleet is (`ops.fleet_ready`): the writer holds its lock,
every worker answered a ping, Flower answers HTTP. A child that exits before that, or a
fleet not ready within `Settings.fleet_start_timeout_s`, stops everything and raises
`FleetStartError` naming the role, its exit code, its log and its last error line. A
child that exits later is reported the same way and restarted. SIGINT/SIGTERM stops the
children (SIGTERM = Celery's warm shutdown, then SIGKILL of the child's process group
after a grace period) and finally Redis, leaving no process behind; children also get
SIGTERM from the kernel if the launcher itself is killed. Owns process supervision only;
it must never commit or read the store.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from sessiondb.store import Settings
from sessiondb.store.private import UMASK, make_private_dir, open_private_append, write_private_file
from sessiondb.store.writer_lock import LOCK_FILE, held_elsewhere, holder_pid
from sessiondb.tasks.broker import check_broker, printable_url
from sessiondb.tasks.celery_app import BROKER_FILE, WORKER_BROKER_FILE, make_app
from sessiondb.tasks.errors import FleetStartError
from sessiondb.workers.roles import node_name

from . import credentials
from .credentials import CREDENTIALS_FILE, Credentials
from .fleet_lock import LauncherLock
from .fleet_ready import describe_exit, http_answers, last_error_line, unanswered_pings, writer_holds_lock
from .redis_server import EmbeddedRedis, TlsFiles, free_port

ROLES = ("writer", "indexer", "scanner", "reader")
STOP_GRACE_S = 15.0


def die_with_parent() -> None:
    """preexec_fn: the kernel sends the child SIGTERM when its parent dies (Linux)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


#: how the private redis-server is started, the first time and on every restart: its own
#: session (a Ctrl-C reaches it only through `stop`), gone with `up`, private files
REDIS_POPEN = {"start_new_session": True, "preexec_fn": die_with_parent, "umask": UMASK}


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def tls_files(settings: Settings) -> TlsFiles | None:
    """The embedded Redis's TLS files from `SESSIONDB_REDIS_TLS_*`; None when TLS is not asked for."""
    cert, key = settings.redis_tls_cert_file, settings.redis_tls_key_file
    if not (cert or key):
        return None
    if not (cert and key):
        raise FleetStartError("TLS for the embedded Redis needs both SESSIONDB_REDIS_TLS_CERT_FILE and"
                              " SESSIONDB_REDIS_TLS_KEY_FILE")
    files = [str(Path(f).resolve()) for f in (cert, key, settings.redis_tls_ca_file or cert)]
    for path in files:
        if not Path(path).is_file():
            raise FleetStartError(f"TLS file {path} does not exist")
    return TlsFiles(*files)


class Child:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name, self.argv, self.env, self.log_path = name, argv, env, log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self.log_offset = 0  # where this run's output starts in the (appended) log

    def start(self) -> None:
        self.log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open_private_append(self.log_path)  # 0600: handed to the child
        self.proc = subprocess.Popen(self.argv, env=self.env, stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent,
                                     umask=UMASK)  # whatever the child creates without a mode is private
        os.close(log)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def exit_report(self) -> str:
        """`writer exited with code 1 (log: <path>): ValueError: ...` — role, exit, log, last error."""
        code = self.proc.returncode if self.proc is not None else None
        line = last_error_line(self.log_path, self.log_offset)
        return f"{self.name} {describe_exit(code)} (log: {self.log_path})" + (f": {line}" if line else "")

    def signal_group(self, sig: int) -> None:
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass


class Fleet:
    def __init__(self, settings: Settings, say: Callable[[str], None] = print, flower: bool = True,
                 beat: bool = True, roles: tuple[str, ...] = ROLES) -> None:
        self.settings, self.say = settings, say
        self.root = Path(settings.root).resolve()
        self.redis: EmbeddedRedis | None = None
        self.children: list[Child] = []
        self.with_flower, self.with_beat, self.roles = flower, beat, roles
        self.broker_url = settings.broker_url  # the workers' (beat's, Flower's)
        self.producer_url = settings.broker_url  # what producers get: a publish-only user on our own Redis
        self.flower_port = settings.flower_port
        self.launcher = LauncherLock(self.root)
        self._broker_file_ours = False
        self.credentials: Credentials | None = None
        self.new_credentials = False
        self.flower_basic_auth = settings.flower_basic_auth
        self.redis_restarts = 0

    @property
    def flower_url(self) -> str:
        return f"http://127.0.0.1:{self.flower_port}/"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(SESSIONDB_ROOT=str(self.root), SESSIONDB_BROKER_URL=self.broker_url,
                   SESSIONDB_FLOWER_PORT=str(self.flower_port))
        if self.flower_basic_auth:
            env["SESSIONDB_FLOWER_BASIC_AUTH"] = self.flower_basic_auth
        return env

    def flower_login_note(self) -> str:
        """How to log in to Flower, for the launcher's output: the generated password only when
        it was just generated (printed once), else where it is kept."""
        if self.credentials is None or self.flower_basic_auth != self.credentials.flower_basic_auth:
            return " (basic auth: SESSIONDB_FLOWER_BASIC_AUTH)"
        where = self.root / CREDENTIALS_FILE
        if self.new_credentials:
            return (f" (login {self.credentials.flower_user} / {self.credentials.flower_password}; printed once,"
                    f" kept in {where})")
        return f" (login {self.credentials.flower_user}, password in {where})"

    def start(self) -> None:
        self.launcher.acquire()  # FleetAlreadyRunningError before anything is started or written
        if "writer" in self.roles and held_elsewhere(self.root):
            # Our writer would only wait as a standby, and `up` would time out; say it now.
            raise FleetStartError(f"{self.root / LOCK_FILE} is held by pid {holder_pid(self.root) or '?'}, a writer"
                                  " outside this fleet: stop it first (one writer per store root)")
        make_private_dir(self.root)
        make_private_dir(self.root / "fleet")
        make_private_dir(self.root / "fleet" / "logs")
        if not self.broker_url or (self.with_flower and not self.flower_basic_auth):
            self.credentials, self.new_credentials = credentials.load_or_create(self.root)
        if self.with_flower and not self.flower_basic_auth:
            assert self.credentials is not None
            self.flower_basic_auth = self.credentials.flower_basic_auth
        if not self.broker_url:
            assert self.credentials is not None
            redis_server = EmbeddedRedis(self.root / "redis", appendfsync=self.settings.redis_appendfsync,
                                         user=self.credentials.redis_user, password=self.credentials.redis_password,
                                         tls=tls_files(self.settings), producer=self.credentials.producer)
            self.redis = redis_server.start(**REDIS_POPEN)
            self.broker_url, self.producer_url = self.redis.url, self.redis.producer_url
            self.say(f"redis: private redis-server on {printable_url(self.broker_url)} (AOF in {self.redis.dir};"
                     f" users {self.credentials.redis_user} for the fleet and {self.credentials.producer_user} for"
                     f" producers, passwords in {self.root / CREDENTIALS_FILE})")
            write_private_file(self.root / WORKER_BROKER_FILE, self.broker_url + "\n")
        else:
            check_broker(self.broker_url, 10.0)  # BrokerUnreachableError: no children to crash-loop
        write_private_file(self.root / BROKER_FILE, self.producer_url + "\n")
        self._broker_file_ours = True
        if self.with_flower and not port_free(self.flower_port):
            self.flower_port = free_port()
        self.launcher.record(printable_url(self.broker_url), self.flower_url if self.with_flower else "")
        cli = [sys.executable, "-m", "sessiondb.ops.cli"]
        specs = [(role, [*cli, "worker", role]) for role in self.roles]
        if self.with_beat:
            specs.append(("beat", [*cli, "beat"]))
        if self.with_flower:
            specs.append(("flower", [*cli, "flower", "--port", str(self.flower_port)]))
        env, log_dir = self.env(), self.root / "fleet" / "logs"
        for name, argv in specs:
            child = Child(name, argv, env, log_dir)
            child.start()
            self.children.append(child)
        self.say(f"fleet: {', '.join(c.name for c in self.children)} started (logs in {log_dir})")

    def wait_ready(self, timeout: float | None = None) -> None:
        """Return once the fleet is ready (see `ops.fleet_ready`); `FleetStartError` when a child
        exits first or `timeout` (default `Settings.fleet_start_timeout_s`) passes."""
        timeout = self.settings.fleet_start_timeout_s if timeout is None else timeout
        deadline = time.monotonic() + timeout
        app = make_app(Settings.from_env(root=str(self.root), broker_url=self.broker_url))
        workers = {node_name(c.name, c.proc.pid): c for c in self.children if c.name in ROLES and c.proc}
        writer_pid = next((c.proc.pid for c in self.children if c.name == "writer" and c.proc), None)
        unanswered, writer_ready, flower_ready = set(workers), writer_pid is None, not self.with_flower
        try:
            while True:
                for child in self.children:
                    if not child.alive():
                        raise FleetStartError(f"{child.exit_report()}; the fleet did not start and was stopped")
                if not writer_ready:
                    writer_ready = writer_pid is not None and writer_holds_lock(self.root, writer_pid)
                unanswered = unanswered_pings(app, unanswered, timeout=0.5)
                if not flower_ready:
                    flower_ready = http_answers(self.flower_url + "healthcheck")
                if writer_ready and not unanswered and flower_ready:
                    return
                if time.monotonic() > deadline:
                    raise FleetStartError(f"the fleet did not start within {timeout:g}s and was stopped: "
                                          + self._not_ready(writer_ready, unanswered, workers, flower_ready))
                time.sleep(0.2)
        finally:
            app.close()

    def _not_ready(self, writer_ready: bool, unanswered: set[str], workers: dict[str, Child],
                   flower_ready: bool) -> str:
        missing = []
        writer = next((c for c in self.children if c.name == "writer"), None)
        if not writer_ready and writer is not None and writer.proc is not None:
            pid = holder_pid(self.root)
            missing.append(f"the writer (pid {writer.proc.pid}, log: {writer.log_path}) has not taken "
                           f"{self.root / LOCK_FILE}" + (f", which names pid {pid}" if pid else ""))
        for name in sorted(unanswered):
            child = workers[name]
            missing.append(f"{child.name} ({name}) did not answer a ping (log: {child.log_path}"
                           + (f", last: {line}" if (line := last_error_line(child.log_path, child.log_offset))
                              else "") + ")")
        if not flower_ready:
            missing.append(f"Flower does not answer at {self.flower_url}")
        return "; ".join(missing)

    def supervise_once(self) -> None:
        """Report and restart the private redis-server and children that exited (with a short back-off)."""
        self._supervise_redis()
        for child in self.children:
            if not child.alive():
                child.restarts += 1
                self.say(f"fleet: {child.exit_report()}; restarting it")
                time.sleep(min(5.0, 0.5 * child.restarts))
                child.start()

    def _supervise_redis(self) -> None:
        """Our private redis-server exited: start it again on the same port, with the same AOF
        (so nothing acknowledged is lost and every client finds it where it was). The workers
        reconnect by themselves; while it is down a producer's write waits or fails, never lies.
        A restart that fails is reported and tried again on the next round."""
        redis_server = self.redis
        if redis_server is None or redis_server.proc is None or redis_server.proc.poll() is None:
            return
        self.redis_restarts += 1
        code = redis_server.proc.returncode
        how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
        self.say(f"redis: redis-server {how} (log: {redis_server.dir / 'redis.log'}); restarting it on port"
                 f" {redis_server.port} with its AOF")
        time.sleep(min(5.0, 0.2 * self.redis_restarts))
        try:
            redis_server.start(**REDIS_POPEN)
        except (RuntimeError, OSError) as exc:
            self.say(f"redis: restart failed ({str(exc).strip().splitlines()[-1] if str(exc).strip() else exc});"
                     " trying again")

    def stop(self) -> None:
        started = bool(self.children or self.redis)
        for child in self.children:
            if child.alive():
                child.signal_group(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for child in self.children:
            while child.alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            child.signal_group(signal.SIGKILL)  # anything left in its group (pool processes)
            if child.proc is not None:
                child.proc.wait()
        if self.redis is not None:
            self.redis.stop()
            if self._broker_file_ours:
                (self.root / BROKER_FILE).unlink(missing_ok=True)
                (self.root / WORKER_BROKER_FILE).unlink(missing_ok=True)
        self.launcher.release()
        if started:
            self.say("fleet: stopped")


def run_until_signal(fleet: Fleet, after_start: Callable[[], None] | None = None) -> None:
    """Start the fleet, run `after_start`, supervise until SIGINT/SIGTERM, then stop everything."""
    stopping: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        stopping.append(signum)
        if len(stopping) == 1:
            raise KeyboardInterrupt  # leave whatever we are waiting for; `finally` stops the fleet

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        fleet.start()
        fleet.wait_ready()
        if fleet.with_flower:
            fleet.say(f"flower: {fleet.flower_url}{fleet.flower_login_note()}  metrics: {fleet.flower_url}metrics")
        if after_start is not None:
            after_start()
        fleet.say(f"fleet: running (writer holds the lock, {len(fleet.roles)} workers answer, broker "
                  f"{printable_url(fleet.broker_url)}); Ctrl-C stops everything")
        while True:
            fleet.supervise_once()
            time.sleep(0.2)
    except KeyboardInterrupt:
        fleet.say("fleet: stopping")
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean stop short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        fleet.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
