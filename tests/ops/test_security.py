"""Security (issue 12): nobody in who was not let in.

Store files are the owner's alone (0700 / 0600 whatever the umask); the fleet's Redis
refuses clients without the fleet's credentials, the fleet's own user cannot run admin
commands, and the producers' user can only publish and take its receipts; Flower asks for
a login and shows no message content.

Real processes only: `sessiondb up` and the CLI as subprocesses, a real redis-server,
Flower over HTTP.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
from fleet_fixtures import Fleet, wait_until
from fleet_fixtures.up import CLI, Up

from sessiondb.ops.redis_server import EmbeddedRedis, TlsFiles, free_port
from sessiondb.store import Settings, Store
from sessiondb.store.index import Index
from sessiondb.store.integrity import check_consistency, scan_blobs
from sessiondb.store.private import exposed
from sessiondb.tasks import SessionClient


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONDB_")}
    env.update(extra)
    return env


def run_cli(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*CLI, *args], env=env, capture_output=True, timeout=timeout, umask=0o022)


def a_write(write_id: str, session: str, content: str) -> dict:
    return {"write_id": write_id, "session": session, "events": [
        {"type": "session/started", "title": "private"},
        {"type": "message/added", "role": "user", "content": content}]}


def test_a_store_used_as_a_library_under_umask_022_creates_nothing_others_can_read(tmp_path):
    root = tmp_path / "deep" / "store"
    previous = os.umask(0o022)
    try:
        with Store.open(root) as store:
            store.commit_many([a_write(f"w{i}", f"s{i % 3}", f"secret {i} " + "x" * (i * 5000)) for i in range(20)])
            victim = next(iter(store.blobs.iter_files()))
            with Index.open(root) as index:
                index.catch_up()
                index.rebuild()
            scan_blobs(store, full=True)
            check_consistency(store)
        victim.chmod(0o600)
        victim.write_bytes(b"tampered")
        with Store.open(root) as store:
            scan_blobs(store, full=True)  # a corrupt blob is quarantined
        assert any((root / "quarantine").iterdir())
    finally:
        os.umask(previous)
    assert (root / "store.sqlite-wal").exists() or (root / "store.sqlite").stat().st_size
    assert exposed(root) == []
    assert (root.parent.stat().st_mode & 0o777) == 0o700  # a parent it created, too


def test_an_older_store_with_open_modes_becomes_private_at_its_next_writable_open(tmp_path):
    root = tmp_path / "store"
    with Store.open(root) as store:
        store.commit(a_write("o1", "old", "old secret"))
    for path in (root, root / "store.sqlite"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    with Store.open(root, readonly=True) as store:  # a read-only open changes nothing
        assert store.view("old")["messages"]
    assert (root.stat().st_mode & 0o777) == 0o755
    with Store.open(root) as store:
        assert store.view("old")["messages"]
    assert (root.stat().st_mode & 0o777) == 0o700
    assert ((root / "store.sqlite").stat().st_mode & 0o777) == 0o600


def resp(port: int, *command: str) -> bytes:
    """One command over a raw socket with no credentials at all; the first line of the reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"*{len(command)}\r\n".encode() + b"".join(
            f"${len(part.encode())}\r\n{part}\r\n".encode() for part in command))
        return sock.makefile("rb").readline().strip()


def http_get(url: str, auth: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def test_up_lets_nobody_in_without_the_fleets_credentials_and_leaves_nothing_others_can_read(tmp_path):
    root, flower_port = tmp_path / "store", free_port()
    env = clean_env(SESSIONDB_ROOT=str(root), SESSIONDB_FLOWER_PORT=str(flower_port))
    up = Up(tmp_path, env)
    try:
        up.wait_running()
        creds = json.loads((root / "fleet" / "credentials").read_text())
        broker_url = (root / "fleet" / "worker_broker_url").read_text().strip()
        producer_url = (root / "fleet" / "broker_url").read_text().strip()  # what producers find
        parts = urlsplit(broker_url)
        assert (parts.username, parts.password) == ("sessiondb", creds["redis_password"])
        assert urlsplit(producer_url).username == "producer" == creds["producer_user"]
        assert urlsplit(producer_url).password == creds["producer_password"] != creds["redis_password"]
        for secret in ("redis_password", "producer_password"):
            assert len(creds[secret]) >= 32 and creds[secret] not in up.output
        assert "sessiondb:***@" in up.output
        # the Flower login is printed once, when it is generated
        assert up.output.count(creds["flower_password"]) == 1, up.output
        for path in ("fleet/credentials", "fleet/broker_url", "fleet/worker_broker_url", "redis/sessiondb-redis.conf"):
            assert ((root / path).stat().st_mode & 0o777) == 0o600, path
        for secret in ("redis_password", "producer_password"):
            assert creds[secret] not in (root / "redis" / "sessiondb-redis.conf").read_text()

        # With the fleet's credentials (found through the root, as `up` left them) a write commits.
        path = tmp_path / "w.jsonl"
        path.write_text("".join(json.dumps(a_write(f"f{i}", "fleet-s", f"fleet secret {i}")) + "\n"
                                for i in range(5)))
        done = run_cli("write", str(path), "--wait", "--json", env=env)
        assert done.returncode == 0, done.stderr
        assert {r["status"] for r in json.loads(done.stdout)} == {"committed"}
        assert creds["redis_password"].encode() not in done.stdout + done.stderr

        # A client without credentials is refused for every attack of issue 12.
        port = parts.port
        fleet_redis = redis.Redis.from_url(broker_url)
        receipts_key = next(iter(fleet_redis.scan_iter("sessiondb:receipts:*")), b"sessiondb:receipts:x").decode()
        fleet_redis.rpush(receipts_key, b"{}")
        result_key = "celery-task-meta-0"
        for command in (("LPUSH", "writes", "{}"), ("BRPOP", "writes", "1"), ("LRANGE", receipts_key, "0", "-1"),
                        ("RPUSH", receipts_key, '{"write_id": "f0", "status": "committed"}'),
                        ("GET", result_key), ("KEYS", "*"), ("LPUSH", "reads", "{}"), ("FLUSHALL",),
                        ("CONFIG", "SET", "appendfsync", "no"), ("SUBSCRIBE", "celeryev"), ("INFO",)):
            assert resp(port, *command).startswith(b"-NOAUTH"), command
        for user, password in (("default", ""), ("sessiondb", "guess"), ("default", creds["redis_password"])):
            assert resp(port, "AUTH", user, password).startswith(b"-WRONGPASS"), user
        # ... and the fleet's own user cannot administer the server.
        for command in (("CONFIG", "SET", "appendfsync", "no"), ("CONFIG", "GET", "*"), ("FLUSHALL",),
                        ("FLUSHDB",), ("DEBUG", "SLEEP", "0"), ("SHUTDOWN", "NOSAVE"), ("ACL", "LIST"),
                        ("MONITOR",), ("BGREWRITEAOF",), ("REPLICAOF", "127.0.0.1", "1")):
            with pytest.raises(redis.ResponseError):
                fleet_redis.execute_command(*command)
        assert fleet_redis.ping() and fleet_redis.llen("writes") == 0
        # The producers' user (the URL `sessiondb write` and SessionClient found above) publishes and
        # takes receipts, and nothing else: it cannot forge a receipt or a read result, read or pop
        # a queue (others' writes), list keys, or administer anything.
        producer = redis.Redis.from_url(producer_url)
        assert producer.ping()
        for command in (("RPUSH", receipts_key, '{"receipts": [{"write_id": "f0", "status": "committed"}]}'),
                        ("LPUSH", receipts_key, "{}"), ("SET", result_key, "{}"), ("PUBLISH", result_key, "{}"),
                        ("LRANGE", "writes", "0", "-1"), ("BRPOP", "writes", "1"), ("LPOP", "reads"),
                        ("BLMOVE", "writes", "writes.inflight", "RIGHT", "LEFT", "1"),
                        ("LRANGE", receipts_key, "0", "-1"),
                        ("LPUSH", "writes.inflight", "{}"), ("DEL", "writes"), ("SCAN", "0"), ("KEYS", "*"),
                        ("PSUBSCRIBE", "*"), ("SUBSCRIBE", "celeryev"), ("FLUSHALL",), ("FLUSHDB",),
                        ("CONFIG", "SET", "appendfsync", "no"), ("INFO",), ("ACL", "LIST"), ("EVAL", "return 1", "0")):
            with pytest.raises(redis.exceptions.NoPermissionError):
                producer.execute_command(*command)
        assert fleet_redis.lrange(receipts_key, 0, -1) == [b"{}"]  # untouched
        producer.close()
        fleet_redis.close()

        # Flower: nothing without the login, /metrics included; no message content on its task pages.
        flower, login = f"http://127.0.0.1:{flower_port}", f"{creds['flower_user']}:{creds['flower_password']}"
        for page in ("/", "/tasks", "/api/tasks", "/api/workers", "/metrics", "/broker"):
            assert http_get(flower + page)[0] == 401, page
            assert http_get(flower + page, "sessiondb:wrong")[0] == 401, page
        status, metrics = http_get(flower + "/metrics", login)
        assert status == 200 and "sessiondb_queue_depth" in metrics
        with SessionClient(Settings.from_env(env)) as client:
            records = client.message_records("fleet-s", include_content=True)
        assert [r["content"] for r in records] == [f"fleet secret {i}" for i in range(5)]

        def tasks_seen() -> str:
            status, body = http_get(flower + "/api/tasks", login)
            assert status == 200, body
            tasks = json.loads(body)
            names = {t.get("name") for t in tasks.values()}
            done = any(t.get("name") == "reads.message_records" and t.get("state") == "SUCCESS"
                       for t in tasks.values())
            return body if done and "writes.commit" in names else ""

        body = wait_until(tasks_seen, 120, "Flower to see the read and the writes")
        assert "fleet secret" not in body, body
        for page in ("/tasks", "/api/tasks?limit=100"):
            assert "fleet secret" not in http_get(flower + page, login)[1]
        read_id, read_task = next((k, t) for k, t in json.loads(body).items()
                                  if t.get("name") == "reads.message_records")
        assert read_task["result"] == "'<read result not shown>'"
        status, shown = http_get(f"{flower}/api/task/result/{read_id}", login)
        assert status == 403 and "fleet secret" not in shown
        assert http_get(f"{flower}/api/task/result/{read_id}")[0] == 401

        wait_until(lambda: (root / "index.sqlite").exists(), 120, "the indexer to create the index")
        assert run_cli("scan", "--full", "--root", str(root), env=env).returncode == 0
        assert exposed(root) == []  # while it runs: credentials, broker URL, logs, Redis's AOF and config
        up.stop()
    finally:
        up.kill()
    assert exposed(root) == []
    assert (root / "redis").is_dir() and (root / "fleet" / "logs" / "writer.log").is_file()
    assert creds["redis_password"] not in "".join(p.read_text(errors="replace")
                                                  for p in (root / "fleet" / "logs").glob("*.log"))


def test_flower_refuses_an_address_beyond_loopback_without_an_explicit_login(tmp_path, redis_server):
    env = clean_env(SESSIONDB_ROOT=str(tmp_path / "store"), SESSIONDB_BROKER_URL=redis_server.url)
    done = run_cli("flower", "--address", "0.0.0.0", "--port", str(free_port()), env=env, timeout=120)
    assert done.returncode == 1
    assert b"refusing to bind Flower to 0.0.0.0 without a login" in done.stderr and b"Traceback" not in done.stderr
    done = run_cli("flower", "--port", str(free_port()), env={**env, "SESSIONDB_FLOWER_BASIC_AUTH": "nopassword"},
                   timeout=120)
    assert done.returncode == 1 and b"must be user:password" in done.stderr


def test_embedded_redis_with_a_user_refuses_clients_without_it(tmp_path):
    server = EmbeddedRedis(tmp_path / "redis", user="sessiondb", password="s3cret-pass").start()
    try:
        assert resp(server.port, "LPUSH", "writes", "x").startswith(b"-NOAUTH")
        assert resp(server.port, "PING").startswith(b"-NOAUTH")
        client = redis.Redis.from_url(server.url)
        assert client.lpush("writes", "x") == 1 and client.ping()
        with pytest.raises(redis.ResponseError):
            client.config_set("appendfsync", "no")
        client.close()
        assert "s3cret-pass" not in " ".join(Path(f"/proc/{server.proc.pid}/cmdline").read_text().split("\0"))
    finally:
        server.stop()


def self_signed(directory: Path) -> TlsFiles:
    """A certificate for 127.0.0.1 signed by itself (it is its own CA), made by openssl."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=120)
    return TlsFiles(str(cert), str(key), str(cert))


def test_a_write_commits_end_to_end_over_tls_with_credentials(tmp_path):
    tls = self_signed(tmp_path)
    server = EmbeddedRedis(tmp_path / "redis", user="sessiondb", password="tls-pass-1", tls=tls).start()
    logs = tmp_path / "logs"
    logs.mkdir()
    fleet = Fleet(tmp_path / "store", server.url, logs)
    try:
        assert server.url.startswith("rediss://sessiondb:tls-pass-1@127.0.0.1:")
        # no plain-text listener, and TLS without the credentials is refused
        with pytest.raises(redis.ConnectionError):
            redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=5).ping()
        anonymous = server.url.replace("sessiondb:tls-pass-1@", "")
        with pytest.raises(redis.AuthenticationError):
            redis.Redis.from_url(anonymous, socket_timeout=5).lpush("writes", "x")
        fleet.writer()
        with SessionClient(fleet.settings) as client:
            client.ping(10)
            handle = client.write("tls-s", [{"type": "session/started"},
                                            {"type": "message/added", "role": "user", "content": "over TLS"}])
            client.flush()
            assert handle.receipt(timeout=120)["status"] == "committed"
        with fleet.store() as store:
            assert [m["content"] for m in store.message_records("tls-s", include_content=True)] == ["over TLS"]
    finally:
        fleet.close()
        server.stop()


def test_up_with_tls_files_runs_its_redis_on_tls_only_and_writes_commit(tmp_path):
    tls = self_signed(tmp_path)
    root = tmp_path / "store"
    env = clean_env(SESSIONDB_ROOT=str(root), SESSIONDB_FLOWER_PORT=str(free_port()),
                    SESSIONDB_REDIS_TLS_CERT_FILE=tls.cert_file, SESSIONDB_REDIS_TLS_KEY_FILE=tls.key_file)
    up = Up(tmp_path, env)
    try:
        up.wait_running()
        broker_url = (root / "fleet" / "broker_url").read_text().strip()
        assert broker_url.startswith("rediss://producer:") and "ssl_ca_certs=" in broker_url
        assert "rediss://sessiondb:***@" in up.output
        with pytest.raises(redis.ConnectionError):
            redis.Redis(host="127.0.0.1", port=urlsplit(broker_url).port, socket_timeout=5).ping()
        path = tmp_path / "w.jsonl"
        path.write_text(json.dumps(a_write("t0", "tls-up", "tls secret")) + "\n")
        done = run_cli("write", str(path), "--wait", "--json", env=env)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)[0]["status"] == "committed"
        up.stop()
    finally:
        up.kill()


def test_credentials_kept_by_an_older_up_keep_their_passwords_and_gain_a_producer_user(tmp_path):
    from sessiondb.ops import credentials

    path = tmp_path / credentials.CREDENTIALS_FILE
    path.parent.mkdir(mode=0o700)
    old = {"redis_user": "sessiondb", "redis_password": "old-redis-pass", "flower_user": "sessiondb",
           "flower_password": "old-flower-pass"}
    path.write_text(json.dumps(old))
    path.chmod(0o600)
    creds = credentials.read(tmp_path)
    assert creds is not None and (creds.redis_password, creds.flower_password) == ("old-redis-pass", "old-flower-pass")
    assert creds.producer_user == "producer" and len(creds.producer_password) >= 32
    assert credentials.read(tmp_path) == creds  # kept, not generated again
    assert (path.stat().st_mode & 0o777) == 0o600


def test_producers_find_the_producers_url_and_workers_the_fleets(tmp_path):
    from sessiondb.tasks.celery_app import BROKER_FILE, WORKER_BROKER_FILE, configured_broker

    settings = Settings.from_env(clean_env(SESSIONDB_ROOT=str(tmp_path)))
    (tmp_path / "fleet").mkdir()
    (tmp_path / BROKER_FILE).write_text("redis://producer:p@127.0.0.1:1/0\n")
    assert configured_broker(settings) == configured_broker(settings, worker=True) == "redis://producer:p@127.0.0.1:1/0"
    (tmp_path / WORKER_BROKER_FILE).write_text("redis://sessiondb:w@127.0.0.1:1/0\n")
    assert configured_broker(settings) == "redis://producer:p@127.0.0.1:1/0"
    assert configured_broker(settings, worker=True) == "redis://sessiondb:w@127.0.0.1:1/0"
    configured = Settings.from_env(clean_env(SESSIONDB_ROOT=str(tmp_path), SESSIONDB_BROKER_URL="redis://mine/0"))
    assert configured_broker(configured) == configured_broker(configured, worker=True) == "redis://mine/0"
