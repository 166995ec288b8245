"""The local stack's services: started in dependency order (Kafka, databases, BigQuery emulator, TLS
front, Connect, the compactor), stopped by PID in reverse order, reset by wiping the run directory.

``up`` writes ``<run>/stack.json`` with endpoints and credential file paths (never the secrets) for
tools, tests and notebooks. The commands are ``datapipe local up | down | status | reset``.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from typing import Any, Protocol

from datapipe_cdk.local import _process, bigquery, compactor, connect, databases, kafka, tls
from datapipe_cdk.local._process import say
from datapipe_cdk.local.config import StackConfig


class Service(Protocol):
    """What every service module provides."""

    def start(self, cfg: StackConfig, /) -> object: ...
    def stop(self, cfg: StackConfig, /) -> bool | None: ...
    def status(self, cfg: StackConfig, /) -> dict[str, str]: ...
    def describe(self, cfg: StackConfig, /) -> dict[str, object]: ...


# Start order; ``down`` walks it backwards. Connect comes last: it takes JVM options from tls.
SERVICES: dict[str, Service] = {
    "kafka": kafka,
    "databases": databases,
    "bigquery": bigquery,
    "tls": tls,
    "connect": connect,
    "compactor": compactor,
}
ORDER: tuple[str, ...] = tuple(SERVICES)


def _start(name: str, cfg: StackConfig) -> None:
    began = time.monotonic()
    if name == "connect" and not _process.is_running("connect"):
        connect.start(cfg, extra_jvm_options=tls.connect_jvm_options(cfg))
    else:
        SERVICES[name].start(cfg)
    say(f"{name}: up ({time.monotonic() - began:.1f}s)")


def up(names: Sequence[str], cfg: StackConfig) -> None:
    for name in names:
        _start(name, cfg)
    write_stack_json(cfg)


def down(names: Sequence[str], cfg: StackConfig) -> None:
    for name in reversed(names):
        stopped = SERVICES[name].stop(cfg)
        say(f"{name}: {'stopped' if stopped or stopped is None else 'was not running'}")


def states(names: Sequence[str], cfg: StackConfig) -> dict[str, str]:
    """Each service's state: ``healthy (...)``, ``stopped`` or ``unhealthy ...``."""
    return {service: state for name in names for service, state in SERVICES[name].status(cfg).items()}


def reset(cfg: StackConfig) -> None:
    """Stop every service and delete the run directory: data, secrets, logs and Terraform state."""
    down(list(ORDER), cfg)
    if cfg.run_dir.exists():
        shutil.rmtree(cfg.run_dir)
    say(f"removed {cfg.run_dir}")


def write_stack_json(cfg: StackConfig) -> None:
    """Host, run dir and ports, plus each service module's ``describe(cfg)``."""
    described: dict[str, object] = {
        "host": cfg.host,
        "run_dir": str(cfg.run_dir),
        "ports": {key: value for key, value in vars(cfg).items() if key.endswith("_port")},
    }
    for name, module in SERVICES.items():
        described[name] = module.describe(cfg)
    path = cfg.run_dir / "stack.json"
    path.write_text(json.dumps(described, indent=2) + "\n")
    say(f"wrote {path}")


def select(only: str | None) -> list[str]:
    """The services named in ``--only`` (all when None), in start order."""
    names = list(ORDER) if not only else [name.strip() for name in only.split(",") if name.strip()]
    unknown = [name for name in names if name not in ORDER]
    if unknown:
        raise SystemExit(f"unknown service(s) {', '.join(unknown)}; choose from {', '.join(ORDER)}")
    return [name for name in ORDER if name in names]


def connection_guide(cfg: StackConfig) -> dict[str, Any]:
    """Endpoints and how to connect as admin (never a password itself: the files that hold them)."""
    creds = databases.credentials(cfg)
    secrets_dir = cfg.run_dir / "secrets"
    how = [
        f"Kafka        {cfg.kafka_bootstrap}  SASL_PLAINTEXT / {kafka.SCRAM}, user {kafka.ADMIN} "
        f"(passwords: {secrets_dir / 'kafka-users.json'})",
        f"Connect      {cfg.connect_url}  basic auth, user {connect.REST_USER} (password: {secrets_dir / 'connect-rest.json'})",
        f"BigQuery     http://{cfg.host}:{cfg.bigquery_port}  project datapipe-local (any bearer token)",
        f"MariaDB      {cfg.host}:{cfg.mariadb_port}  admin {creds.mariadb_admin.user}  "
        f"(password: {secrets_dir / 'databases.json'})",
        f"PostgreSQL   {cfg.host}:{cfg.postgres_port}  admin {creds.postgres_admin.user}  "
        f"(password: {secrets_dir / 'databases.json'})",
        "",
        "Create your schema as admin:   datapipe local sql --engine mariadb|postgres [--database DB] -f schema.sql",
        "Deploy your app onto it:       datapipe deploy --local --app app.py --auto-approve",
        f"All local state lives in {cfg.run_dir}; datapipe local reset --yes wipes it.",
    ]
    return {
        "kafka": cfg.kafka_bootstrap,
        "connect": cfg.connect_url,
        "bigquery": f"http://{cfg.host}:{cfg.bigquery_port}",
        "mariadb": {"host": cfg.host, "port": cfg.mariadb_port, "admin_user": creds.mariadb_admin.user},
        "postgres": {"host": cfg.host, "port": cfg.postgres_port, "admin_user": creds.postgres_admin.user},
        "credentials_files": sorted(str(p) for p in secrets_dir.glob("*.json")) if secrets_dir.is_dir() else [],
        "run_dir": str(cfg.run_dir),
        "how": how,
    }


Result = tuple[list[str], list[tuple[Any, ...]]]
"""A statement's column names and rows."""


def run_sql(cfg: StackConfig, engine: str, text: str, database: str | None) -> list[Result]:
    """Run ``text`` (one or more statements) as the local admin of ``engine``; the results of those that return rows."""
    results: list[Result] = []
    if engine == "mariadb":
        conn = databases.mariadb_connect(cfg, database=database)
        try:
            with conn.cursor() as cur:
                for statement in _statements(text):
                    cur.execute(statement)
                    if cur.description:
                        results.append(([d[0] for d in cur.description], list(cur.fetchall())))
        finally:
            conn.close()
        return results
    from psycopg import sql

    if database:
        with databases.postgres_connect(cfg) as admin:
            if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone() is None:
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    with databases.postgres_connect(cfg, dbname=database or "postgres") as conn:
        cur = conn.execute(text.encode())  # PostgreSQL runs a whole script (functions with ';' inside) at once
        while True:
            if cur.description:
                results.append(([d.name for d in cur.description], list(cur.fetchall())))
            if not cur.nextset():
                break
    return results


def _statements(text: str) -> list[str]:
    """MariaDB statements of a script split on ';' at line ends (our example DDL style; no procedures)."""
    statements: list[str] = []
    current: list[str] = []
    for line in text.splitlines():
        if line.strip().startswith("--") and not current:
            continue
        current.append(line)
        if line.rstrip().endswith(";"):
            statement = "\n".join(current).strip().rstrip(";")
            if statement:
                statements.append(statement)
            current = []
    rest = "\n".join(current).strip()
    if rest:
        statements.append(rest)
    return statements
