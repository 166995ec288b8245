"""L2: a Debezium change-data-capture source: one connector, the topics it writes, its ACLs."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from datetime import timedelta
from enum import Enum

from constructs import Construct

from . import _validate as check
from ._core import PipelineConstruct, pipeline_of
from .acl import AclOperation, KafkaAcl, ResourceType
from .errors import DatapipeError
from .freshness import checked_objective, heartbeat_table
from .heartbeat import HEARTBEAT_TABLE, heartbeat_statement
from .manifest import ColumnPolicy, Manifest, Source, SourceTable, WorkerSecret
from .principal import Principal
from .providers.kafka_connect import Connector
from .schema import IDENTIFIER, CapturedTable, Column, Table, Treatment
from .target import source_address
from .topic import StreamingTopic, check_topic_name
from .units import FOREVER, to_millis
from .worker_secrets import connector_secrets


class Engine(Enum):
    """The source database engine (strings accepted in any case: ``"mysql"``, ``"PostgreSQL"``; ``"postgres"``
    means PostgreSQL)."""

    MYSQL = "mysql"
    MARIADB = "mariadb"
    POSTGRESQL = "postgresql"

    @property
    def connector_class(self) -> str:
        return {
            Engine.MYSQL: "io.debezium.connector.mysql.MySqlConnector",
            Engine.MARIADB: "io.debezium.connector.mariadb.MariaDbConnector",
            Engine.POSTGRESQL: "io.debezium.connector.postgresql.PostgresConnector",
        }[self]

    @property
    def default_port(self) -> int:
        return 5432 if self is Engine.POSTGRESQL else 3306

    @property
    def has_schema_history(self) -> bool:
        return self is not Engine.POSTGRESQL

    @property
    def is_binlog(self) -> bool:
        """MySQL and MariaDB: changes read from the binlog (BOOL is a TINYINT there)."""
        return self is not Engine.POSTGRESQL

    @property
    def position_fields(self) -> tuple[str, ...]:
        """Debezium ``source`` fields recorded with each change (for diagnosis; views order by Kafka offset)."""
        if self is Engine.POSTGRESQL:
            return ("snapshot", "lsn", "sequence")
        return ("snapshot", "file", "pos", "row", "server_id", "gtid")


class SnapshotMode(Enum):
    """Debezium's ``snapshot.mode``: what the connector reads before it streams changes."""

    INITIAL = "initial"
    ALWAYS = "always"
    INITIAL_ONLY = "initial_only"
    NO_DATA = "no_data"
    WHEN_NEEDED = "when_needed"
    RECOVERY = "recovery"


_HOST = r"[A-Za-z0-9]([A-Za-z0-9.-]{0,253})"
_PREFIX = r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}"
MASK_LENGTH = 8
_VERB = {Treatment.MASKED: "masks", Treatment.HASHED: "hashes"}
_PROVIDER_REFERENCE = re.compile(r"^\$?\$\{(file|dir|env|vault|secrets?)[A-Za-z0-9_-]*:[^}]*\}$")
_SECRET_WORDS = re.compile(r"password|passwd|secret|jaas|credential|token|private|keyfile|keystore|truststore|ssl\.key|sslkey")
SIGNAL_TABLE = "debezium_signal"
"""The signal table every source reads (in its database, or its PostgreSQL schema): Debezium's ``source`` channel."""
SIGNAL_COLUMNS = ("id", "type", "data")

# Keys a CdcSource writes itself: set through its typed arguments, never through extra_config.
_OWNED_KEYS = frozenset(
    {
        "name", "connector.class", "tasks.max", "database.hostname", "database.port", "database.user",
        "database.password", "database.dbname", "database.server.id", "topic.prefix", "snapshot.mode",
        "decimal.handling.mode", "time.precision.mode", "bigint.unsigned.handling.mode", "binary.handling.mode",
        "tombstones.on.delete", "include.schema.changes", "message.key.columns", "plugin.name", "slot.name",
        "publication.name", "publication.autocreate.mode", "heartbeat.interval.ms", "heartbeat.action.query",
        "topic.heartbeat.prefix", "topic.naming.strategy", "topic.delimiter", "key.converter", "value.converter",
        "signal.data.collection", "signal.enabled.channels", "skipped.operations",
    }
)  # fmt: skip
_OWNED_PREFIXES = (
    "database.include.", "database.exclude.", "table.include.", "table.exclude.", "schema.include.",
    "schema.exclude.", "column.include.", "column.exclude.", "column.mask.", "column.truncate.",
    "column.propagate.", "datatype.propagate.", "schema.history.internal.", "key.converter.", "value.converter.",
    "transforms", "predicates", "converters", "signal.kafka.", "signal.consumer.", "producer.override.",
    "consumer.override.", "admin.override.",
)  # fmt: skip


# Settings that would silently defeat masking or lose events; refused in extra_config whatever the value
# (a value in the mapping is the one safe value, which is allowed).
_UNSAFE_KEYS: dict[str, tuple[str | None, str]] = {
    "include.query": (
        "false",
        "it copies each change's SQL statement, values of masked and excluded columns included, into every event",
    ),
    "event.processing.failure.handling.mode": ("fail", "events that fail to process would be skipped or only logged: lost"),
    "inconsistent.schema.handling.mode": ("fail", "events of tables with an unknown schema would be skipped: lost"),
    "errors.tolerance": ("none", "records that fail in a converter or transform would be dropped: lost"),
    "snapshot.select.statement.overrides": (
        None,
        "a custom snapshot query can put any column, masked or not, under any declared column's name",
    ),
}
_UNSAFE_PREFIXES = ("snapshot.select.statement.overrides.",)


class CdcSource(PipelineConstruct):
    """A database captured by Debezium 3.x into one Kafka topic per table.

    Creates, explicitly and before the connector: one topic per table
    (``<prefix>.<database|schema>.<table>``), the schema-history topic (MySQL/MariaDB), the heartbeat
    topic when ``heartbeat`` is set, and the literal ACLs the Connect principal needs for exactly those
    topics. Secrets never appear in the connector config: the database password and the schema-history
    Kafka login are read on the workers from ``<secrets_dir>/<id>.properties`` (keys
    ``database.password`` and ``kafka.sasl.jaas.config``), see :mod:`datapipe_cdk.worker_secrets`.

    Args:
        scope: the stack, or one of your constructs under it.
        source_id: the construct id; also the connector's name (never reuse it: it keys the offsets).
        engine: ``Engine.MYSQL``, ``MARIADB`` or ``POSTGRESQL`` (or the string, any case).
        host: the database host as the Connect workers reach it (a Terraform variable is fine).
        database: the database (MySQL/MariaDB: also the topic namespace; PostgreSQL: ``database.dbname``).
        tables: ``{"orders": Table(primary_key=["id"], columns=[Column("id", ColumnType.INT64), ...])}``.
            Declare every column with its type and classification: undeclared columns never leave the
            database, and only declared columns are checked by the policies.
        port: the database port (default 3306, or 5432 for PostgreSQL).
        schema: PostgreSQL only: the schema holding the tables (default ``public``); the topic namespace.
        username: the login Debezium uses; its password lives on the workers.
        topic_prefix: Debezium's ``topic.prefix`` (default: the id); never change it after the first deploy.
        snapshot_mode: ``SnapshotMode`` (default ``INITIAL``: read every table once, then stream).
        heartbeat: how often the connector reports progress when tables are idle (``heartbeat.interval.ms``).
        freshness: the objective: every change visible in the warehouse within this ``timedelta`` (at least 10 s).
            The connector then beats at a quarter of it (or every ``heartbeat``, used as declared up to half
            of it) into the heartbeat table ``<database or
            schema>.debezium_heartbeat``, captured like any table, so staleness is measured end to end even
            when every table is idle (``datapipe freshness``; in production a scheduled check and an alert
            policy, see :mod:`datapipe_cdk.freshness`). The local stack creates the table; in production the
            DBA runs ``datapipe_cdk.heartbeat.heartbeat_ddl``'s statements once.
        masked: ``{table: [column, ...]}`` replaced by ``********`` before Kafka (string columns only).
        hashed: ``{table: [column, ...]}`` replaced by a salted SHA-256 (string columns only). The salt is the
            Terraform variable ``<id>_hash_salt`` (at least 16 characters); Debezium reads it from a config
            *key*, which plan, state and Connect's REST API show, so policies treat hashed PII as PII.
        excluded: ``{table: [column, ...]}`` never read from the database.
        partitions: partitions of each table topic.
        retention: how long table topics keep changes (``retention.ms``).
        server_id: MySQL/MariaDB only: the replication client id (default: derived from stack and id).
        extra_config: other Debezium settings. Keys this construct owns (connector class, names,
            include lists, converters ...) and keys that carry secrets are refused: use the typed
            argument, or a ``${file:...}`` reference to a worker file. Tuning keys such as
            ``poll.interval.ms`` (100 here, Debezium's default is 500) or ``max.batch.size`` may be set.
        owner: who to ask about the data (policy ``owner-required``); a table's own ``Table.owner`` wins.

    ``source.connector`` is the L1 ``kafka-connect_connector``; ``source.topic("orders")`` a table's topic.

    **Signals** (incremental snapshots): every source reads Debezium's ``source`` signal channel, the table
    ``<database or schema>.debezium_signal`` (``source.signal_table``). ``datapipe deploy`` signals an
    incremental snapshot of each table added to a running source (the other tables are not re-read), and
    ``datapipe snapshot --table <source>.<table>`` requests one. Debezium also writes its snapshot
    watermarks there, so the CDC login needs ``INSERT`` on it. The local stack creates it; in production the
    DBA does, once per database (sources reading the same database share it; a signal names its tables)::

        -- MySQL / MariaDB
        CREATE TABLE <database>.debezium_signal (id VARCHAR(42) PRIMARY KEY, type VARCHAR(32) NOT NULL,
                                                 data VARCHAR(2048) NULL);
        GRANT SELECT, INSERT ON <database>.debezium_signal TO '<username>'@'%';
        -- PostgreSQL (and add it to the source's publication, <slot.name>_publication)
        CREATE TABLE <schema>.debezium_signal (id VARCHAR(42) PRIMARY KEY, type VARCHAR(32) NOT NULL,
                                               data VARCHAR(2048) NULL);
        GRANT SELECT, INSERT ON <schema>.debezium_signal TO <username>;
        ALTER PUBLICATION <publication> ADD TABLE <schema>.debezium_signal;

    Its change events never reach Kafka (a ``Filter`` transform drops them: no topic, no ACL).
    """

    derives_topic_names = True
    """Its topics are named by Debezium (``<prefix>.<database>.<table>``): no warning about their characters."""

    def __init__(
        self,
        scope: Construct,
        source_id: str,
        *,
        engine: Engine | str,
        host: str,
        database: str,
        tables: Mapping[str, Table],
        port: int | None = None,
        schema: str | None = None,
        username: str = "debezium",
        topic_prefix: str | None = None,
        snapshot_mode: SnapshotMode | str = SnapshotMode.INITIAL,
        heartbeat: timedelta | None = None,
        freshness: timedelta | None = None,
        masked: Mapping[str, Sequence[str | Column]] | None = None,
        hashed: Mapping[str, Sequence[str | Column]] | None = None,
        excluded: Mapping[str, Sequence[str | Column]] | None = None,
        partitions: int = 1,
        retention: timedelta | None = None,
        server_id: int | None = None,
        extra_config: Mapping[str, str] | None = None,
        owner: Principal | None = None,
    ) -> None:
        path = check.child_path(scope, source_id, "CdcSource")
        stack = pipeline_of(scope, path)
        if owner is not None:
            check.instance(path, "owner", owner, Principal)
        if isinstance(engine, str) and engine.strip().lower() in ("postgres", "pg"):
            engine = Engine.POSTGRESQL  # the spelling `datapipe local sql --engine postgres` uses
        engine = check.choice(path, "engine", engine, Engine)
        check.text(path, "host", host, pattern=_HOST, rule="must be a host name or IP address", max_length=253)
        port = check.port(path, "port", engine.default_port if port is None else port)
        check.name(
            path, "database", database, pattern=IDENTIFIER, rule="must be a database name (letters, digits, '_')",
            why="it names the topics",
        )  # fmt: skip
        if engine is Engine.POSTGRESQL:
            namespace = check.name(
                path, "schema", "public" if schema is None else schema, pattern=IDENTIFIER, rule="must be a schema name",
                why="it names the topics",
            )  # fmt: skip
            if server_id is not None:
                raise DatapipeError(
                    path, "server_id is a MySQL/MariaDB replication setting; PostgreSQL sources use a replication slot", server_id
                )
        else:
            if schema is not None:
                raise DatapipeError(
                    path,
                    f"schema= is for PostgreSQL; a {engine.value} database is its own namespace (use database=)",
                    schema,
                )
            namespace = database
        check.text(path, "username", username, pattern=r"[A-Za-z0-9_.@-]{1,64}", rule="must be a database user name")
        prefix = topic_prefix if topic_prefix is not None else re.sub(r"[^A-Za-z0-9_-]", "_", source_id)
        check.name(
            path, "topic_prefix", prefix, pattern=_PREFIX, rule="may hold only letters, digits, '.', '_', '-'",
            why="it names the topics", max_length=100,
        )  # fmt: skip
        snapshot_mode = check.choice(path, "snapshot_mode", snapshot_mode, SnapshotMode)
        if heartbeat is not None:
            check.duration(path, "heartbeat", heartbeat, minimum=timedelta(milliseconds=99))
        objective: timedelta | None = None
        if freshness is not None:
            objective, heartbeat = checked_objective(path, freshness, heartbeat)
        if retention is not None and retention != FOREVER:
            check.duration(path, "retention", retention)
        check.integer(path, "partitions", partitions, minimum=1, maximum=100_000)
        if engine is not Engine.POSTGRESQL:
            if server_id is None:
                server_id = 1000 + int(hashlib.sha256(f"{stack.node.id}/{source_id}".encode()).hexdigest()[:6], 16) % 4_000_000
            check.integer(path, "server_id", server_id, minimum=1, maximum=2**32 - 1)
        extra = _checked_extra_config(path, extra_config)
        captured = _captured_tables(path, engine, namespace, prefix, tables, masked, hashed, excluded)
        if objective is not None:
            captured.append(heartbeat_table(namespace, prefix))
        stack.registry.claim("connector", source_id, path)
        local = source_address(engine.value)
        declared_engine = engine
        if local is not None:  # the local stack: same tables and names, the local server
            engine, host, port = Engine(local.engine), local.host, local.port

        super().__init__(scope, source_id, pipeline=stack, path=path)
        self.engine = engine
        self.declared_engine = declared_engine
        self.host = host
        self.port = port
        self.database = database
        self.namespace = namespace
        self.username = username
        self.topic_prefix = prefix
        self.partitions = partitions
        self.connector_name = source_id
        self.owner = owner
        self.captured: dict[str, CapturedTable] = {t.name: t for t in captured}
        self.signal_table = f"{namespace}.{SIGNAL_TABLE}"
        self.freshness = objective
        self.heartbeat_table = f"{namespace}.{HEARTBEAT_TABLE}" if objective is not None else None
        self.secrets = connector_secrets(stack.connect, source_id, f"database password and Kafka login of {path}")
        self._topics: dict[str, StreamingTopic] = {}
        for table in captured:
            self._topics[table.name] = StreamingTopic(
                self, f"topic-{table.name}", name=table.topic_name, partitions=partitions, retention=retention, owner=owner
            )
        support: list[StreamingTopic] = []
        self.history_topic: StreamingTopic | None = None
        if engine.has_schema_history:
            self.history_topic = StreamingTopic(
                self,
                "schema-history",
                name=f"_schema-history.{prefix}",
                partitions=1,
                retention=FOREVER,
                config={"retention.bytes": "-1"},
                owner=owner,
            )
            support.append(self.history_topic)
        self.heartbeat_topic: StreamingTopic | None = None
        if heartbeat is not None:
            self.heartbeat_topic = StreamingTopic(
                self,
                "heartbeat",
                name=f"__debezium-heartbeat.{prefix}",
                partitions=1,
                retention=timedelta(days=1),
                owner=owner,
            )
            support.append(self.heartbeat_topic)
        acls = self._grant_connect()
        config = _connector_config(
            engine, host, port, database, namespace, username, prefix, snapshot_mode, heartbeat, server_id, captured,
        )  # fmt: skip
        config["database.password"] = self.secrets.reference("database.password")
        if self.history_topic is not None:
            config.update(self._history_config(self.history_topic))
        salt = None
        if any(t is Treatment.HASHED for table in captured for t in table.treatments.values()):
            salt = stack.variable(
                f"{check.word(source_id)}_hash_salt",
                f"Salt (at least 16 characters) for hashed PII columns of {path}; visible in plan, state and Connect's REST API",
                sensitive=False,
                min_length=16,
            )
        config.update(_treatment_config(captured, salt.string_value if salt is not None else None))
        config.update(_signal_config(namespace, prefix, config["column.include.list"]))
        config.update(extra)
        all_topics = [*self._topics.values(), *support]
        self.connector = Connector(
            self,
            "connector",
            name=source_id,
            config=config,
            depends_on=[t.resource for t in all_topics] + [a.resource for a in acls],
        )
        stack.registry.manifest_parts.append(self._describe)

    def topic(self, table: str) -> StreamingTopic:
        """The topic that carries ``table``'s changes."""
        if table not in self._topics:
            raise DatapipeError(
                self.construct_path, f"no captured table named {table!r} (captured: {sorted(self._topics)})", table
            )
        return self._topics[table]

    @property
    def tables(self) -> list[CapturedTable]:
        return list(self.captured.values())

    def _grant_connect(self) -> list[KafkaAcl]:
        """Exactly what the connector's clients do: Write+Describe on each declared topic, and for the
        schema history (MySQL/MariaDB) Read/Write/Describe/DescribeConfigs on its topic and Read on its consumer
        group. Describe/DescribeConfigs on the cluster are the worker's (``ConnectCluster(manage_acls=...)``): every
        stack on the worker would declare the same binding, and destroying one stack would delete it for all."""
        worker = self.pipeline.connect.principal
        acls = [
            KafkaAcl.ensure(self, worker, ResourceType.TOPIC, topic.name, op)
            for topic in self._topics.values()
            for op in (AclOperation.WRITE, AclOperation.DESCRIBE)
        ]
        if self.history_topic is not None:
            history_ops = (AclOperation.READ, AclOperation.WRITE, AclOperation.DESCRIBE, AclOperation.DESCRIBE_CONFIGS)
            for op in history_ops:  # DescribeConfigs: Debezium checks the history topic's retention at start
                acls.append(KafkaAcl.ensure(self, worker, ResourceType.TOPIC, self.history_topic.name, op))
            acls.append(
                KafkaAcl.ensure(self, worker, ResourceType.GROUP, f"{self.topic_prefix}-schemahistory", AclOperation.READ)
            )
        if self.heartbeat_topic is not None:
            for op in (AclOperation.WRITE, AclOperation.DESCRIBE):
                acls.append(KafkaAcl.ensure(self, worker, ResourceType.TOPIC, self.heartbeat_topic.name, op))
        return acls

    def _history_config(self, history: StreamingTopic) -> dict[str, str]:
        """The schema-history topic's own Kafka clients; they log in as the Connect principal, whose JAAS
        line (it holds the password) is read from the workers' secrets file."""
        kafka = self.pipeline.kafka
        config = {
            "schema.history.internal.kafka.bootstrap.servers": ",".join(kafka.bootstrap_servers),
            "schema.history.internal.kafka.topic": history.name_ref,
        }
        for client in ("producer", "consumer"):
            config[f"schema.history.internal.{client}.security.protocol"] = kafka.security_protocol
            if kafka.sasl_username:
                config[f"schema.history.internal.{client}.sasl.mechanism"] = kafka.sasl_mechanism.java_name
                config[f"schema.history.internal.{client}.sasl.jaas.config"] = self.secrets.reference("kafka.sasl.jaas.config")
        return config

    @property
    def worker_secret_keys(self) -> tuple[str, ...]:
        history_login = self.history_topic is not None and bool(self.pipeline.kafka.sasl_username)
        return ("database.password", "kafka.sasl.jaas.config") if history_login else ("database.password",)

    def _describe(self, manifest: Manifest) -> None:
        manifest.sources.append(
            Source(
                name=self.node.id,
                path=self.construct_path,
                engine=self.engine.value,
                host=self.host,
                port=self.port,
                database=self.database,
                schema=self.namespace if self.engine is Engine.POSTGRESQL else None,
                connector=self.connector_name,
                topic_prefix=self.topic_prefix,
                username=self.username,
                signal_table=self.signal_table,
                heartbeat_table=self.heartbeat_table,
                freshness_seconds=int(self.freshness.total_seconds()) if self.freshness is not None else None,
                tables=tuple(
                    SourceTable(
                        name=t.name,
                        primary_key=tuple(t.primary_key),
                        topic=t.topic_name,
                        columns=tuple(
                            ColumnPolicy(
                                c.name,
                                c.type.value,
                                c.classification.value if c.classification else None,
                                c.info_type.value if c.info_type else None,
                                t.treatments[c.name].value if c.name in t.treatments else None,
                                c.precision,
                                c.scale,
                                c.repeated,
                            )
                            for c in t.table.columns
                        ),
                        columns_declared=bool(t.table.columns),
                    )
                    for t in self.tables
                ),
            )
        )
        manifest.worker_secrets.append(
            WorkerSecret(self.secrets.path, self.worker_secret_keys, self.connector_name, self.secrets.what)
        )


def _checked_extra_config(path: str, extra_config: object) -> dict[str, str]:
    extra = check.string_map(path, "extra_config", extra_config or {})
    for key, value in extra.items():
        check.plain(path, f"extra_config[{key!r}]", value)
        if key in _OWNED_KEYS or key.startswith(_OWNED_PREFIXES):
            raise DatapipeError(
                path,
                f"extra_config must not set {key!r}: CdcSource writes it from its typed arguments (engine, host, port, "
                "database, schema, username, tables, topic_prefix, snapshot_mode, heartbeat, masked/hashed/excluded, "
                "server_id); set the argument instead",
                key,
            )
        rule = _UNSAFE_KEYS.get("snapshot.select.statement.overrides" if key.startswith(_UNSAFE_PREFIXES) else key)
        if rule is not None and value.strip().lower() != rule[0]:
            safe, why = rule
            raise DatapipeError(
                path,
                f"extra_config must not set {key!r} to {value!r}: {why}"
                + (f"; only {safe!r} is allowed" if safe is not None else "; it is not allowed"),
                key,
            )
        if _SECRET_WORDS.search(key.lower()) and not _PROVIDER_REFERENCE.match(value):
            raise DatapipeError(
                path,
                f"extra_config[{key!r}] looks like a secret and would be stored in plain connector config (returned by "
                "Connect's REST API and kept in Terraform state); put it in a file on the workers and reference it as "
                "${file:<secrets_dir>/<file>:<key>}",
                key,
            )
    return extra


def _captured_tables(
    path: str,
    engine: Engine,
    namespace: str,
    prefix: str,
    tables: object,
    masked: object,
    hashed: object,
    excluded: object,
) -> list[CapturedTable]:
    tables = check.mapping(path, "tables", tables)
    if not tables:
        raise DatapipeError(path, "tables must name at least one table to capture", tables)
    declared: dict[str, Table] = {}
    for name, spec in tables.items():
        check.name(
            path, "table name", name, pattern=IDENTIFIER, rule="must be a table name (letters, digits, '_')",
            why="it names the topic",
        )  # fmt: skip
        if name == HEARTBEAT_TABLE:
            raise DatapipeError(
                path,
                f"{HEARTBEAT_TABLE} is the heartbeat table a freshness objective adds (CdcSource(freshness=...)); "
                "rename your table",
                name,
            )
        if name == SIGNAL_TABLE:
            raise DatapipeError(
                path,
                f"{SIGNAL_TABLE} is the source's Debezium signal table (it carries snapshot requests, not data), so it "
                "cannot be captured; rename your table",
                name,
            )
        if not isinstance(spec, Table):
            raise DatapipeError(
                path,
                f"tables[{name!r}] must be a Table(primary_key=[...], columns=[Column(...), ...]); a bare list would be "
                "ambiguous (primary key or columns?)",
                spec,
            )
        declared[name] = spec.checked(path, name)
        if not declared[name].columns and not declared[name].primary_key:
            raise DatapipeError(
                path,
                f"tables[{name!r}] declares neither columns nor a primary key, so nothing of it would be captured; "
                "declare its columns (Table(primary_key=[...], columns=[Column(...), ...]))",
                name,
            )
    treatments: dict[str, dict[str, Treatment]] = {name: {} for name in declared}
    for treatment, given in ((Treatment.MASKED, masked), (Treatment.HASHED, hashed), (Treatment.EXCLUDED, excluded)):
        for table_name, columns in check.mapping(path, treatment.value, given or {}).items():
            if table_name not in declared:
                raise DatapipeError(
                    path, f"{treatment.value} names a table that is not captured (captured: {sorted(declared)})", table_name
                )
            table = declared[table_name]
            for column in check.sequence(path, f"{treatment.value}[{table_name!r}]", columns):
                column_name = (
                    column.name
                    if isinstance(column, Column)
                    else check.text(path, f"{treatment.value} column", column, pattern=IDENTIFIER, rule="must be a column name")
                )
                if not table.columns:
                    raise DatapipeError(
                        path,
                        f"{treatment.value}[{table_name!r}] needs the table's columns: declare "
                        f"Table(primary_key=..., columns=[...]) so {column_name!r} can be checked",
                        column_name,
                    )
                found = table.column(column_name)
                if found is None:
                    raise DatapipeError(
                        path,
                        f"{treatment.value}[{table_name!r}] names a column the table does not declare "
                        f"(columns: {', '.join(c.name for c in table.columns)})",
                        column_name,
                    )
                if column_name in table.primary_key:
                    raise DatapipeError(
                        path, f"primary key column {table_name}.{column_name} cannot be {treatment.value}", column_name
                    )
                if column_name in treatments[table_name]:
                    raise DatapipeError(path, f"column {table_name}.{column_name} has two treatments", column_name)
                if treatment is not Treatment.EXCLUDED and not found.type.is_text:
                    raise DatapipeError(
                        path,
                        f"column {table_name}.{column_name} is {found.type.value}: Debezium {_VERB[treatment]} only "
                        f"string columns and passes others through unchanged; use excluded={{{table_name!r}: [{column_name!r}]}}",
                        column_name,
                    )
                treatments[table_name][column_name] = treatment
    result = []
    for name, table in declared.items():
        topic = f"{prefix}.{namespace}.{name}"
        check_topic_name(path, topic)
        result.append(CapturedTable(name=name, namespace=namespace, table=table, topic_name=topic, treatments=treatments[name]))
    return result


def _connector_config(
    engine: Engine,
    host: str,
    port: int,
    database: str,
    namespace: str,
    username: str,
    prefix: str,
    snapshot_mode: SnapshotMode,
    heartbeat: timedelta | None,
    server_id: int | None,
    captured: list[CapturedTable],
) -> dict[str, str]:
    config = {
        "connector.class": engine.connector_class,
        "tasks.max": "1",
        "database.hostname": host,
        "database.port": str(port),
        "database.user": username,
        "topic.prefix": prefix,
        "table.include.list": ",".join(re.escape(t.qualified_name) for t in captured),
        "message.key.columns": ";".join(f"{t.qualified_name}:{','.join(t.primary_key)}" for t in captured if t.primary_key),
        "snapshot.mode": snapshot_mode.value,
        # Exact values (see datapipe_cdk.typemap): microseconds, decimals as their text, unsigned BIGINT exact.
        "time.precision.mode": "adaptive_time_microseconds",
        "decimal.handling.mode": "string",
        "bigint.unsigned.handling.mode": "precise",
        "binary.handling.mode": "bytes",
        "tombstones.on.delete": "true",
        # How long Debezium waits for more events when its queue is empty before handing a batch to Kafka:
        # the default 500 ms is most of the low-rate latency (bench/load_bench.py); a full queue never waits.
        "poll.interval.ms": "100",
        "key.converter": "org.apache.kafka.connect.json.JsonConverter",
        "key.converter.schemas.enable": "true",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "true",
    }
    if not config["message.key.columns"]:
        del config["message.key.columns"]
    if engine is Engine.POSTGRESQL:
        slot = re.sub(r"[^a-z0-9_]", "_", prefix.lower())[:63]
        config.update(
            {
                "database.dbname": database,
                "schema.include.list": namespace,
                "plugin.name": "pgoutput",
                "slot.name": slot,
                "publication.name": f"{slot}_publication",
                # The publication is the DBA's (`datapipe doctor` prints the statement; the local stack makes
                # it): creating one needs table ownership, which the CDC login should not have.
                "publication.autocreate.mode": "disabled",
                "interval.handling.mode": "string",
            }
        )
    else:
        config.update(
            {
                "database.server.id": str(server_id),
                "database.include.list": database,
                "include.schema.changes": "false",
            }
        )
    if heartbeat is not None:
        config["heartbeat.interval.ms"] = str(to_millis(heartbeat))
    if any(t.name == HEARTBEAT_TABLE for t in captured):
        config["heartbeat.action.query"] = heartbeat_statement(engine is Engine.POSTGRESQL, namespace)
    return config


def _signal_config(namespace: str, prefix: str, included_columns: str) -> dict[str, str]:
    """Debezium's ``source`` signal channel on ``<namespace>.debezium_signal``: its three columns must pass the
    column filter (Debezium reads signals from the change events), and a ``Filter`` transform drops those
    events before Kafka (their topic ``<prefix>.<namespace>.debezium_signal`` is never created)."""
    signal = f"{namespace}.{SIGNAL_TABLE}"
    columns = [re.escape(f"{signal}.{column}") for column in SIGNAL_COLUMNS]
    return {
        "signal.enabled.channels": "source",
        "signal.data.collection": signal,
        "column.include.list": ",".join([c for c in included_columns.split(",") if c] + columns),
        "transforms": "dropSignals",
        "transforms.dropSignals.type": "org.apache.kafka.connect.transforms.Filter",
        "transforms.dropSignals.predicate": "isSignal",
        "predicates": "isSignal",
        "predicates.isSignal.type": "org.apache.kafka.connect.transforms.predicates.TopicNameMatches",
        "predicates.isSignal.pattern": re.escape(f"{prefix}.{signal}"),
    }


def _treatment_config(captured: list[CapturedTable], salt: str | None) -> dict[str, str]:
    """Which columns leave the database (declared minus excluded; the key alone for a table declared by key),
    and Debezium's masking keys (the hashing salt, a variable reference, is spelled inside its key)."""
    included = [
        re.escape(f"{table.qualified_name}.{column.name}") for table in captured for column in table.columns_reaching_kafka()
    ]
    by_treatment: dict[Treatment, list[str]] = {t: [] for t in Treatment}
    for table in captured:
        for column, treatment in table.treatments.items():
            by_treatment[treatment].append(re.escape(f"{table.qualified_name}.{column}"))
    config: dict[str, str] = {"column.include.list": ",".join(included)}
    if by_treatment[Treatment.MASKED]:
        config[f"column.mask.with.{MASK_LENGTH}.chars"] = ",".join(by_treatment[Treatment.MASKED])
    if by_treatment[Treatment.HASHED] and salt is not None:
        config[f"column.mask.hash.v2.SHA-256.with.salt.{salt}"] = ",".join(by_treatment[Treatment.HASHED])
    return config
