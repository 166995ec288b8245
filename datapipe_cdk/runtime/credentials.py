"""Logins for a deployed stack: never in the manifest, read from the local run dir or the environment.

Environment first (for a stack that is not the local one): ``DATAPIPE_KAFKA_USERNAME`` /
``DATAPIPE_KAFKA_PASSWORD`` (a username alone picks that user from the local passwords file),
and per source engine ``DATAPIPE_<ENGINE>_USER`` /
``DATAPIPE_<ENGINE>_PASSWORD`` (``<ENGINE>`` = ``MARIADB``, ``MYSQL`` or ``POSTGRESQL``); each
``..._PASSWORD`` may instead be ``..._PASSWORD_FILE``. Otherwise the local stack's run directory
(``$DATAPIPE_RUN_DIR`` or ``~/.cache/datapipe-cdk/run``): ``stack.json`` and the files it names.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datapipe_cdk.manifest import Source
from datapipe_cdk.runtime.manifest import run_dir


class CredentialsError(RuntimeError):
    """A login is missing; the message says where it was looked for and what to run."""


@dataclass(frozen=True)
class Login:
    user: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class Credentials:
    """Kafka login (None for an unauthenticated broker) and one writer login per source engine."""

    kafka: Login | None
    databases: Mapping[str, Login]
    origin: str

    def database(self, source: Source) -> Login:
        for key in (source.name, _engine_key(source.engine)):
            if key in self.databases:
                return self.databases[key]
        raise CredentialsError(
            f"no database login for source {source.name!r} ({source.engine}) in {self.origin}; start the local "
            f"stack (python -m datapipe_cdk.local up) or set DATAPIPE_{_engine_key(source.engine).upper()}_USER "
            "and _PASSWORD"
        )


def _engine_key(engine: str) -> str:
    return {"postgres": "postgresql"}.get(engine, engine)


def _env_password(prefix: str) -> str | None:
    if (value := os.environ.get(f"{prefix}_PASSWORD")) is not None:
        return value
    if path := os.environ.get(f"{prefix}_PASSWORD_FILE"):
        return Path(path).read_text().strip()
    return None


def _env_login(prefix: str, user_suffix: str = "USER") -> Login | None:
    user = os.environ.get(f"{prefix}_{user_suffix}")
    password = _env_password(prefix)
    return Login(user, password) if user and password is not None else None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def _as_login(raw: Any) -> Login | None:
    """A login from ``{"user"|"username": .., "password": ..}`` or ``{.., "password_file": path}``."""
    if not isinstance(raw, Mapping):
        return None
    user = raw.get("user") or raw.get("username")
    password = raw.get("password")
    if password is None and raw.get("password_file"):
        password = Path(str(raw["password_file"])).read_text().strip()
    return Login(str(user), str(password)) if user and password is not None else None


def _stack_json(base: Path) -> Mapping[str, Any]:
    raw = _read_json(base / "stack.json")
    return raw if isinstance(raw, Mapping) else {}


def _local_databases(base: Path, stack: Mapping[str, Any]) -> dict[str, Login]:
    """Admin (writer) logins from the launcher's ``secrets/databases.json`` (or the file stack.json names)."""
    described = stack.get("databases")
    named = described.get("credentials_file") if isinstance(described, Mapping) else None
    raw = _read_json(Path(str(named)) if named else base / "secrets" / "databases.json") or {}
    found: dict[str, Login] = {}
    for key, engines in (("mariadb_admin", ("mariadb", "mysql")), ("postgres_admin", ("postgresql",))):
        if (login := _as_login(raw.get(key))) is not None:
            for engine in engines:
                found[engine] = login
    return found


def _local_kafka(base: Path, stack: Mapping[str, Any], user: str | None) -> Login | None:
    """A SCRAM login from the passwords file that stack.json names (``kafka.passwords_file``, a JSON
    object user → password); the super user (``admin``) unless ``user`` is given."""
    kafka = stack.get("kafka")
    kafka = kafka if isinstance(kafka, Mapping) else {}
    passwords = _read_json(Path(str(kafka.get("passwords_file") or base / "secrets" / "kafka-users.json")))
    if not isinstance(passwords, Mapping):
        return None
    if user is None:
        supers = [str(u).removeprefix("User:") for u in kafka.get("super_users") or []]
        user = supers[0] if supers else "admin"
    password = passwords.get(user)
    return Login(user, str(password)) if password is not None else None


def load_credentials() -> Credentials:
    """Logins from the environment, falling back to the local stack's run directory."""
    base = run_dir()
    stack = _stack_json(base)
    databases = _local_databases(base, stack)
    for engine in ("mariadb", "mysql", "postgresql"):
        if (login := _env_login(f"DATAPIPE_{engine.upper()}")) is not None:
            databases[engine] = login
    kafka = _env_login("DATAPIPE_KAFKA", "USERNAME") or _local_kafka(base, stack, os.environ.get("DATAPIPE_KAFKA_USERNAME"))
    return Credentials(kafka=kafka, databases=databases, origin=f"environment and {base}")
