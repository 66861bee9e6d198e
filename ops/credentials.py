"""The fleet's credentials: its Redis users and Flower's login, generated once per store root.

`sessiondb up` keeps them in `<root>/fleet/credentials` (JSON, mode 0600, random
`secrets.token_urlsafe` passwords), starts its private redis-server with two ACL users made
from them (`ops.redis_server`, the default user off): the fleet's own (workers, beat, Flower;
handed to its children through `SESSIONDB_BROKER_URL` and to workers started by hand through
`<root>/fleet/worker_broker_url`) and a producer-only one (in `<root>/fleet/broker_url`, what
`SessionClient`, `sessiondb write` and agents find; both files 0600). Flower's basic auth
defaults to the Flower login kept here.
The same passwords are kept across runs of `up` on one root, so a producer configured with the
broker URL keeps working after a restart. Owns only these credentials; never prints a password.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from sessiondb.store.private import FILE_MODE, write_private_file

CREDENTIALS_FILE = "fleet/credentials"
REDIS_USER = "sessiondb"
PRODUCER_USER = "producer"
FLOWER_USER = "sessiondb"


@dataclass(frozen=True)
class Credentials:
    redis_user: str
    redis_password: str
    flower_user: str
    flower_password: str
    producer_user: str = PRODUCER_USER
    producer_password: str = ""

    @property
    def flower_basic_auth(self) -> str:
        return f"{self.flower_user}:{self.flower_password}"

    @property
    def producer(self) -> tuple[str, str]:
        return self.producer_user, self.producer_password


def generate() -> Credentials:
    return Credentials(REDIS_USER, secrets.token_urlsafe(32), FLOWER_USER, secrets.token_urlsafe(18),
                       PRODUCER_USER, secrets.token_urlsafe(32))


def read(root: Path) -> Credentials | None:
    """The credentials kept in `root`, or None when there are none (or they are unreadable)."""
    path = Path(root) / CREDENTIALS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        creds = Credentials(**{k: str(data[k]) for k in Credentials.__dataclass_fields__ if k in data})
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not creds.producer_password:  # kept by an older `up`, before the producer user: add one
        creds = replace(creds, producer_user=PRODUCER_USER, producer_password=secrets.token_urlsafe(32))
        write_private_file(path, json.dumps(asdict(creds), indent=2) + "\n")
    if not all(asdict(creds).values()):
        return None
    if (path.stat().st_mode & 0o777) != FILE_MODE:
        os.chmod(path, FILE_MODE)
    return creds


def load_or_create(root: Path) -> tuple[Credentials, bool]:
    """The root's credentials, generated (and kept 0600) the first time; (credentials, new)."""
    found = read(root)
    if found is not None:
        return found, False
    creds = generate()
    write_private_file(Path(root) / CREDENTIALS_FILE, json.dumps(asdict(creds), indent=2) + "\n")
    return creds, True
