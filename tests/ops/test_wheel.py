"""The user's path: build the wheel, install it into a fresh venv, use it from a project of one's own.

The project is laid out like Celery's tutorial: its own `tasks.py`, `store.py` and `ops/`
package, each of which fails loudly when imported. sessiondb must import only `sessiondb.*`,
so none of them is ever touched, and the wheel must install no other top-level name.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
from fleet_fixtures import wait_until

from sessiondb.ops.redis_server import free_port

REPO = Path(__file__).resolve().parents[2]
TRAP = "raise ImportError('the project\\'s own {name} was imported: sessiondb must import only sessiondb.*')\n"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy of the source tree (a build leaves build/ behind)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "node_modules", "var", "__pycache__", ".*_cache"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(work / "dist"),
                           str(source)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (built,) = (work / "dist").glob("sessiondb-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh venv with the wheel (and its pinned dependencies) installed; returns its bin/."""
    env_dir = tmp_path_factory.mktemp("venv") / "fresh"
    venv.create(env_dir, with_pip=True)
    done = subprocess.run([str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return env_dir / "bin"


@pytest.fixture
def project(tmp_path) -> Path:
    """A user's project directory with its own tasks.py, store.py and ops/ (each a trap)."""
    home = tmp_path / "myproject"
    (home / "ops").mkdir(parents=True)
    (home / "tasks.py").write_text(TRAP.format(name="tasks.py"))
    (home / "store.py").write_text(TRAP.format(name="store.py"))
    (home / "workers.py").write_text(TRAP.format(name="workers.py"))
    (home / "ops" / "__init__.py").write_text(TRAP.format(name="ops/"))
    return home


def user_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SESSIONDB_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(extra)
    return env


def test_the_wheel_installs_one_top_level_name_and_ships_no_dev_tools(wheel):
    with zipfile.ZipFile(wheel) as whl:
        names = whl.namelist()
        top_level = next(n for n in names if n.endswith(".dist-info/top_level.txt"))
        assert whl.read(top_level).decode().split() == ["sessiondb"]
        metadata = whl.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")} == {"sessiondb"}
    assert "sessiondb/py.typed" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "License-Expression: MIT" in metadata
    assert not [n for n in names if "/bench/" in n or "/datascript/" in n]  # benchmarks run from a checkout
    # every module of the source tree's packages is in the wheel
    for folder in ("store", "tasks", "workers", "ops"):
        for module in (REPO / folder).rglob("*.py"):
            path = module.relative_to(REPO).as_posix()
            if not path.startswith(("ops/bench/", "ops/datascript/")):
                assert f"sessiondb/{path}" in names, module


def test_the_api_imports_and_commits_from_a_project_with_its_own_tasks_py(installed, project):
    script = (
        "import json\n"
        "from sessiondb import Store, SessionClient\n"
        "with Store.open('var/mystore') as store:\n"
        "    r = store.commit({'write_id': 'w1', 'session': 's1', 'events': [\n"
        "        {'type': 'session/started', 'title': 'mine'},\n"
        "        {'type': 'message/added', 'role': 'user', 'content': 'hello'}]})\n"
        "    print(json.dumps([r['status'], store.message_records('s1', include_content=True)[0]['content'],\n"
        "                      SessionClient.__module__]))\n"
    )
    done = subprocess.run([str(installed / "python"), "-c", script], cwd=project, env=user_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == ["committed", "hello", "sessiondb.tasks.client"]
    version = subprocess.run([str(installed / "sessiondb"), "--version"], cwd=project, env=user_env(),
                             capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("sessiondb ")


def test_sessiondb_up_runs_the_fleet_from_a_project_with_its_own_tasks_py(installed, project):
    root, port = project / "var" / "store", free_port()
    env = user_env(SESSIONDB_ROOT=str(root), SESSIONDB_FLOWER_PORT=str(port), PATH=os.environ["PATH"])
    log_path = project / "up.log"
    with open(log_path, "wb") as log:
        up = subprocess.Popen([str(installed / "sessiondb"), "up", "--demo", "--agents", "1", "--turns", "1"],
                              cwd=project, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_until(lambda: b"fleet: running" in log_path.read_bytes() or up.poll() is not None, 180,
                       "the fleet and its demo")
            assert up.poll() is None, log_path.read_text()
            messages = subprocess.run([str(installed / "sessiondb"), "messages", "agent-0", "--json"], cwd=project,
                                      env=env, capture_output=True, text=True, timeout=60)
            assert messages.returncode == 0, messages.stderr
            assert len(json.loads(messages.stdout)) >= 3  # the demo's writes went through the writer
            up.send_signal(signal.SIGINT)
            assert up.wait(60) == 0
        finally:
            if up.poll() is None:
                os.killpg(up.pid, signal.SIGKILL)
                up.wait()
    assert "was imported" not in log_path.read_text()
