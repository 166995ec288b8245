"""``datapipe doctor``: read-only checks of every source an app declares, against the live services.

Each check is a small function returning :class:`Finding` objects: a severity (``error``, ``warning``,
``info`` or ``ok``), the component (source, topic or connector, and what about it), what was found and
the rule, and the exact statement or setting that fixes it. A check that cannot run (a refused login,
a missing privilege, a timeout) becomes an ``error`` finding: the doctor never stops half-way.

* MySQL/MariaDB (PyMySQL): ``binlog_format=ROW``, ``binlog_row_image=FULL``, GTIDs (MariaDB's
  ``gtid_strict_mode``/``gtid_domain_id``; MySQL's ``gtid_mode``), binlog retention against the outage
  budget, the connector's ``database.server.id`` against the server's ``server_id``, and the CDC user's
  grants (SELECT on the database; RELOAD, REPLICATION SLAVE and REPLICATION CLIENT on ``*.*``, which
  MariaDB 10.5.2+ shows as BINLOG MONITOR; REPLICATION SLAVE ADMIN does not stand in for it: it allows
  no ``SHOW MASTER STATUS``).
* PostgreSQL (psycopg): ``wal_level=logical``, free replication slots and WAL senders, each captured
  table's REPLICA IDENTITY (:func:`datapipe_cdk.runtime.drift.drift`'s rule), the publication holds
  exactly the captured tables, the slot's lag in bytes, and the CDC role's privileges (LOGIN
  REPLICATION, CONNECT, USAGE, SELECT).
* Both: the source's Debezium signal table (``Source.signal_table``, when the manifest names one) exists,
  the CDC login may SELECT and INSERT it, and a PostgreSQL publication holds it.
* Kafka (AdminClient): the declared topics (the stack's ``kafka_topic`` resources) exist with their
  partitions and configs; the Connect principal's ACLs (those the connectors depend on) are present.
* Kafka Connect: every connector and task RUNNING; the sinks' dead-letter topics are empty.

Sessions are read-only (:class:`~datapipe_cdk.runtime.source.SourceDatabase`); the doctor writes nothing.
Logins: on the local stack the admin logins of :func:`~datapipe_cdk.runtime.credentials.load_credentials`;
elsewhere only ``DATAPIPE_<ENGINE>_USER`` / ``_PASSWORD`` and ``DATAPIPE_KAFKA_USERNAME`` / ``_PASSWORD``.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass
from datetime import timedelta
from functools import partial
from typing import Any, Protocol

from datapipe_cdk.access import live_kafka_acls
from datapipe_cdk.connect_api import ConnectClient, ConnectorState
from datapipe_cdk.heartbeat import heartbeat_ddl
from datapipe_cdk.local import connect as local_connect
from datapipe_cdk.local.config import StackConfig
from datapipe_cdk.manifest import KafkaEndpoint, Manifest, Source
from datapipe_cdk.runtime._sql import quote_mysql, quote_postgres
from datapipe_cdk.runtime.credentials import Credentials, Login, _env_login, load_credentials
from datapipe_cdk.runtime.drift import drift, fitting_types
from datapipe_cdk.runtime.sink_health import DeadLetter, dead_letters
from datapipe_cdk.runtime.source import SourceColumn, SourceDatabase

ERROR, WARNING, INFO, OK = "error", "warning", "info", "ok"
SEVERITIES = (ERROR, WARNING, INFO, OK)
DEFAULT_OUTAGE_BUDGET = timedelta(hours=24)
DEFAULT_SLOT_LAG_WARNING = 1024**3
"""Bytes of WAL a slot may hold back before the doctor warns (1 GiB)."""
TIMEOUT_S = 10.0
_QUIET = logging.getLogger("datapipe.doctor.kafka")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False  # librdkafka logs every failed connection attempt; one finding says it once


@dataclass(frozen=True)
class Finding:
    """One result: ``severity`` (error, warning, info, ok), ``component`` (``<source>: <what>``),
    ``message`` (what was found and the rule) and ``fix`` (the exact statement or setting; empty when ok)."""

    severity: str
    component: str
    message: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


# --- how the doctor reaches the services (tests pass fakes) ---------------------------------------


class Session(Protocol):
    """A read-only session on a source database."""

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...
    def columns(self, table: str) -> list[SourceColumn]: ...
    def replica_identity(self, table: str) -> str | None: ...


class KafkaAdmin(Protocol):
    def topics(self) -> Mapping[str, int]:
        """Partitions of every topic the login may describe."""

    def topic_config(self, topic: str) -> Mapping[str, str]: ...

    def acls(self) -> Sequence[tuple[str, ...]]:
        """``(principal, resource type, name, operation, pattern, permission, host)`` of every ACL."""


class Connect(Protocol):
    def status(self, name: str) -> ConnectorState: ...


@dataclass
class Reach:
    """How the doctor reaches the live services: ``Reach.live(manifest)``, or fakes in tests."""

    database: Callable[[Source], AbstractContextManager[Session]]
    kafka: Callable[[], KafkaAdmin]
    connect: Callable[[], Connect]
    dead_letters: Callable[[str], Sequence[DeadLetter]]

    @classmethod
    def live(cls, manifest: Manifest) -> Reach:
        """The real services; logins by :func:`doctor_credentials`."""
        credentials = doctor_credentials(manifest)
        return cls(
            database=lambda source: _open_session(source, credentials.database(source)),
            kafka=lambda: ConfluentAdmin(manifest.kafka, credentials.kafka),
            connect=lambda: _connect_client(manifest),
            dead_letters=lambda topic: dead_letters(manifest.kafka, credentials.kafka, topic, timeout_s=TIMEOUT_S),
        )


def doctor_credentials(manifest: Manifest) -> Credentials:
    """Local stack: :func:`load_credentials` (its admin logins). Elsewhere the environment only:
    ``DATAPIPE_<ENGINE>_USER`` / ``_PASSWORD`` (``MARIADB``, ``MYSQL``, ``POSTGRESQL``) and
    ``DATAPIPE_KAFKA_USERNAME`` / ``_PASSWORD``: never the local run directory's passwords."""
    if manifest.target == "local":
        return load_credentials()
    engines = ("mariadb", "mysql", "postgresql")
    databases = {e: login for e in engines if (login := _env_login(f"DATAPIPE_{e.upper()}")) is not None}
    return Credentials(_env_login("DATAPIPE_KAFKA", "USERNAME"), databases, "the environment (DATAPIPE_*_USER/_PASSWORD)")


class _SourceSession:
    """A :class:`Session` over a read-only :class:`SourceDatabase`."""

    def __init__(self, db: SourceDatabase) -> None:
        self._db = db

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._db._cursor() as cur:
            cur.execute(sql, tuple(params) if params else None)  # None: a literal % stays a %
            return [tuple(r) for r in cur.fetchall()]

    def columns(self, table: str) -> list[SourceColumn]:
        return self._db.columns(table)

    def replica_identity(self, table: str) -> str | None:
        return self._db.replica_identity(table)


@contextmanager
def _open_session(source: Source, login: Login) -> Iterator[Session]:
    with SourceDatabase(source, login) as db:  # read-only: the session itself refuses writes
        yield _SourceSession(db)


def _connect_client(manifest: Manifest) -> ConnectClient:
    password = local_connect.rest_password(StackConfig()) if manifest.target == "local" else None
    return ConnectClient(manifest.connect.url, manifest.connect.basic_auth_username, password, timeout=TIMEOUT_S)


class ConfluentAdmin:
    """:class:`KafkaAdmin` with confluent-kafka's AdminClient."""

    def __init__(self, kafka: KafkaEndpoint, login: Login | None, timeout: float = TIMEOUT_S) -> None:
        from confluent_kafka.admin import AdminClient  # type: ignore[import-not-found,unused-ignore]

        self.config: dict[str, Any] = {
            "bootstrap.servers": ",".join(kafka.bootstrap_servers),
            "security.protocol": kafka.security_protocol,
        }
        if kafka.security_protocol.startswith("SASL"):
            if login is None:
                raise RuntimeError("Kafka needs a SASL login: set DATAPIPE_KAFKA_USERNAME and DATAPIPE_KAFKA_PASSWORD")
            self.config.update(
                {
                    "sasl.mechanism": kafka.sasl_mechanism or "SCRAM-SHA-512",
                    "sasl.username": login.user,
                    "sasl.password": login.password,
                }
            )
        self.timeout = timeout
        settings: dict[str, Any] = {**self.config, "logger": _QUIET}
        self._admin = AdminClient(settings)

    def topics(self) -> dict[str, int]:
        metadata = self._admin.list_topics(timeout=self.timeout)
        return {name: len(t.partitions) for name, t in metadata.topics.items() if t.error is None}

    def topic_config(self, topic: str) -> dict[str, str]:
        from confluent_kafka.admin import ConfigResource  # type: ignore[import-not-found,unused-ignore]

        resource = ConfigResource("topic", topic)
        entries = self._admin.describe_configs([resource], request_timeout=self.timeout)[resource].result(self.timeout)
        return {key: str(entry.value) for key, entry in entries.items()}

    def acls(self) -> list[tuple[str, ...]]:
        return live_kafka_acls(self.config, self.timeout)


# --- helpers --------------------------------------------------------------------------------------


def parse_duration(text: str) -> timedelta:
    """``24h``, ``90m``, ``2d``, ``1h30m``, ``45s`` -> a positive timedelta (ValueError otherwise)."""
    parts = re.findall(r"(\d+)\s*([dhms])", text.strip().lower())
    if not parts or re.sub(r"\s*\d+\s*[dhms]\s*", "", text.strip().lower()):
        raise ValueError(f"{text!r} is not a duration such as 24h, 90m, 2d or 1h30m")
    unit = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
    total = sum((timedelta(**{unit[u]: int(n)}) for n, u in parts), timedelta())
    if total <= timedelta():
        raise ValueError(f"{text!r} must be longer than zero")
    return total


def _words(duration: timedelta) -> str:
    """``timedelta(hours=24)`` -> ``24 hours`` (``1 day`` would hide the unit the setting uses)."""
    seconds = int(duration.total_seconds())
    for size, unit in ((3600, "hour"), (60, "minute"), (1, "second")):
        if seconds % size == 0:
            return f"{seconds // size} {unit}{'s' if seconds != size else ''}"
    return f"{seconds} seconds"


def _size(count: int) -> str:
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if abs(count) >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count} bytes"


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _guarded(component: str, check: Callable[[], list[Finding]]) -> list[Finding]:
    """The check's findings, or one error finding naming why it could not run."""
    try:
        return check()
    except Exception as error:  # a check never stops the run
        return [
            Finding(
                ERROR,
                component,
                f"could not check: {_reason(error)}",
                "fix the cause above (often: the doctor's login may not read it), then run the doctor again",
            )
        ]


def _literal(value: object) -> str:
    return "'" + str(value).replace("\\", "\\\\").replace("'", "''") + "'"


def _connector_configs(synthesized: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Connector name -> its resource (``config``, ``depends_on``) from ``cdk.tf.json``."""
    resources = synthesized.get("resource", {}).get("kafka-connect_connector", {})
    return {str(r.get("name")): dict(r) for r in resources.values()}


# --- MySQL / MariaDB --------------------------------------------------------------------------------

_MYSQL_VARIABLES = (
    "log_bin",
    "binlog_format",
    "binlog_row_image",
    "server_id",
    "gtid_mode",
    "enforce_gtid_consistency",
    "gtid_strict_mode",
    "gtid_domain_id",
    "binlog_expire_logs_seconds",
    "expire_logs_days",
)


@dataclass(frozen=True)
class MySqlServer:
    """The global variables the checks read, and whether the server is MariaDB."""

    mariadb: bool
    variables: Mapping[str, str]

    def get(self, name: str) -> str:
        return str(self.variables.get(name, "")).upper()

    def set_global(self, name: str, value: object) -> str:
        """The statement that sets a global variable for good where the server can (MySQL 8: SET PERSIST)."""
        verb = "SET GLOBAL" if self.mariadb else "SET PERSIST"
        shown = value if isinstance(value, int) or value in ("ON", "OFF") else _literal(value)
        return f"{verb} {name} = {shown};"

    @property
    def config_note(self) -> str:
        return " (also set it under [mariadbd] in the server's config file, or a restart undoes it)" if self.mariadb else ""


def read_mysql_server(session: Session) -> MySqlServer:
    version = str(session.rows("SELECT VERSION()")[0][0])
    placeholders = ", ".join(["%s"] * len(_MYSQL_VARIABLES))
    rows = session.rows(f"SHOW GLOBAL VARIABLES WHERE Variable_name IN ({placeholders})", _MYSQL_VARIABLES)
    return MySqlServer("mariadb" in version.lower(), {str(k).lower(): str(v) for k, v in rows})


def check_binlog_format(source: Source, server: MySqlServer) -> list[Finding]:
    where = f"{source.name}: binlog_format"
    if server.get("log_bin") not in ("ON", "1"):
        return [
            Finding(
                ERROR,
                where,
                f"the binary log is off (log_bin={server.get('log_bin') or '?'}): Debezium reads changes from it",
                "log_bin=ON and binlog_format=ROW in the server's config file, then restart it",
            )
        ]
    value = server.get("binlog_format")
    if value != "ROW":
        return [
            Finding(
                ERROR,
                where,
                f"binlog_format is {value or '?'}; Debezium needs ROW (it reads row events, not statements){server.config_note}",
                server.set_global("binlog_format", "ROW"),
            )
        ]
    return [Finding(OK, where, "binlog_format is ROW")]


def check_binlog_row_image(source: Source, server: MySqlServer) -> list[Finding]:
    where = f"{source.name}: binlog_row_image"
    value = server.get("binlog_row_image")
    if value != "FULL":
        return [
            Finding(
                ERROR,
                where,
                f"binlog_row_image is {value or '?'}; Debezium needs FULL (with {value or 'it'}, "
                "updates and deletes lack the columns they did not change); sessions already open keep the old "
                f"value until they reconnect{server.config_note}",
                server.set_global("binlog_row_image", "FULL"),
            )
        ]
    return [Finding(OK, where, "binlog_row_image is FULL")]


def check_gtid(source: Source, server: MySqlServer) -> list[Finding]:
    where = f"{source.name}: GTID"
    if server.mariadb:
        strict, domain = server.get("gtid_strict_mode"), server.variables.get("gtid_domain_id", "?")
        if strict not in ("ON", "1"):
            return [
                Finding(
                    INFO,
                    where,
                    f"MariaDB writes GTIDs (gtid_domain_id={domain}); gtid_strict_mode is {strict or '?'}, "
                    "so a replica can diverge silently and a failover may hand Debezium a position that does not "
                    f"match{server.config_note}",
                    server.set_global("gtid_strict_mode", "ON"),
                )
            ]
        return [Finding(OK, where, f"gtid_strict_mode is ON (gtid_domain_id={domain})")]
    mode = server.get("gtid_mode")
    if mode != "ON":
        return [
            Finding(
                INFO,
                where,
                f"gtid_mode is {mode or '?'}: Debezium follows binlog file and position, which a "
                "failover to a replica does not keep (with GTIDs it resumes on the new primary)",
                "SET PERSIST enforce_gtid_consistency = ON; then step gtid_mode through OFF_PERMISSIVE, "
                "ON_PERMISSIVE to ON (SET PERSIST gtid_mode = ...; one step at a time)",
            )
        ]
    return [Finding(OK, where, "gtid_mode is ON")]


def binlog_retention(server: MySqlServer) -> timedelta | None:
    """How long binlogs are kept; None when they are never purged automatically."""
    seconds = int(float(server.variables.get("binlog_expire_logs_seconds") or 0))
    if not seconds:
        seconds = round(float(server.variables.get("expire_logs_days") or 0) * 86400)
    return timedelta(seconds=seconds) if seconds else None


def check_binlog_retention(source: Source, server: MySqlServer, budget: timedelta) -> list[Finding]:
    where = f"{source.name}: binlog retention"
    kept = binlog_retention(server)
    if kept is None:
        return [Finding(OK, where, "binlogs are never purged automatically (keep an eye on the disk)")]
    if kept < budget:
        if "binlog_expire_logs_seconds" in server.variables:
            fix = server.set_global("binlog_expire_logs_seconds", int(budget.total_seconds()))
        else:
            fix = server.set_global("expire_logs_days", math.ceil(budget / timedelta(days=1)))
        return [
            Finding(
                ERROR,
                where,
                f"binlogs are kept {_words(kept)}, less than the outage budget of {_words(budget)}: "
                f"a connector down longer than {_words(kept)} resumes from a purged binlog and must re-snapshot"
                f"{server.config_note}",
                fix,
            )
        ]
    return [Finding(OK, where, f"binlogs are kept {_words(kept)} (outage budget {_words(budget)})")]


def check_server_id(source: Source, server: MySqlServer, config: Mapping[str, Any], peers: Mapping[str, str]) -> list[Finding]:
    """The connector's ``database.server.id`` differs from the server's and from other connectors' on it (``peers``)."""
    where = f"{source.name}: server id"
    mine = str(config.get("database.server.id", ""))
    if not mine.isdigit():
        return [Finding(INFO, where, f"the connector's database.server.id is not a literal ({mine or 'unset'}): not checked")]
    fix = f"CdcSource({source.name!r}, ..., server_id=<an id no server or other replication client uses>) in the app"
    if mine == str(server.variables.get("server_id")):
        return [
            Finding(
                ERROR,
                where,
                f"connector {source.connector} replicates with database.server.id={mine}, the server's "
                "own server_id: the server refuses (or drops) a replication client with its own id",
                fix,
            )
        ]
    clash = sorted(name for name, other in peers.items() if other == mine and name != source.connector)
    if clash:
        return [
            Finding(
                ERROR,
                where,
                f"connector {source.connector} and {', '.join(clash)} replicate from this server with "
                f"the same database.server.id={mine}: the server drops one connection when the other connects",
                fix,
            )
        ]
    return [
        Finding(OK, where, f"database.server.id={mine} differs from the server's server_id={server.variables.get('server_id')}")
    ]


_GRANT = re.compile(r"^GRANT (?P<privileges>.+?) ON (?P<scope>\S+) TO ", re.IGNORECASE)
_GLOBAL_NEEDS: dict[str, tuple[str, ...]] = {
    "RELOAD": ("RELOAD",),
    "REPLICATION SLAVE": ("REPLICATION SLAVE", "REPLICATION REPLICA"),
    "REPLICATION CLIENT": ("REPLICATION CLIENT", "BINLOG MONITOR", "SUPER"),  # MariaDB 10.5.2+ shows BINLOG MONITOR
}


_MYSQL_NEEDS = (
    "SELECT on {database}, RELOAD, REPLICATION SLAVE and REPLICATION CLIENT (MariaDB: BINLOG MONITOR) on *.*, "
    "SELECT and INSERT on the signal table"
)


def parse_grants(lines: Sequence[str]) -> list[tuple[set[str], str, str | None]]:
    """``SHOW GRANTS`` lines as (privileges, database or ``*``, table or None); role grants are skipped."""
    found = []
    for line in lines:
        match = _GRANT.match(line)
        if not match:
            continue
        privileges = {re.sub(r"\s*\(.*\)", "", p).strip().upper() for p in re.split(r",\s*(?![^(]*\))", match["privileges"])}
        privileges = {"ALL" if p == "ALL PRIVILEGES" else p for p in privileges}
        database, _, table = match["scope"].partition(".")
        found.append((privileges, database.strip("`'\""), None if table in ("*", "") else table.strip("`'\"")))
    return found


def _database_matches(pattern: str, database: str) -> bool:
    """A database-level grant's name (``%`` and ``_`` are wildcards, ``\\_`` a literal) covers ``database``."""
    regex = "".join(
        re.escape(m[1:]) if m.startswith("\\") else ".*" if m == "%" else "." if m == "_" else re.escape(m)
        for m in re.findall(r"\\.|.", pattern)
    )
    return pattern == "*" or re.fullmatch(regex, database) is not None


def _allows(grants: Sequence[tuple[set[str], str, str | None]], privilege: str, database: str, table: str) -> bool:
    """Some grant gives ``privilege`` (or ALL) on ``database.table``: globally, on the database or on the table."""
    return any(
        (privilege in privileges or "ALL" in privileges) and _database_matches(db, database) and t in (None, table)
        for privileges, db, t in grants
    )


def missing_mysql_grants(grants: Sequence[tuple[set[str], str, str | None]], source: Source) -> list[tuple[str, str]]:
    """What the CDC user lacks, as (privileges, ``ON`` target) pairs ready for a GRANT: the global privileges
    on ``*.*``, SELECT on the database (unless granted on every captured table), SELECT and INSERT on the
    signal table (Debezium writes its incremental-snapshot watermarks there)."""
    global_privileges = set().union(*[p for p, db, table in grants if db == "*"])
    missing = [
        name
        for name, alternatives in _GLOBAL_NEEDS.items()
        if "ALL" not in global_privileges and not global_privileges.intersection(alternatives)
    ]
    lacks = [(", ".join(missing), "*.*")] if missing else []
    if not all(_allows(grants, "SELECT", source.database, t.name) for t in source.tables):
        lacks.append(("SELECT", f"{quote_mysql(source.database)}.*"))
    if source.signal_table:
        database, _, table = source.signal_table.partition(".")
        signal = [p for p in ("SELECT", "INSERT") if not _allows(grants, p, database, table)]
        if signal:
            lacks.append((", ".join(signal), quote_mysql((database, table))))
    return lacks


def _mysql_accounts(session: Session, user: str) -> list[tuple[str, list[str]]]:
    """(account, its SHOW GRANTS lines) of every account named ``user`` (the current one when the doctor logs in as it)."""
    current = str(session.rows("SELECT CURRENT_USER()")[0][0])
    if current.rpartition("@")[0] == user:
        return [(current, [str(r[0]) for r in session.rows("SHOW GRANTS")])]
    try:
        hosts = [str(r[0]) for r in session.rows("SELECT Host FROM mysql.user WHERE User = %s", (user,))]
    except Exception:  # no access to mysql.user: try the usual account
        hosts = ["%"]
    accounts = []
    for host in hosts:
        try:
            lines = [str(r[0]) for r in session.rows("SHOW GRANTS FOR %s@%s", (user, host))]
        except Exception:
            if hosts == ["%"]:
                continue  # no such account
            raise
        accounts.append((f"{user}@{host}", lines))
    return accounts


def check_mysql_grants(source: Source, session: Session) -> list[Finding]:
    where = f"{source.name}: CDC user grants"
    user = source.username
    accounts = _mysql_accounts(session, user)
    if not accounts:
        account = f"{_literal(user)}@'%'"
        grants = "\n".join(f"GRANT {p} ON {target} TO {account};" for p, target in missing_mysql_grants([], source))
        message = f"the CDC user {user} (the connector's database.user) does not exist (as far as the doctor's login can see)"
        return [Finding(ERROR, where, message, f"CREATE USER {account} IDENTIFIED BY '<password>';\n{grants}")]
    found = []
    for name, lines in accounts:
        login, _, host = name.rpartition("@")
        account = f"{_literal(login.strip('`'))}@{_literal(host.strip('`'))}"
        lacks = missing_mysql_grants(parse_grants(lines), source)
        if not lacks:
            found.append(Finding(OK, where, f"{name} has {_MYSQL_NEEDS.format(database=source.database)}"))
            continue
        listed = "; ".join(f"{privileges} on {target}" for privileges, target in lacks)
        found.append(
            Finding(
                ERROR,
                where,
                f"{name} lacks {listed}: Debezium needs {_MYSQL_NEEDS.format(database=source.database)}",
                "\n".join(f"GRANT {privileges} ON {target} TO {account};" for privileges, target in lacks),
            )
        )
    return found


SIGNAL_TABLE_COLUMNS = "id VARCHAR(42) PRIMARY KEY, type VARCHAR(32) NOT NULL, data VARCHAR(2048) NULL"
"""Debezium's documented signal table layout."""


def check_columns(source: Source, session: Session) -> list[Finding]:
    """Each captured table's declared columns against the source's (drift's rules): a declared type that does not
    fit the source type carries wrong values or NULLs, a declared column gone from the source arrives NULL: errors.
    Columns nobody declared are not carried: info."""
    found = []
    for table in source.tables:
        where = f"{source.name}: columns of {table.name}"
        columns = session.columns(table.name)
        if not columns:
            found.append(
                Finding(
                    ERROR,
                    where,
                    f"table {table.name} not found in {source.database}, or none of its columns visible to the login",
                    "create it, or grant the CDC login SELECT on it",
                )
            )
            continue
        found_drift = drift(table, columns, None)
        present = {c.name: c for c in columns}
        for name, why in found_drift.misfits.items():
            fits = fitting_types(present[name])
            fix = f"declare Column({name!r}, ColumnType.{fits[0]})" if fits else "declare a type that fits (typemap.py)"
            found.append(Finding(ERROR, f"{where}.{name}", f"{why}: its values would arrive wrong or NULL", fix))
        if found_drift.gone:
            found.append(
                Finding(
                    ERROR,
                    where,
                    f"declared but gone from the source (they arrive NULL): {', '.join(found_drift.gone)}",
                    "remove them from the declaration, or restore them in the source",
                )
            )
        if found_drift.undeclared and table.columns_declared:  # a table declared by its key alone carries only it
            found.append(Finding(INFO, where, f"not declared, so not carried: {', '.join(found_drift.undeclared)}"))
        if not found_drift.misfits and not found_drift.gone:
            found.append(Finding(OK, where, "every declared column exists with a type that fits"))
    return found


def check_signal_table(source: Source, session: Session) -> list[Finding]:
    """The source's Debezium signal table (incremental snapshots read their requests there) exists."""
    if not source.signal_table:
        return []
    namespace, _, table = source.signal_table.partition(".")
    where = f"{source.name}: signal table {source.signal_table}"
    query = "SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = %s"
    if session.rows(query, (namespace, table)):
        return [Finding(OK, where, f"signal table {source.signal_table} exists")]
    quote = quote_postgres if source.is_postgres else quote_mysql
    return [
        Finding(
            ERROR,
            where,
            f"signal table {source.signal_table} does not exist: the connector reads its signals (incremental "
            "snapshots) there and fails to start without it",
            f"CREATE TABLE {quote((namespace, table))} ({SIGNAL_TABLE_COLUMNS});",
        )
    ]


def check_heartbeat_table(source: Source, session: Session) -> list[Finding]:
    """A source with a freshness objective beats into its heartbeat table: it must exist (the beats are how its
    freshness is measured; without the table every beat fails and nothing shows the pipeline is fresh)."""
    if not source.heartbeat_table:
        return []
    namespace, _, table = source.heartbeat_table.partition(".")
    where = f"{source.name}: heartbeat table {source.heartbeat_table}"
    query = "SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = %s"
    if session.rows(query, (namespace, table)):
        return [Finding(OK, where, f"heartbeat table {source.heartbeat_table} exists")]
    return [
        Finding(
            ERROR,
            where,
            f"heartbeat table {source.heartbeat_table} does not exist: the freshness objective "
            f"({source.freshness_seconds} s) cannot be measured and every heartbeat query fails",
            heartbeat_ddl(source.is_postgres, namespace, source.username),
        )
    ]


def mysql_checks(
    source: Source, session: Session, config: Mapping[str, Any], budget: timedelta, peers: Mapping[str, str]
) -> list[Finding]:
    server = read_mysql_server(session)
    checks: list[tuple[str, Callable[[], list[Finding]]]] = [
        ("binlog_format", lambda: check_binlog_format(source, server)),
        ("binlog_row_image", lambda: check_binlog_row_image(source, server)),
        ("GTID", lambda: check_gtid(source, server)),
        ("binlog retention", lambda: check_binlog_retention(source, server, budget)),
        ("server id", lambda: check_server_id(source, server, config, peers)),
        ("signal table", lambda: check_signal_table(source, session)),
        ("heartbeat table", lambda: check_heartbeat_table(source, session)),
        ("CDC user grants", lambda: check_mysql_grants(source, session)),
        ("declared columns", lambda: check_columns(source, session)),
    ]
    return [f for what, check in checks for f in _guarded(f"{source.name}: {what}", check)]


# --- PostgreSQL -------------------------------------------------------------------------------------


def _pg_settings(session: Session) -> dict[str, str]:
    rows = session.rows(
        "SELECT name, setting FROM pg_settings WHERE name IN ('wal_level', 'max_replication_slots', 'max_wal_senders')"
    )
    return {str(k): str(v) for k, v in rows}


def _restart_note(name: str) -> str:
    return f"; {name} takes effect when PostgreSQL restarts (managed services: set the instance flag instead)"


def check_wal_level(source: Source, settings: Mapping[str, str]) -> list[Finding]:
    where = f"{source.name}: wal_level"
    level = settings.get("wal_level", "?")
    if level != "logical":
        return [
            Finding(
                ERROR,
                where,
                f"wal_level is {level}; logical decoding (pgoutput) needs logical{_restart_note('it')} "
                "(Cloud SQL: cloudsql.logical_decoding=on; RDS: rds.logical_replication=1)",
                "ALTER SYSTEM SET wal_level = logical;",
            )
        ]
    return [Finding(OK, where, "wal_level is logical")]


def check_replication_capacity(source: Source, session: Session, settings: Mapping[str, str], slot: str) -> list[Finding]:
    """A replication slot and a WAL sender are free for the connector (or it already holds them)."""
    slots = {str(name): bool(active) for name, active in session.rows("SELECT slot_name, active FROM pg_replication_slots")}
    senders = int(session.rows("SELECT count(*) FROM pg_stat_replication")[0][0])
    max_slots, max_senders = int(settings.get("max_replication_slots", 0)), int(settings.get("max_wal_senders", 0))
    found = []
    where = f"{source.name}: replication slots"
    if slot in slots:
        found.append(Finding(OK, where, f"slot {slot} exists ({len(slots)} of max_replication_slots={max_slots} used)"))
    elif len(slots) < max_slots:
        found.append(
            Finding(OK, where, f"{max_slots - len(slots)} of max_replication_slots={max_slots} free; the connector needs 1")
        )
    else:
        found.append(
            Finding(
                ERROR,
                where,
                f"all max_replication_slots={max_slots} are used ({', '.join(sorted(slots)) or 'none'}): "
                f"connector {source.connector} cannot create slot {slot}{_restart_note('it')}; or drop a slot "
                "nothing reads any more (SELECT pg_drop_replication_slot('<name>'))",
                f"ALTER SYSTEM SET max_replication_slots = {len(slots) + 4};",
            )
        )
    where = f"{source.name}: WAL senders"
    if slots.get(slot):
        found.append(Finding(OK, where, f"slot {slot} is streaming ({senders} of max_wal_senders={max_senders} in use)"))
    elif senders < max_senders:
        found.append(Finding(OK, where, f"{max_senders - senders} of max_wal_senders={max_senders} free; the connector needs 1"))
    else:
        found.append(
            Finding(
                ERROR,
                where,
                f"all max_wal_senders={max_senders} are in use: connector {source.connector} cannot stream{_restart_note('it')}",
                f"ALTER SYSTEM SET max_wal_senders = {senders + 4};",
            )
        )
    return found


def check_replica_identity(source: Source, session: Session) -> list[Finding]:
    """Each captured table is REPLICA IDENTITY FULL: an error when it carries values stored out of line (TOAST),
    which updates would send as ``__debezium_unavailable_value`` (drift's rule); a warning otherwise."""
    found = []
    schema = source.schema or "public"
    for table in source.tables:
        where = f"{source.name}: replica identity {schema}.{table.name}"
        identity = session.replica_identity(table.name)
        if identity is None:
            found.append(
                Finding(
                    ERROR,
                    where,
                    f"table {schema}.{table.name} does not exist in database {source.database}",
                    "create it (the connector captures only existing tables)",
                )
            )
            continue
        if identity == "full":
            found.append(Finding(OK, where, "REPLICA IDENTITY FULL"))
            continue
        fix = f"ALTER TABLE {quote_postgres((schema, table.name))} REPLICA IDENTITY FULL;"
        problem = drift(table, session.columns(table.name), identity).replica_identity_problem
        if problem or identity == "nothing":
            found.append(Finding(ERROR, where, problem or "REPLICA IDENTITY NOTHING: updates and deletes carry no key", fix))
        else:
            found.append(
                Finding(
                    WARNING,
                    where,
                    f"REPLICA IDENTITY {identity.upper()}: deletes carry only the key and "
                    "updates no before-image (no carried column is stored out of line today)",
                    fix,
                )
            )
    return found


def check_publication(source: Source, session: Session, publication: str) -> list[Finding]:
    """The publication exists, publishes inserts/updates/deletes, and holds exactly the captured tables."""
    where = f"{source.name}: publication {publication}"
    schema = source.schema or "public"
    wanted = {(schema, t.name) for t in source.tables}
    if source.signal_table:  # signals are read from the WAL too
        namespace, _, table = source.signal_table.partition(".")
        wanted.add((namespace, table))
    listed = ", ".join(quote_postgres(name) for name in sorted(wanted))
    rows = session.rows(
        "SELECT puballtables, pubinsert, pubupdate, pubdelete FROM pg_publication WHERE pubname = %s", (publication,)
    )
    if not rows:
        return [
            Finding(
                ERROR,
                where,
                f"publication {publication} does not exist; the connector reads it and does not create "
                "it (publication.autocreate.mode=disabled)",
                f"CREATE PUBLICATION {quote_postgres(publication)} FOR TABLE {listed};",
            )
        ]
    all_tables, *publishes = rows[0]
    if not all(publishes):
        return [
            Finding(
                ERROR,
                where,
                "the publication does not publish every insert, update and delete",
                f"ALTER PUBLICATION {quote_postgres(publication)} SET (publish = 'insert, update, delete, truncate');",
            )
        ]
    if all_tables:
        return [
            Finding(
                WARNING,
                where,
                "the publication is FOR ALL TABLES: every table's changes are decoded, then dropped by the connector",
                f"DROP PUBLICATION {quote_postgres(publication)};\n"
                f"CREATE PUBLICATION {quote_postgres(publication)} FOR TABLE {listed};",
            )
        ]
    held = {
        (str(s), str(t))
        for s, t in session.rows("SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = %s", (publication,))
    }
    missing, extra = sorted(wanted - held), sorted(held - wanted)
    if not missing and not extra:
        signal = " and the signal table" if source.signal_table else ""
        return [Finding(OK, where, f"holds exactly the {len(source.tables)} captured table(s){signal}")]
    fix = f"ALTER PUBLICATION {quote_postgres(publication)} SET TABLE {listed};"
    if missing:
        names = ", ".join(".".join(m) for m in missing)
        return [Finding(ERROR, where, f"the publication lacks captured table(s) {names}: their changes never reach Kafka", fix)]
    names = ", ".join(".".join(e) for e in extra)
    return [
        Finding(WARNING, where, f"the publication also holds {names}, which no connector captures (decoded for nothing)", fix)
    ]


def check_slot_lag(source: Source, session: Session, slot: str, limit: int) -> list[Finding]:
    """WAL the connector's slot holds back: ``pg_current_wal_lsn() - confirmed_flush_lsn``."""
    where = f"{source.name}: slot lag {slot}"
    rows = session.rows(
        "SELECT active, pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint "
        "FROM pg_replication_slots WHERE slot_name = %s",
        (slot,),
    )
    if not rows:
        return [
            Finding(INFO, where, f"slot {slot} does not exist yet; connector {source.connector} creates it on its first start")
        ]
    active, lag = rows[0]
    if lag is None:
        return [Finding(INFO, where, f"slot {slot} has confirmed nothing yet (active={bool(active)})")]
    if int(lag) > limit:
        return [
            Finding(
                WARNING,
                where,
                f"slot {slot} holds {_size(int(lag))} of WAL back (over {_size(limit)}; "
                f"active={bool(active)}): the connector is behind or stopped, and the WAL fills the disk",
                f"PUT /connectors/{source.connector}/resume (or datapipe deploy); only if the connector is gone "
                f"for good: SELECT pg_drop_replication_slot({_literal(slot)});",
            )
        ]
    return [Finding(OK, where, f"slot {slot} lags {_size(int(lag))} (warning above {_size(limit)})")]


def _pg_table_needs(source: Source) -> list[tuple[tuple[str, str], tuple[str, ...]]]:
    """((schema, table), privileges) the CDC role needs: SELECT on each captured table, SELECT and INSERT on
    the signal table (Debezium writes its incremental-snapshot watermarks there)."""
    schema = source.schema or "public"
    needs: list[tuple[tuple[str, str], tuple[str, ...]]] = [((schema, t.name), ("SELECT",)) for t in source.tables]
    if source.signal_table:
        namespace, _, table = source.signal_table.partition(".")
        needs.append(((namespace, table), ("SELECT", "INSERT")))
    return needs


def check_postgres_privileges(source: Source, session: Session) -> list[Finding]:
    """The CDC role: LOGIN REPLICATION, CONNECT on the database, USAGE on the schema, SELECT on the captured
    tables (and SELECT, INSERT on the signal table)."""
    where = f"{source.name}: CDC role privileges"
    user, schema = source.username, source.schema or "public"
    role, db, ns = quote_postgres(user), quote_postgres(source.database), quote_postgres(schema)
    rows = session.rows("SELECT rolcanlogin, rolreplication, rolsuper FROM pg_roles WHERE rolname = %s", (user,))
    if not rows:
        grants = "\n".join(f"GRANT {', '.join(p)} ON {quote_postgres(t)} TO {role};" for t, p in _pg_table_needs(source))
        return [
            Finding(
                ERROR,
                where,
                f"the CDC role {user} (the connector's database.user) does not exist",
                f"CREATE ROLE {role} WITH LOGIN REPLICATION PASSWORD '<password>';\n"
                f"GRANT CONNECT ON DATABASE {db} TO {role};\nGRANT USAGE ON SCHEMA {ns} TO {role};\n{grants}",
            )
        ]
    login, replication, superuser = (bool(v) for v in rows[0])
    lacks, fixes = [], []
    if not (login and (replication or superuser)):
        lacks.append("LOGIN REPLICATION")
        fixes.append(f"ALTER ROLE {role} WITH LOGIN REPLICATION;")
    if not session.rows("SELECT has_database_privilege(%s, %s, 'CONNECT')", (user, source.database))[0][0]:
        lacks.append(f"CONNECT on database {source.database}")
        fixes.append(f"GRANT CONNECT ON DATABASE {db} TO {role};")
    usage = session.rows("SELECT has_schema_privilege(%s, oid, 'USAGE') FROM pg_namespace WHERE nspname = %s", (user, schema))
    if usage and not usage[0][0]:
        lacks.append(f"USAGE on schema {schema}")
        fixes.append(f"GRANT USAGE ON SCHEMA {ns} TO {role};")
    query = (
        "SELECT has_table_privilege(%s, c.oid, %s) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s"
    )
    for table, privileges in _pg_table_needs(source):
        missing = [p for p in privileges if any(not row[0] for row in session.rows(query, (user, p, *table)))]
        if missing:  # a table that does not exist has no row: the replica identity check reports it
            lacks.append(f"{', '.join(missing)} on {'.'.join(table)}")
            fixes.append(f"GRANT {', '.join(missing)} ON {quote_postgres(table)} TO {role};")
    if not lacks:
        return [Finding(OK, where, f"{user} has LOGIN REPLICATION, CONNECT, USAGE on {schema} and its table privileges")]
    return [Finding(ERROR, where, f"{user} lacks {'; '.join(lacks)}: Debezium needs all of them", "\n".join(fixes))]


def postgres_checks(source: Source, session: Session, config: Mapping[str, Any], lag_limit: int) -> list[Finding]:
    settings = _pg_settings(session)
    slot = str(config.get("slot.name") or "debezium")
    publication = str(config.get("publication.name") or "dbz_publication")
    checks: list[tuple[str, Callable[[], list[Finding]]]] = [
        ("wal_level", lambda: check_wal_level(source, settings)),
        ("replication slots", lambda: check_replication_capacity(source, session, settings, slot)),
        ("replica identity", lambda: check_replica_identity(source, session)),
        (f"publication {publication}", lambda: check_publication(source, session, publication)),
        (f"slot lag {slot}", lambda: check_slot_lag(source, session, slot, lag_limit)),
        ("signal table", lambda: check_signal_table(source, session)),
        ("heartbeat table", lambda: check_heartbeat_table(source, session)),
        ("CDC role privileges", lambda: check_postgres_privileges(source, session)),
        ("declared columns", lambda: check_columns(source, session)),
    ]
    return [f for what, check in checks for f in _guarded(f"{source.name}: {what}", check)]


def check_source(
    source: Source,
    config: Mapping[str, Any],
    reach: Reach,
    *,
    outage_budget: timedelta = DEFAULT_OUTAGE_BUDGET,
    slot_lag_warning_bytes: int = DEFAULT_SLOT_LAG_WARNING,
    peers: Mapping[str, str] | None = None,
) -> list[Finding]:
    """Every check of one source, on one read-only session; a failed connection is one error finding."""
    where = f"{source.name}: connection"
    address = f"{source.engine} {source.host}:{source.port}/{source.database}"
    try:  # every check is guarded: what escapes here is opening (or closing) the session
        with reach.database(source) as session:
            found = [Finding(OK, where, f"read-only session on {address}")]
            if source.is_postgres:
                found += _guarded(where, lambda: postgres_checks(source, session, config, slot_lag_warning_bytes))
            else:
                found += _guarded(where, lambda: mysql_checks(source, session, config, outage_budget, peers or {}))
        return found
    except Exception as error:
        engine = "POSTGRESQL" if source.is_postgres else source.engine.upper()
        return [
            Finding(
                ERROR,
                where,
                f"cannot open a read-only session on {address}: {_reason(error)}",
                f"check the host, port and database, and the login in DATAPIPE_{engine}_USER / "
                f"DATAPIPE_{engine}_PASSWORD (the local stack: datapipe local up)",
            )
        ]


# --- Kafka ----------------------------------------------------------------------------------------


def _topic_owners(manifest: Manifest, synthesized: Mapping[str, Any]) -> dict[str, str]:
    """Topic resource id -> the connector that depends on it (a source's own before a sink's)."""
    connectors = _connector_configs(synthesized)
    sources = {s.connector for s in manifest.sources}
    owners: dict[str, str] = {}
    for name in sorted(connectors, key=lambda n: n not in sources):
        for dependency in connectors[name].get("depends_on", []):
            kind, _, resource = str(dependency).partition(".")
            if kind == "kafka_topic":
                owners.setdefault(resource, name)
    return owners


def check_topics(manifest: Manifest, synthesized: Mapping[str, Any], admin: KafkaAdmin, live: Mapping[str, int]) -> list[Finding]:
    """Each declared topic exists with its declared partitions and configs (``live``: partitions by topic)."""
    owners = _topic_owners(manifest, synthesized)
    deploy = _deploy_command(manifest)
    found = []
    for resource_id, topic in synthesized.get("resource", {}).get("kafka_topic", {}).items():
        name, partitions = str(topic.get("name")), int(topic.get("partitions") or 1)
        where = f"{owners.get(resource_id, manifest.stack)}: topic {name}"
        if "${" in name:
            continue
        if name not in live:
            found.append(
                Finding(
                    ERROR, where, f"topic {name} does not exist (topics are never auto-created; Terraform creates them)", deploy
                )
            )
            continue
        if live[name] < partitions:
            found.append(Finding(ERROR, where, f"topic {name} has {live[name]} partition(s), {partitions} declared", deploy))
            continue
        if live[name] > partitions:
            found.append(
                Finding(
                    WARNING,
                    where,
                    f"topic {name} has {live[name]} partitions, {partitions} declared (Kafka cannot remove partitions)",
                    f"declare partitions={live[name]} in the app",
                )
            )
            continue
        wanted = {str(k): str(v) for k, v in (topic.get("config") or {}).items() if "${" not in str(v)}
        actual = admin.topic_config(name) if wanted else {}
        differ = {k: (v, actual.get(k)) for k, v in wanted.items() if actual.get(k) != v}
        if differ:
            detail = ", ".join(f"{k}={live_v} (declared {v})" for k, (v, live_v) in differ.items())
            found.append(Finding(WARNING, where, f"topic {name} has {detail}", deploy))
        else:
            found.append(Finding(OK, where, f"{partitions} partition(s), declared configs in place"))
    return found


def _norm(word: str) -> str:
    word = str(word).upper().replace("_", "")
    return "BROKER" if word == "CLUSTER" else word  # librdkafka calls Kafka's CLUSTER resource BROKER


def _covered(wanted: tuple[str, str, str, str], live: Sequence[tuple[str, ...]]) -> bool:
    """An ALLOW binding gives ``(principal, type, name, operation)``: same operation or ALL, literal name or
    ``*``, or a prefix of it."""
    principal, kind, name, operation = wanted
    for p, k, n, op, pattern, permission, *_ in live:
        if p not in (principal, "User:*") or _norm(k) != _norm(kind) or _norm(permission) != "ALLOW":
            continue
        if _norm(op) not in (_norm(operation), "ALL"):
            continue
        if (_norm(pattern) == "LITERAL" and n in (name, "*")) or (_norm(pattern) == "PREFIXED" and name.startswith(n)):
            return True
    return False


def check_acls(manifest: Manifest, synthesized: Mapping[str, Any], live: Sequence[tuple[str, ...]]) -> list[Finding]:
    """The Connect principal's ACLs each connector depends on are present on the cluster."""
    acls = synthesized.get("resource", {}).get("kafka_acl", {})
    found = []
    for name, connector in _connector_configs(synthesized).items():
        wanted = []
        for dependency in connector.get("depends_on", []):
            kind, _, resource = str(dependency).partition(".")
            if kind == "kafka_acl" and resource in acls:
                acl = acls[resource]
                wanted.append(
                    (str(acl["acl_principal"]), str(acl["resource_type"]), str(acl["resource_name"]), str(acl["acl_operation"]))
                )
        if not wanted:
            continue
        where = f"{name}: Kafka ACLs"
        principals = ", ".join(sorted({w[0] for w in wanted}))
        missing = [w for w in wanted if "${" not in w[2] and not _covered(w, live)]
        if missing:
            listed = "; ".join(f"{op} on {kind}:{res}" for _, kind, res, op in missing)
            found.append(Finding(ERROR, where, f"{principals} lacks {listed}", _deploy_command(manifest)))
        else:
            found.append(Finding(OK, where, f"{principals} holds the {len(wanted)} ACL(s) connector {name} needs"))
    return found


def _deploy_command(manifest: Manifest) -> str:
    local = " --local" if manifest.target == "local" else ""
    return f"datapipe deploy{local} --stack {manifest.stack} (Terraform creates or corrects it)"


# --- Kafka Connect --------------------------------------------------------------------------------


def check_connector(state: ConnectorState, deploy: str = "datapipe deploy") -> list[Finding]:
    where = f"{state.name}: connector"
    trace = f": {state.trace.strip().splitlines()[0]}" if state.trace.strip() else ""
    tasks = ", ".join(state.tasks) or "none"
    if state.running:
        return [Finding(OK, where, f"RUNNING with {len(state.tasks)} task(s) RUNNING")]
    if state.state == "MISSING":
        return [Finding(ERROR, where, f"connector {state.name} is not deployed while others of the stack are", deploy)]
    if state.state == "FAILED" or "FAILED" in state.tasks:
        return [
            Finding(
                ERROR,
                where,
                f"connector {state.state}, tasks {tasks}{trace}",
                f"fix the cause, then POST /connectors/{state.name}/restart?includeTasks=true&onlyFailed=true "
                "(datapipe deploy does it)",
            )
        ]
    if state.state in ("PAUSED", "STOPPED"):
        return [
            Finding(
                WARNING,
                where,
                f"connector {state.state} (tasks {tasks}): no changes flow while it is",
                f"PUT /connectors/{state.name}/resume (datapipe deploy does it)",
            )
        ]
    return [
        Finding(
            WARNING,
            where,
            f"connector {state.state}, tasks {tasks}: not all running",
            "check the Connect workers' logs; datapipe deploy restarts it",
        )
    ]


def check_dead_letters(sink_name: str, topic: str, letters: Sequence[DeadLetter], *, local: bool = False) -> list[Finding]:
    where = f"{sink_name}: dead letters {topic}"
    if not letters:
        return [Finding(OK, where, f"dead-letter topic {topic} is empty")]
    first = letters[0]
    return [
        Finding(
            WARNING,
            where,
            f"{len(letters)} record(s) the sink could not write are in {topic} (first from "
            f"{first.topic}[{first.partition}]@{first.offset}, key {first.key}: {first.reason or 'no reason given'}); "
            "the rows they carry are stale in the warehouse",
            f"fix the cause (the reason above), then: datapipe dlq replay{' --local' if local else ''} --sink {sink_name}",
        )
    ]


# --- the whole stack ------------------------------------------------------------------------------


def examine(
    manifest: Manifest,
    synthesized: Mapping[str, Any],
    reach: Reach | None = None,
    *,
    outage_budget: timedelta = DEFAULT_OUTAGE_BUDGET,
    slot_lag_warning_bytes: int = DEFAULT_SLOT_LAG_WARNING,
) -> list[Finding]:
    """Every finding for one stack: its sources, then (once deployed) its connectors, topics, ACLs and dead letters."""
    reach = reach or Reach.live(manifest)
    configs = _connector_configs(synthesized)
    servers: dict[tuple[str, int], dict[str, str]] = {}
    for source in manifest.sources:
        server_id = str(configs.get(source.connector, {}).get("config", {}).get("database.server.id", ""))
        servers.setdefault((source.host, source.port), {})[source.connector] = server_id
    found: list[Finding] = []
    for source in manifest.sources:
        config = configs.get(source.connector, {}).get("config", {})
        found += check_source(
            source,
            config,
            reach,
            outage_budget=outage_budget,
            slot_lag_warning_bytes=slot_lag_warning_bytes,
            peers=servers[(source.host, source.port)],
        )
    states: dict[str, ConnectorState] | None = None
    try:
        client = reach.connect()
        states = {name: client.status(name) for name in configs}
    except Exception as error:
        found.append(
            Finding(
                ERROR,
                f"{manifest.stack}: Kafka Connect",
                f"cannot read connector states from {manifest.connect.url}: {_reason(error)}",
                "check the URL and DATAPIPE_CONNECT_PASSWORD",
            )
        )
    if states is not None and configs and all(s.state == "MISSING" for s in states.values()):
        found.append(
            Finding(
                INFO,
                f"{manifest.stack}: deployment",
                "not deployed yet (no connector of the stack exists): "
                "topics, ACLs, connectors and dead letters are checked once it is",
                _deploy_command(manifest),
            )
        )
        return found
    found += [f for state in (states or {}).values() for f in check_connector(state, _deploy_command(manifest))]
    return found + _kafka_findings(manifest, synthesized, reach)


def _kafka_findings(manifest: Manifest, synthesized: Mapping[str, Any], reach: Reach) -> list[Finding]:
    where = f"{manifest.stack}: Kafka"
    try:
        admin = reach.kafka()
        live = admin.topics()
    except Exception as error:
        return [
            Finding(
                ERROR,
                where,
                f"cannot reach Kafka at {','.join(manifest.kafka.bootstrap_servers)}: {_reason(error)}",
                "check the brokers and DATAPIPE_KAFKA_USERNAME / DATAPIPE_KAFKA_PASSWORD",
            )
        ]
    found = _guarded(f"{manifest.stack}: topics", lambda: check_topics(manifest, synthesized, admin, live))
    found += _guarded(f"{manifest.stack}: Kafka ACLs", lambda: check_acls(manifest, synthesized, admin.acls()))
    for sink in manifest.sinks:
        if sink.dead_letter_topic and sink.dead_letter_topic in live:
            found += _guarded(
                f"{sink.name}: dead letters {sink.dead_letter_topic}",
                partial(_dead_letter_findings, sink.name, sink.dead_letter_topic, reach, manifest.target == "local"),
            )
    return found


def _dead_letter_findings(sink_name: str, topic: str, reach: Reach, local: bool) -> list[Finding]:
    return check_dead_letters(sink_name, topic, reach.dead_letters(topic), local=local)


# --- output ---------------------------------------------------------------------------------------


def counts(findings: Sequence[Finding]) -> dict[str, int]:
    return {severity: sum(f.severity == severity for f in findings) for severity in SEVERITIES}


def render(findings: Sequence[Finding]) -> str:
    """A table: severity, component, finding; the fix on the lines below, indented."""
    if not findings:
        return "no findings\n"
    width = max(len(f.component) for f in findings)
    lines = [f"{'SEVERITY':<8}  {'COMPONENT':<{width}}  FINDING"]
    for f in findings:
        lines.append(f"{f.severity:<8}  {f.component:<{width}}  {f.message}")
        for i, line in enumerate(f.fix.splitlines() if f.severity != OK else []):
            lines.append(f"{'':<8}  {'':<{width}}  {'fix: ' if i == 0 else '     '}{line}")
    summary = counts(findings)
    lines.append(", ".join(f"{n} {s}{'s' if n != 1 and s in (ERROR, WARNING) else ''}" for s, n in summary.items()))
    return "\n".join(lines) + "\n"
