"""What ``datapipe deploy --local`` prepares for any app before Terraform runs, and cleans after a destroy.

For each source an app declares, the local database gets its database (and PostgreSQL schema) and the
source's CDC login with exactly what Debezium needs:

* MariaDB: ``SELECT`` on the source's database; ``RELOAD``, ``SHOW DATABASES``, ``REPLICATION SLAVE``
  and ``REPLICATION CLIENT`` (``BINLOG MONITOR``) on ``*.*`` (binlog access is server-wide);
* PostgreSQL: ``LOGIN REPLICATION``; ``CONNECT`` on the database, ``USAGE`` on the schema and
  ``SELECT`` on its tables (now and later); each captured table ``REPLICA IDENTITY FULL`` (updates and
  deletes carry every column: no unavailable TOAST values); and the publication the connector reads,
  created and kept equal to the captured tables by the admin (the CDC login owns nothing);
* both: the heartbeat table of a source with a freshness objective (``Source.heartbeat_table``), with
  ``SELECT``, ``INSERT`` and ``UPDATE`` for the CDC login (its ``heartbeat.action.query`` writes it);
* both: the source's Debezium signal table (``Source.signal_table``, ``<database or schema>.debezium_signal``)
  with ``SELECT`` and ``INSERT`` for the CDC login (Debezium writes its incremental-snapshot watermarks
  there); on PostgreSQL it is also in the publication (signals are read from the WAL).

Every Kafka user the app grants topics to gets SCRAM credentials, and every worker secret the manifest
lists is written into the local worker's secrets directory (mode 600).

Terraform variables follow one naming rule (:func:`terraform_variables`): ``kafka_sasl_password`` is the
local Kafka admin's, ``connect_basic_auth_password`` the local Connect REST login's, ``gcp_access_token``
any token the emulator accepts, ``<source>_hash_salt`` a salt generated once per source; anything else
comes from ``TF_VAR_<name>`` in the environment, or the deploy stops naming the variable.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datapipe_cdk.local import _process, connect, databases, kafka, tokens
from datapipe_cdk.local.config import StackConfig, worker_secrets_dir
from datapipe_cdk.manifest import Manifest, Source, WorkerSecret

LOCAL_ACCESS_TOKEN = "local-emulator"
"""What the local provider sends as its Google token: the emulator accepts any bearer token."""
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
SIGNAL_TABLE_COLUMNS = "id VARCHAR(42) PRIMARY KEY, type VARCHAR(32) NOT NULL, data VARCHAR(2048) NULL"
"""Debezium's signal table layout (its documented ``CREATE TABLE debezium_signal``)."""


class ProvisionError(RuntimeError):
    """The local stack cannot prepare an app; the message says what to do."""


@dataclass(frozen=True)
class CdcLogin:
    engine: str
    user: str
    password: str


def _sources_file(cfg: StackConfig) -> Path:
    return kafka.secrets_dir(cfg) / "sources.json"


def _stored(cfg: StackConfig) -> dict[str, str]:
    path = _sources_file(cfg)
    return dict(json.loads(path.read_text())) if path.is_file() else {}


def _remember(cfg: StackConfig, key: str) -> str:
    """A generated secret stored once per run directory under ``key`` (mode 600)."""
    stored = _stored(cfg)
    if key not in stored:
        stored[key] = secrets.token_urlsafe(24)
        _process.write_private(_sources_file(cfg), json.dumps(stored, indent=2) + "\n")
    return stored[key]


def cdc_login(cfg: StackConfig, source: Source) -> CdcLogin:
    """The source's CDC login on the local server (one password per engine and user name)."""
    engine = "postgresql" if source.is_postgres else "mariadb"
    return CdcLogin(engine, source.username, _remember(cfg, f"{engine}/{source.username}"))


def hash_salt(cfg: StackConfig, source_id: str) -> str:
    return _remember(cfg, f"salt/{source_id}")


def state_passphrase(cfg: StackConfig) -> str:
    return _remember(cfg, "opentofu-state")


def _identifier(value: str, what: str) -> str:
    if not _IDENT.match(value):
        raise ProvisionError(f"{what} {value!r} is not a plain SQL identifier; the local stack only provisions those")
    return value


# --- databases ------------------------------------------------------------------------------------


def provision_source(cfg: StackConfig, source: Source) -> None:
    """Create the source's database (and schema) and its CDC login, with exactly Debezium's grants."""
    login = cdc_login(cfg, source)
    if source.is_postgres:
        _provision_postgres(cfg, source, login)
    else:
        _provision_mariadb(cfg, source, login)


def _provision_mariadb(cfg: StackConfig, source: Source, login: CdcLogin) -> None:
    database = _identifier(source.database, "database")
    user = _identifier(login.user, "user name")
    conn = databases.mariadb_connect(cfg)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS `{database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
            cur.execute(f"CREATE USER IF NOT EXISTS '{user}'@'{cfg.host}' IDENTIFIED BY %s", (login.password,))
            cur.execute(f"ALTER USER '{user}'@'{cfg.host}' IDENTIFIED BY %s", (login.password,))
            cur.execute(f"GRANT RELOAD, SHOW DATABASES, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '{user}'@'{cfg.host}'")
            cur.execute(f"GRANT SELECT ON `{database}`.* TO '{user}'@'{cfg.host}'")
            if (signal := _signal_table(source)) is not None:
                table = f"`{signal[0]}`.`{signal[1]}`"
                cur.execute(f"CREATE TABLE IF NOT EXISTS {table} ({SIGNAL_TABLE_COLUMNS})")
                cur.execute(f"GRANT SELECT, INSERT ON {table} TO '{user}'@'{cfg.host}'")
            if (beat := _heartbeat_table(source)) is not None:
                table = f"`{beat[0]}`.`{beat[1]}`"
                cur.execute(f"CREATE TABLE IF NOT EXISTS {table} (id INT PRIMARY KEY, beat TIMESTAMP(6) NOT NULL)")
                cur.execute(f"GRANT SELECT, INSERT, UPDATE ON {table} TO '{user}'@'{cfg.host}'")
    finally:
        conn.close()


def _heartbeat_table(source: Source) -> tuple[str, str] | None:
    """(schema or database, table) of the heartbeat table a freshness objective adds; None without one."""
    if not source.heartbeat_table:
        return None
    namespace, _, table = source.heartbeat_table.partition(".")
    return _identifier(namespace, "heartbeat table schema"), _identifier(table, "heartbeat table")


def _signal_table(source: Source) -> tuple[str, str] | None:
    """(schema or database, table) of the source's signal table; None for a manifest without one."""
    if not source.signal_table:
        return None
    namespace, _, table = source.signal_table.partition(".")
    return _identifier(namespace, "signal table schema"), _identifier(table, "signal table")


def _provision_postgres(cfg: StackConfig, source: Source, login: CdcLogin) -> None:
    from psycopg import sql

    database = _identifier(source.database, "database")
    schema = _identifier(source.schema or "public", "schema")
    user = _identifier(login.user, "user name")
    with databases.postgres_connect(cfg) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,)).fetchone()
        verb = "ALTER" if exists else "CREATE"
        conn.execute(
            sql.SQL("{} ROLE {} WITH LOGIN REPLICATION PASSWORD {}").format(
                sql.SQL(verb), sql.Identifier(user), sql.Literal(login.password)
            )
        )
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database), sql.Identifier(user)))
    with databases.postgres_connect(cfg, dbname=database) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(schema), sql.Identifier(user)))
        conn.execute(
            sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(sql.Identifier(schema), sql.Identifier(user))
        )
        conn.execute(
            sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA {} GRANT SELECT ON TABLES TO {}").format(
                sql.Identifier(schema), sql.Identifier(user)
            )
        )
        if (signal := _signal_table(source)) is not None:
            table = sql.Identifier(*signal)
            conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} (" + SIGNAL_TABLE_COLUMNS + ")").format(table))
            conn.execute(sql.SQL("GRANT SELECT, INSERT ON {} TO {}").format(table, sql.Identifier(user)))
        if (beat := _heartbeat_table(source)) is not None:
            table = sql.Identifier(*beat)
            conn.execute(
                sql.SQL("CREATE TABLE IF NOT EXISTS {} (id integer PRIMARY KEY, beat timestamptz NOT NULL)").format(table)
            )
            conn.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE ON {} TO {}").format(table, sql.Identifier(user)))


def prepare_captured_tables(cfg: StackConfig, source: Source, publication: str | None) -> None:
    """PostgreSQL: every captured table exists, is ``REPLICA IDENTITY FULL``, and is (with the signal table)
    exactly what the source's publication holds (created or changed by the admin, so the CDC login needs no
    ownership)."""
    if not source.is_postgres:
        return
    from psycopg import sql

    schema = source.schema or "public"
    with databases.postgres_connect(cfg, dbname=source.database) as conn:
        present = {row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,)).fetchall()}
        missing = [t.name for t in source.tables if t.name not in present]
        if missing:
            raise ProvisionError(
                f"source {source.name}: table(s) {', '.join(f'{schema}.{m}' for m in missing)} do not exist in database "
                f"{source.database}; create them first: "
                f"datapipe local sql --engine postgres --database {source.database} -f <ddl.sql>"
            )
        tables = [sql.Identifier(schema, t.name) for t in source.tables]
        for table in tables:
            conn.execute(sql.SQL("ALTER TABLE {} REPLICA IDENTITY FULL").format(table))
        if publication is None:
            return
        signal = _signal_table(source)
        listed = sql.SQL(", ").join([*tables, *([sql.Identifier(*signal)] if signal else [])])
        if conn.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (publication,)).fetchone() is None:
            conn.execute(sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(sql.Identifier(publication), listed))
        else:
            conn.execute(sql.SQL("ALTER PUBLICATION {} SET TABLE {}").format(sql.Identifier(publication), listed))


def drop_replication(cfg: StackConfig, source: Source, slot: str | None, publication: str | None) -> list[str]:
    """After a destroy: drop the PostgreSQL slot and publication the source used (an orphaned slot pins
    WAL forever). Returns what was dropped."""
    if not source.is_postgres:
        return []
    from psycopg import sql

    dropped = []
    with databases.postgres_connect(cfg, dbname=source.database) as conn:
        if slot and conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (slot,)).fetchone():
            conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
            dropped.append(f"replication slot {slot}")
        if publication and conn.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (publication,)).fetchone():
            conn.execute(sql.SQL("DROP PUBLICATION {}").format(sql.Identifier(publication)))
            dropped.append(f"publication {publication}")
    return dropped


# --- Kafka users and worker secrets ---------------------------------------------------------------


def kafka_principals(synthesized: Mapping[str, Any]) -> list[str]:
    """Kafka users the stack grants ACLs to (``User:<name>``), minus the local stack's own."""
    found = {
        str(acl.get("acl_principal", ""))
        for acl in synthesized.get("resource", {}).get("kafka_acl", {}).values()
        if str(acl.get("acl_principal", "")).startswith("User:")
    }
    own = {f"User:{kafka.ADMIN}", f"User:{kafka.CONNECT_USER}"}
    return sorted(p.removeprefix("User:") for p in found - own)


def write_worker_secrets(cfg: StackConfig, manifest: Manifest) -> list[Path]:
    """Write every file the manifest says the workers need, with the local stack's values (mode 600)."""
    directory = worker_secrets_dir()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    sources = {s.connector: s for s in manifest.sources}
    written = []
    for secret in manifest.worker_secrets:
        path = Path(secret.file)
        if path.parent != directory:
            raise ProvisionError(
                f"worker secret {secret.file} is outside the local worker's secrets directory {directory}; "
                "deploy with --local so the stack targets the local workers"
            )
        _process.write_private(path, _secret_content(cfg, secret, sources))
        written.append(path)
    return written


def _secret_content(cfg: StackConfig, secret: WorkerSecret, sources: Mapping[str, Source]) -> str:
    if not secret.keys:  # a whole file: the sink's Google key
        return tokens.keyfile_path(cfg).read_text()
    values: dict[str, str] = {}
    source = sources.get(secret.used_by)
    for key in secret.keys:
        if key == "database.password" and source is not None:
            values[key] = cdc_login(cfg, source).password
        elif key == "kafka.sasl.jaas.config":
            values[key] = kafka.scram_jaas(kafka.CONNECT_USER, kafka.passwords(cfg)[kafka.CONNECT_USER])
        else:
            raise ProvisionError(f"worker secret {secret.file}: the local stack has no value for key {key!r}")
    return "".join(f"{key}={_properties_escape(value)}\n" for key, value in values.items())


def _properties_escape(value: str) -> str:
    """A Java properties value: backslashes escaped (``\\`` would start an escape)."""
    return value.replace("\\", "\\\\")


# --- Terraform ------------------------------------------------------------------------------------


def terraform_variables(cfg: StackConfig, manifest: Manifest, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``TF_VAR_*`` for every variable the stack declares, by the naming rule in the module docstring."""
    env = os.environ if environ is None else environ
    result: dict[str, str] = {}
    missing = []
    for variable in manifest.variables:
        value = _local_value(cfg, variable.name)
        if value is None:
            value = env.get(f"TF_VAR_{variable.name}")
        if value is None:
            missing.append(variable.name)
            continue
        result[f"TF_VAR_{variable.name}"] = value
    if missing:
        names = ", ".join(missing)
        raise ProvisionError(
            f"stack {manifest.stack}: no local value for variable(s) {names}; set TF_VAR_<name> for each "
            "(the local stack supplies kafka_sasl_password, connect_basic_auth_password, gcp_access_token and <source>_hash_salt)"
        )
    return result


def _local_value(cfg: StackConfig, name: str) -> str | None:
    if name == "kafka_sasl_password":
        return kafka.passwords(cfg)[kafka.ADMIN]
    if name == "connect_basic_auth_password":
        return connect.rest_password(cfg)
    if name == "gcp_access_token":
        return LOCAL_ACCESS_TOKEN
    if name.endswith("_hash_salt"):
        return hash_salt(cfg, name.removesuffix("_hash_salt"))
    return None


def state_encryption(cfg: StackConfig) -> dict[str, str]:
    """``TF_ENCRYPTION``: OpenTofu encrypts the local state and plans (AES-GCM, key from a passphrase kept
    in the run directory) and refuses to write them unencrypted."""
    passphrase = state_passphrase(cfg)
    config = (
        f'key_provider "pbkdf2" "local" {{ passphrase = "{passphrase}" }}\n'
        'method "aes_gcm" "local" { keys = key_provider.pbkdf2.local }\n'
        "state {\n  method = method.aes_gcm.local\n  enforced = true\n}\n"
        "plan {\n  method = method.aes_gcm.local\n  enforced = true\n}\n"
    )
    return {"TF_ENCRYPTION": config}


def prepare(cfg: StackConfig, manifest: Manifest, synthesized: Mapping[str, Any]) -> None:
    """Everything an app's stack needs on the local stack before ``tofu apply``."""
    for source in manifest.sources:
        provision_source(cfg, source)
    kafka.ensure_users(cfg, kafka_principals(synthesized))
    write_worker_secrets(cfg, manifest)


def source_settings(synthesized: Mapping[str, Any], connector: str) -> Mapping[str, str]:
    """The synthesized config of one connector (slot and publication names live there)."""
    for item in synthesized.get("resource", {}).get("kafka-connect_connector", {}).values():
        if item.get("name") == connector:
            return dict(item.get("config", {}))
    return {}
