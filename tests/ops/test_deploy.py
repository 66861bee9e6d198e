"""docker-compose.yml and the Dockerfile: one image, credentials required, Flower never open, real healthchecks.

The healthcheck commands are run here for real, against a real writer lock and a real
worker fleet, so a healthcheck that could never pass (or never fail) is caught without
Docker. With Docker available, `docker compose config` validates the file and the image is
built; without it those two tests are skipped and say why.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import redis
import yaml
from fleet_fixtures import wait_until

from sessiondb.ops.redis_server import FLEET_ACL, PRODUCER_ACL, free_port

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
ROLES = ("writer", "indexer", "scanner", "reader", "beat", "flower")
CREDENTIALS = {"REDIS_PASSWORD": "s3cret-redis", "PRODUCER_PASSWORD": "s3cret-producer",
               "FLOWER_BASIC_AUTH": "ops:s3cret-flower"}


def healthcheck(service: str) -> str:
    kind, script = SERVICES[service]["healthcheck"]["test"]
    assert kind == "CMD-SHELL"
    return script


def docker_compose() -> list[str] | None:
    for argv in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(argv[0]) and subprocess.run([*argv, "version"], capture_output=True).returncode == 0:
            return argv
    return None


def test_every_role_runs_the_projects_image_with_no_install_at_start_and_no_source_mount():
    for role in ROLES:
        service = SERVICES[role]
        assert service["image"] == "sessiondb:latest" and service["build"] == "."
        command = " ".join(service["command"])
        assert "pip" not in command and "cp " not in command
        assert not [v for v in service.get("volumes", []) if v.split(":")[0] in (".", "./")]


def test_compose_requires_credentials_and_flower_is_published_on_loopback_with_a_login():
    text = (REPO / "docker-compose.yml").read_text()
    assert "${REDIS_PASSWORD:?" in text and "${PRODUCER_PASSWORD:?" in text
    for role in ROLES:
        assert SERVICES[role]["environment"]["SESSIONDB_BROKER_URL"].startswith("redis://sessiondb:${REDIS_PASSWORD:?")
    assert SERVICES["flower"]["environment"]["SESSIONDB_FLOWER_BASIC_AUTH"].startswith("${FLOWER_BASIC_AUTH:?")
    assert SERVICES["flower"]["ports"] == ["${FLOWER_BIND:-127.0.0.1}:5555:5555"]
    assert not [role for role in ROLES if role != "flower" and SERVICES[role].get("ports")]


def test_the_compose_redis_lets_in_only_its_two_users_with_the_same_acl_as_up(tmp_path):
    """The redis service's command, run here for real (as compose would: `$$` is `$`), with the
    image's entrypoint standing in as a script that runs its arguments."""
    kind, flag, script, name = SERVICES["redis"]["command"]
    script = script.replace("$$", "$")
    assert (kind, flag, name) == ("sh", "-c", "redis-server")
    assert f"user producer on >$PRODUCER_PASSWORD {PRODUCER_ACL}\"" in script and FLEET_ACL in script
    assert "$REDIS_PASSWORD" not in script.split("exec", 1)[1]  # the passwords stay off the command line
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    entrypoint = bin_dir / "docker-entrypoint.sh"
    entrypoint.write_text('#!/bin/sh\nexec "$@"\n')
    entrypoint.chmod(0o755)
    port, data = free_port(), tmp_path / "data"
    data.mkdir()
    env = {**os.environ, **CREDENTIALS, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    proc = subprocess.Popen(["sh", "-c", script, name, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data)],
                            env=env, stdout=subprocess.DEVNULL)
    try:
        fleet = redis.Redis(port=port, username="sessiondb", password=CREDENTIALS["REDIS_PASSWORD"])
        wait_until(lambda: _answers(fleet), 20, "the compose redis to answer")
        producer = redis.Redis(port=port, username="producer", password=CREDENTIALS["PRODUCER_PASSWORD"])
        assert producer.lpush("writes", "x") == 1 and fleet.rpush("sessiondb:receipts:c", "r") == 1
        for command in (("RPUSH", "sessiondb:receipts:c", "forged"), ("BRPOP", "writes", "1"), ("CONFIG", "GET", "*")):
            with pytest.raises(redis.exceptions.NoPermissionError):
                producer.execute_command(*command)
        with pytest.raises(redis.ResponseError):
            fleet.config_get("*")
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port).lpush("writes", "x")
        fleet.close()
        producer.close()
    finally:
        proc.kill()
        proc.wait()


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def test_the_dockerfile_copies_every_folder_the_package_is_built_from_and_runs_as_a_user():
    mapping = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    dockerfile = (REPO / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (?!--from)(\S+)", dockerfile, re.M))
    assert set(mapping.values()) <= copied
    ignore = (REPO / ".dockerignore").read_text().split()
    assert {f"!{folder}/" for folder in mapping.values()} <= set(ignore)
    final_stage = dockerfile.rsplit("\nFROM ", 1)[1]
    assert re.search(r"^USER (?!root)\w+", final_stage, re.M)
    assert "pip install --no-cache-dir --no-index" in final_stage  # the wheel, once, at build time


def run_shell(script: str, root: Path, env: dict[str, str] | None = None) -> int:
    # the container's paths become the test's; a ping that gets no answer waits 2 s, not 10
    script = script.replace("/data/store", str(root)).replace("--timeout 10", "--timeout 2")
    return subprocess.run(["sh", "-c", script], env=env, capture_output=True, timeout=120).returncode


HOLD_LOCK = """
import sys, time
from sessiondb.store.writer_lock import WriterLock
lock = WriterLock(sys.argv[1])
assert lock.try_acquire()
print("held", flush=True)
time.sleep(120)
"""


def test_the_writer_healthcheck_passes_exactly_while_the_writer_lock_is_held(tmp_path):
    root = tmp_path / "store"
    root.mkdir()
    script = healthcheck("writer")
    assert run_shell(script, root) != 0  # no writer has ever run here
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(root)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline() == b"held\n"
        assert run_shell(script, root) == 0
    finally:
        holder.kill()
        holder.wait()
    assert run_shell(script, root) != 0  # the lock died with its holder


def test_the_worker_healthchecks_pass_when_that_role_answers_celerys_ping(fleet):
    bin_dir = str(Path(sys.executable).parent)
    env = {**fleet.env, "PATH": bin_dir + os.pathsep + os.environ["PATH"]}
    assert run_shell(healthcheck("indexer"), fleet.root, env) != 0  # not running yet
    fleet.worker("indexer")
    wait_until(lambda: run_shell(healthcheck("indexer"), fleet.root, env) == 0, 120, "the indexer to answer ping")
    assert run_shell(healthcheck("reader"), fleet.root, env) != 0  # another role's answer does not count


def test_docker_compose_config_validates_the_file(tmp_path):
    argv = docker_compose()
    if argv is None:
        pytest.skip("docker compose is not installed here: the file's structure is checked by the tests above")
    env = {**os.environ, **CREDENTIALS}
    done = subprocess.run([*argv, "-f", str(REPO / "docker-compose.yml"), "config", "-q"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    missing = subprocess.run([*argv, "-f", str(REPO / "docker-compose.yml"), "config", "-q"],
                             env={k: v for k, v in os.environ.items() if k not in CREDENTIALS},
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode != 0 and "REDIS_PASSWORD" in missing.stderr


def test_the_image_builds_and_runs_the_cli():
    if shutil.which("docker") is None or subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        pytest.skip("no Docker daemon here: the Dockerfile's structure is checked by the tests above")
    base = re.search(r"^FROM (\S+)", (REPO / "Dockerfile").read_text(), re.M).group(1)
    if subprocess.run(["docker", "pull", "-q", base], capture_output=True, timeout=600).returncode != 0:
        pytest.skip(f"the base image {base} cannot be pulled here (no registry access)")
    built = subprocess.run(["docker", "build", "-q", "-t", "sessiondb:test", str(REPO)], capture_output=True,
                           text=True, timeout=1800)
    assert built.returncode == 0, built.stderr[-3000:]
    ran = subprocess.run(["docker", "run", "--rm", "sessiondb:test", "--version"], capture_output=True, text=True,
                         timeout=300)
    assert ran.returncode == 0 and ran.stdout.startswith("sessiondb ")
