"""L2: a Debezium change-data-capture source: one connector, the topics it writes, its ACLs."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from datetime import timedelta
from enum import Enum
from typing import Any

from constructs import Construct

from . import _validate as check
from .acl import AclOperation, KafkaAcl, PatternType, ResourceType
from .errors import DatapipeError
from .principal import Principal
from .providers.kafka_connect import Connector
from .schema import IDENTIFIER, CapturedTable, Column, Table, Treatment
from .topic import StreamingTopic, check_topic_name
from .units import FOREVER, to_millis


class Engine(Enum):
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
    def position_fields(self) -> tuple[str, ...]:
        """Debezium ``source`` fields that totally order one server's changes."""
        return ("lsn",) if self is Engine.POSTGRESQL else ("file", "pos", "row")


class SnapshotMode(Enum):
    INITIAL = "initial"
    ALWAYS = "always"
    INITIAL_ONLY = "initial_only"
    NO_DATA = "no_data"
    WHEN_NEEDED = "when_needed"
    RECOVERY = "recovery"


class DecimalHandling(Enum):
    PRECISE = "precise"
    DOUBLE = "double"
    STRING = "string"


_HOST = r"[A-Za-z0-9]([A-Za-z0-9.-]{0,253})"
_PREFIX = r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}"
MASK_LENGTH = 8


class CdcSource(Construct):
    """A database captured by Debezium 3.x into one Kafka topic per table.

    Creates, explicitly and before the connector: one topic per table
    (``<prefix>.<database|schema>.<table>``), the schema-history topic (MySQL/MariaDB) and the
    heartbeat topic when ``heartbeat`` is set; plus the ACLs the Connect principal needs. The
    database password is the sensitive variable ``<id>_password`` and goes only to
    ``config_sensitive``. Hashed columns use the salt variable ``<id>_hash_salt``: Debezium
    spells the salt inside a config *key*, which Kafka Connect's REST API shows to anyone who may
    read connector configs, so it is a deployment parameter (never a literal in the JSON), not a
    secret; protect the Connect REST API instead.
    """

    def __init__(
        self,
        scope: Construct,
        source_id: str,
        *,
        engine: Engine | str,
        host: str,
        database: str,
        tables: Mapping[str, Sequence[str] | Table],
        port: int | None = None,
        schema: str = "public",
        username: str = "debezium",
        topic_prefix: str | None = None,
        snapshot_mode: SnapshotMode = SnapshotMode.INITIAL,
        heartbeat: timedelta | None = None,
        masked: Mapping[str, Sequence[str | Column]] | None = None,
        hashed: Mapping[str, Sequence[str | Column]] | None = None,
        excluded: Mapping[str, Sequence[str | Column]] | None = None,
        partitions: int = 1,
        retention: timedelta | None = None,
        server_id: int | None = None,
        decimal_handling: DecimalHandling = DecimalHandling.PRECISE,
        extra_config: Mapping[str, str] | None = None,
        owner: Principal | None = None,
    ) -> None:
        from .stack import DataPipelineStack

        path = check.child_path(scope, source_id, "CdcSource")
        stack = DataPipelineStack.of(scope)
        if owner is not None:
            check.instance(path, "owner", owner, Principal)
        engine = check.choice(path, "engine", engine, Engine)
        check.text(path, "host", host, pattern=_HOST, rule="must be a host name or IP address", max_length=253)
        port = check.integer(path, "port", engine.default_port if port is None else port, minimum=1, maximum=65535)
        check.text(path, "database", database, pattern=IDENTIFIER, rule="must be a database name (letters, digits, '_')")
        namespace = (
            check.text(path, "schema", schema, pattern=IDENTIFIER, rule="must be a schema name")
            if engine is Engine.POSTGRESQL
            else database
        )
        check.text(path, "username", username, pattern=r"[A-Za-z0-9_.@-]{1,64}", rule="must be a database user name")
        prefix = topic_prefix if topic_prefix is not None else re.sub(r"[^A-Za-z0-9_-]", "_", source_id)
        check.text(
            path, "topic_prefix", prefix, pattern=_PREFIX, rule="may hold only letters, digits, '.', '_', '-'", max_length=100
        )
        snapshot_mode = check.choice(path, "snapshot_mode", snapshot_mode, SnapshotMode)
        decimal_handling = check.choice(path, "decimal_handling", decimal_handling, DecimalHandling)
        if heartbeat is not None:
            check.duration(path, "heartbeat", heartbeat, minimum=timedelta(milliseconds=99))
        if retention is not None and retention != FOREVER:
            check.duration(path, "retention", retention)
        check.integer(path, "partitions", partitions, minimum=1, maximum=100_000)
        if server_id is None:
            server_id = 1000 + int(hashlib.sha256(f"{stack.node.id}/{source_id}".encode()).hexdigest()[:6], 16) % 4_000_000
        check.integer(path, "server_id", server_id, minimum=1, maximum=2**32 - 1)
        extra = check.string_map(path, "extra_config", extra_config or {})
        captured = self._captured_tables(path, engine, namespace, prefix, tables, masked, hashed, excluded)
        connector_name = source_id
        stack.claim("connector", connector_name, path)

        super().__init__(scope, source_id)
        check.adopt(scope, self, source_id, owns_children=True)
        self.pipeline = stack
        self.engine = engine
        self.host = host
        self.port = port
        self.database = database
        self.namespace = namespace
        self.topic_prefix = prefix
        self.connector_name = connector_name
        self.owner = owner
        self.captured: dict[str, CapturedTable] = {t.name: t for t in captured}
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
        acls = self._grant_connect(prefix)

        password = stack.sensitive_variable(
            f"{check.word(source_id)}_password", f"Password of database user {username} for {path}"
        )
        config = self._connector_config(
            engine,
            host,
            port,
            database,
            namespace,
            username,
            prefix,
            snapshot_mode,
            decimal_handling,
            heartbeat,
            server_id,
            captured,
        )
        sensitive: dict[str, str] = {"database.password": password.string_value}
        if self.history_topic is not None:
            config.update(self._history_config(self.history_topic))
            sensitive.update(self._history_credentials())
        salt = None
        if any(t is Treatment.HASHED for table in captured for t in table.treatments.values()):
            salt = stack.variable(f"{check.word(source_id)}_hash_salt", f"Salt for hashed PII columns of {path}", sensitive=False)
        config.update(self._treatment_config(captured, salt.string_value if salt is not None else None))
        config.update(extra)
        all_topics = [*self._topics.values(), *support]
        self.connector = Connector(
            self,
            "connector",
            name=connector_name,
            config=config,
            config_sensitive=sensitive,
            depends_on=[t.resource for t in all_topics] + [a.resource for a in acls],
        )
        stack.registry.manifest_parts.append(self._describe)

    def topic(self, table: str) -> StreamingTopic:
        """The topic that carries ``table``'s changes."""
        if table not in self._topics:
            raise DatapipeError(
                check.path_of(self), f"no captured table named {table!r} (captured: {sorted(self._topics)})", table
            )
        return self._topics[table]

    @property
    def tables(self) -> list[CapturedTable]:
        return list(self.captured.values())

    @staticmethod
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
            check.text(path, "table name", name, pattern=IDENTIFIER, rule="must be a table name (letters, digits, '_')")
            if isinstance(spec, Table):
                declared[name] = spec.checked(path, name)
            else:
                keys = check.sequence(path, f"tables[{name!r}]", spec)
                declared[name] = Table(primary_key=tuple(keys)).checked(path, name)
        treatments: dict[str, dict[str, Treatment]] = {name: {} for name in declared}
        for treatment, given in ((Treatment.MASKED, masked), (Treatment.HASHED, hashed), (Treatment.EXCLUDED, excluded)):
            for table_name, columns in check.mapping(path, treatment.value, given or {}).items():
                if table_name not in declared:
                    raise DatapipeError(path, f"{treatment.value} names a table that is not captured", table_name)
                for column in check.sequence(path, f"{treatment.value}[{table_name!r}]", columns):
                    column_name = (
                        column.checked(path).name
                        if isinstance(column, Column)
                        else check.text(
                            path, f"{treatment.value} column", column, pattern=IDENTIFIER, rule="must be a column name"
                        )
                    )
                    table = declared[table_name]
                    if table.columns and table.column(column_name) is None:
                        raise DatapipeError(
                            path, f"{treatment.value}[{table_name!r}] names a column the table does not declare", column_name
                        )
                    if column_name in table.primary_key:
                        raise DatapipeError(
                            path, f"primary key column {table_name}.{column_name} cannot be {treatment.value}", column_name
                        )
                    if column_name in treatments[table_name]:
                        raise DatapipeError(path, f"column {table_name}.{column_name} has two treatments", column_name)
                    treatments[table_name][column_name] = treatment
        result = []
        for name, table in declared.items():
            topic = f"{prefix}.{namespace}.{name}"
            check_topic_name(path, topic)
            result.append(
                CapturedTable(name=name, namespace=namespace, table=table, topic_name=topic, treatments=treatments[name])
            )
        return result

    def _grant_connect(self, prefix: str) -> list[KafkaAcl]:
        worker = self.pipeline.connect.principal
        acls = [
            KafkaAcl.ensure(self, worker, ResourceType.TOPIC, f"{prefix}.", op, pattern=PatternType.PREFIXED)
            for op in (AclOperation.WRITE, AclOperation.DESCRIBE)
        ]
        if self.history_topic is not None:
            for op in (AclOperation.READ, AclOperation.WRITE, AclOperation.DESCRIBE):
                acls.append(KafkaAcl.ensure(self, worker, ResourceType.TOPIC, self.history_topic.name, op))
            acls.append(KafkaAcl.ensure(self, worker, ResourceType.GROUP, f"{prefix}-schemahistory", AclOperation.READ))
            acls.append(KafkaAcl.ensure(self, worker, ResourceType.CLUSTER, "kafka-cluster", AclOperation.DESCRIBE))
            acls.append(KafkaAcl.ensure(self, worker, ResourceType.CLUSTER, "kafka-cluster", AclOperation.DESCRIBE_CONFIGS))
        if self.heartbeat_topic is not None:
            for op in (AclOperation.WRITE, AclOperation.DESCRIBE):
                acls.append(KafkaAcl.ensure(self, worker, ResourceType.TOPIC, self.heartbeat_topic.name, op))
        return acls

    @staticmethod
    def _connector_config(
        engine: Engine,
        host: str,
        port: int,
        database: str,
        namespace: str,
        username: str,
        prefix: str,
        snapshot_mode: SnapshotMode,
        decimal_handling: DecimalHandling,
        heartbeat: timedelta | None,
        server_id: int,
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
            "decimal.handling.mode": decimal_handling.value,
            "time.precision.mode": "connect",
            "tombstones.on.delete": "true",
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
                    "publication.autocreate.mode": "filtered",
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
        return config

    def _history_config(self, history: StreamingTopic) -> dict[str, str]:
        kafka = self.pipeline.kafka
        config = {
            "schema.history.internal.kafka.bootstrap.servers": ",".join(kafka.bootstrap_servers),
            "schema.history.internal.kafka.topic": history.name_ref,
        }
        for client in ("producer", "consumer"):
            config[f"schema.history.internal.{client}.security.protocol"] = kafka.security_protocol
            if kafka.sasl_username:
                config[f"schema.history.internal.{client}.sasl.mechanism"] = kafka.sasl_mechanism.java_name
        return config

    def _history_credentials(self) -> dict[str, str]:
        """The history topic's Kafka clients log in as the Connect principal; the JAAS line holds a secret."""
        kafka = self.pipeline.kafka
        if not kafka.sasl_username:
            return {}
        worker = self.pipeline.connect.principal.name
        password = self.pipeline.sensitive_variable("connect_sasl_password", f"SASL password of Kafka user {worker}")
        jaas = f'{kafka.sasl_mechanism.login_module} required username="{worker}" password="{password.string_value}";'
        return {f"schema.history.internal.{client}.sasl.jaas.config": jaas for client in ("producer", "consumer")}

    @staticmethod
    def _treatment_config(captured: list[CapturedTable], salt: str | None) -> dict[str, str]:
        """Debezium's column keys; the hashing salt (a variable reference) is spelled inside its key."""
        by_treatment: dict[Treatment, list[str]] = {t: [] for t in Treatment}
        for table in captured:
            for column, treatment in table.treatments.items():
                by_treatment[treatment].append(re.escape(f"{table.qualified_name}.{column}"))
        config: dict[str, str] = {}
        if by_treatment[Treatment.EXCLUDED]:
            config["column.exclude.list"] = ",".join(by_treatment[Treatment.EXCLUDED])
        if by_treatment[Treatment.MASKED]:
            config[f"column.mask.with.{MASK_LENGTH}.chars"] = ",".join(by_treatment[Treatment.MASKED])
        if by_treatment[Treatment.HASHED] and salt is not None:
            config[f"column.mask.hash.v2.SHA-256.with.salt.{salt}"] = ",".join(by_treatment[Treatment.HASHED])
        return config

    def _describe(self, manifest: dict[str, Any]) -> None:
        manifest["sources"].append(
            {
                "name": self.node.id,
                "path": check.path_of(self),
                "engine": self.engine.value,
                "host": self.host,
                "port": self.port,
                "database": self.database,
                "schema": self.namespace if self.engine is Engine.POSTGRESQL else None,
                "connector": self.connector_name,
                "topic_prefix": self.topic_prefix,
                "tables": [
                    {
                        "name": t.name,
                        "primary_key": list(t.primary_key),
                        "topic": t.topic_name,
                        "columns": [
                            {
                                "name": c.name,
                                "type": c.type.value,
                                "classification": c.classification.value if c.classification else None,
                                "info_type": c.info_type.value if c.info_type else None,
                                "treatment": t.treatments[c.name].value if c.name in t.treatments else None,
                            }
                            for c in t.table.columns
                        ],
                    }
                    for t in self.tables
                ],
            }
        )

