"""L2: the BigQuery sink (KCBQ): a raw dataset of append-only changelog tables fed from Kafka."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from constructs import Construct

from . import _validate as check
from ._core import PipelineConstruct, pipeline_of, warn
from .acl import AclOperation, KafkaAcl, ResourceType
from .compaction import LOG_TABLE, Compaction, CompactionPolicy, state_table_id
from .dataset import Dataset
from .errors import DatapipeError
from .freshness import CHECK_EVERY, MISSED, freshness_check_sql
from .heartbeat import HEARTBEAT_TABLE
from .manifest import ChangelogColumn, Manifest, Sink, SinkTable, WorkerSecret
from .principal import Principal
from .providers.google import (
    BigqueryDataTransferConfig,
    BigqueryTable,
    MonitoringAlertPolicy,
    ProjectIamMember,
    ServiceAccount,
)
from .providers.kafka_connect import Connector
from .schema import CapturedTable, Column
from .source import CdcSource, Engine
from .sql import quote_identifier, quote_table
from .topic import StreamingTopic
from .typemap import cast_spec, encoding, view_expressions
from .units import in_words
from .worker_secrets import SecretFile

KCBQ_CONNECTOR = "com.wepay.kafka.connect.bigquery.BigQuerySinkConnector"
KAFKA_FIELD = "_kafka"
MAX_TASKS = 8
_POSITION_TYPES = {
    "snapshot": "STRING", "lsn": "INTEGER", "sequence": "STRING", "file": "STRING", "pos": "INTEGER",
    "row": "INTEGER", "server_id": "INTEGER", "gtid": "STRING",
}  # fmt: skip


def changelog_table_id(topic: str) -> str:
    """The table KCBQ writes a topic to with ``sanitizeTopics=true``: ``[^A-Za-z0-9_]`` -> ``_``."""
    table = check.word(topic)
    return table if re.match(r"[A-Za-z_]", table) else f"_{table}"


def metadata_columns(engine: Engine) -> list[tuple[str, str]]:
    """Columns ExtractNewRecordState adds (``__op``, ``__deleted``, source time and position)."""
    position = [(f"__{name}", _POSITION_TYPES[name]) for name in engine.position_fields]
    return [("__op", "STRING"), ("__deleted", "STRING"), ("__source_ts_ms", "INTEGER"), *position]


@dataclass(frozen=True)
class ChangelogTable:
    """One append-only changelog table (every change event of one source table, in arrival order) and its
    compacted state (the newest event per key; see :mod:`datapipe_cdk.compaction`)."""

    sink: BigQuerySink
    captured: CapturedTable
    engine: Engine
    table_id: str
    resource: BigqueryTable
    state_resource: BigqueryTable
    compaction: Compaction

    @property
    def primary_key(self) -> tuple[str, ...]:
        return self.captured.primary_key

    @property
    def dataset(self) -> Dataset:
        return self.sink.dataset

    @property
    def columns(self) -> list[Column]:
        """The data columns it carries (declared minus excluded; the key alone, as text, for a key-only table)."""
        return self.captured.columns_reaching_kafka()

    @property
    def state_table_id(self) -> str:
        return state_table_id(self.table_id)

    def projections(self, columns: Sequence[str], *, exact_bignumeric: bool) -> list[str]:
        """``expression AS name`` for each chosen column, typed as the source declares it (see typemap)."""
        binlog = self.engine.is_binlog
        result = []
        for name in columns:
            column = next(c for c in self.columns if c.name == name)
            for expression, alias in view_expressions(
                column, quote_identifier(name), binlog=binlog, exact_bignumeric=exact_bignumeric
            ):
                result.append(
                    expression
                    if alias == name and expression == quote_identifier(name)
                    else f"{expression} AS {quote_identifier(alias)}"
                )
        return result


class BigQuerySink(PipelineConstruct):
    """A KCBQ sink connector writing one append-only changelog table per captured table into its own dataset,
    with a compacted state table beside each (the newest row per key, merged every ``compact_every``).

    Values arrive exactly (see :mod:`datapipe_cdk.typemap`): the connector casts dates and times to plain
    integers and unsigned BIGINTs to text before KCBQ's lossy converters see them, and the latest-state
    views turn them back into BigQuery types. Only declared columns exist: the table's schema is the
    declared columns, never extended by the sink (a column added at the source is drift, reported by
    ``datapipe doctor`` and the quality checks, until declared and classified).

    The connector's Google identity is a service account with WRITER on this dataset only and job-user
    on the project (with ``GcpProject(manage_iam=True)``). Its key never passes through Terraform: the
    workers read it from ``<secrets_dir>/<id>-gcp-key.json`` (create it with
    ``gcloud iam service-accounts keys create``; the manifest and ``datapipe worker-secrets`` list it).

    Args:
        scope: the stack, or one of your constructs under it.
        sink_id: the construct id; also the connector's name.
        source: the ``CdcSource`` whose tables it writes.
        dataset: the raw dataset's id (letters, digits, '_'), created by this sink.
        tables: which of the source's tables to write (default: all).
        description: the dataset's description.
        labels: dataset labels (lowercase keys and values).
        holds_pii: declare that the dataset may hold unmasked PII (then it needs a bounded ``retention``).
        retention: partition expiration of the changelog tables, a ``timedelta``.
        owners: the dataset's owners (policy ``owner-required``), Google identities.
        readers: who may read the raw changelogs.
        deletion_protection: refuse ``terraform destroy`` of the tables (default on).
        compact_every: how often the changelogs are merged into the state tables (default 1 hour; at
            least 15 minutes). Production: a BigQuery scheduled query; the local stack: its compactor.
        recent_window: how much recent history latest-state views read live besides the state (default
            6 hours; at least ``2 x compact_every + 1 hour``). Views fail loudly if compaction stops for
            longer than ``recent_window - 1 hour``. ``retention`` expires changelog partitions only: the
            current rows live in the state tables.

    ``sink.table("orders")`` is a ``ChangelogTable`` to expose in a ``MicroWarehouse``.
    """

    def __init__(
        self,
        scope: Construct,
        sink_id: str,
        *,
        source: CdcSource,
        dataset: str,
        tables: Sequence[str] | None = None,
        description: str | None = None,
        labels: Mapping[str, str] | None = None,
        holds_pii: bool = False,
        retention: timedelta | None = None,
        owners: Sequence[Principal] = (),
        readers: Sequence[Principal] = (),
        deletion_protection: bool = True,
        compact_every: timedelta = timedelta(hours=1),
        recent_window: timedelta = timedelta(hours=6),
    ) -> None:
        path = check.child_path(scope, sink_id, "BigQuerySink")
        stack = pipeline_of(scope, path)
        source = check.instance(path, "source", source, CdcSource)
        chosen = [source.captured[name] for name in self._chosen(path, source, tables)]
        self.compaction_policy = CompactionPolicy.checked(path, compact_every, recent_window)
        check.flag(path, "deletion_protection", deletion_protection)
        deletion_protection = deletion_protection and stack.target != "local"  # the local stack is disposable
        stack.registry.claim("connector", sink_id, path)
        Dataset.check_arguments(path, stack, dataset, description, labels, holds_pii, retention, owners, readers)

        super().__init__(scope, sink_id, pipeline=stack, path=path)
        self.source = source
        self.connector_name = sink_id
        self.dataset = Dataset(
            self,
            "dataset",
            dataset_id=dataset,
            description=description or f"Raw change events from {check.path_of(source)}",
            labels=labels,
            holds_pii=holds_pii,
            retention=retention,
            owners=owners,
            readers=readers,
            deletion_protection=deletion_protection,
        )
        self.log_resource = BigqueryTable(
            self,
            "compaction-log",
            dataset_id=self.dataset.dataset_id_ref,
            table_id=LOG_TABLE,
            description=f"Compactions of {sink_id}'s changelogs into their state tables (datapipe-cdk)",
            schema=json.dumps(
                [
                    {"name": "table_id", "type": "STRING", "mode": "REQUIRED"},
                    {"name": "compacted_at", "type": "TIMESTAMP", "mode": "REQUIRED"},
                ],
                separators=(",", ":"),
            ),
            deletion_protection=deletion_protection,
        )
        self._tables: dict[str, ChangelogTable] = {}
        for captured in chosen:
            self._tables[captured.name] = self._changelog(stack, sink_id, captured, source.engine, deletion_protection)
        self.dead_letter_topic = StreamingTopic(
            self, "dead-letter", name=f"dlq.{sink_id}", partitions=1, retention=timedelta(days=14)
        )
        self.key_file = SecretFile(
            stack.connect.secrets_dir, f"{sink_id}-gcp-key.json", sink_id, f"Google service account key JSON of {path}"
        )
        acls = self._grant_connect(chosen)
        self.service_account: ServiceAccount | None = None
        identity = self._define_identity(stack) if stack.gcp.manage_iam else []
        self.scheduled_compaction: BigqueryDataTransferConfig | None = None
        self.freshness_alert: MonitoringAlertPolicy | None = None
        if stack.target != "local":  # the emulator has no Data Transfer API: the local stack runs its compactor
            self.scheduled_compaction = self._schedule_compaction(stack, identity)
            if source.freshness is not None and HEARTBEAT_TABLE in self._tables:
                self.freshness_alert = self._watch_freshness(stack, source.freshness, identity)
        self.connector = Connector(
            self,
            "connector",
            name=sink_id,
            config=self._connector_config(stack.gcp.project, chosen),
            depends_on=[source.topic(t.name).resource for t in chosen]
            + [t.resource for t in self._tables.values()]
            + [self.dead_letter_topic.resource]
            + [a.resource for a in acls]
            + identity,
        )
        stack.registry.manifest_parts.append(self._describe)

    def table(self, name: str) -> ChangelogTable:
        """The changelog table of source table ``name`` (carries its primary key, for warehouses)."""
        if name not in self._tables:
            raise DatapipeError(
                check.path_of(self), f"no changelog table named {name!r} (sink tables: {sorted(self._tables)})", name
            )
        return self._tables[name]

    @property
    def tables(self) -> list[ChangelogTable]:
        return list(self._tables.values())

    @staticmethod
    def _chosen(path: str, source: CdcSource, tables: object) -> list[str]:
        if tables is None:
            return list(source.captured)
        names = [check.text(path, "tables entry", t) for t in check.sequence(path, "tables", tables)]
        unknown = [n for n in names if n not in source.captured]
        if unknown or not names:
            raise DatapipeError(path, f"tables must name tables the source captures ({sorted(source.captured)})", names)
        if HEARTBEAT_TABLE in source.captured and HEARTBEAT_TABLE not in names:
            names.append(HEARTBEAT_TABLE)  # its beats are how this sink's freshness is measured
        return names

    def _changelog(
        self, stack: Any, sink_id: str, captured: CapturedTable, engine: Engine, deletion_protection: bool
    ) -> ChangelogTable:
        table_id = changelog_table_id(captured.topic_name)
        schema = self._schema(captured, engine, exact_bignumeric=stack.target != "local")
        clustering = list(captured.primary_key[:4]) or None
        resource = BigqueryTable(
            self,
            f"changelog-{captured.name}",
            dataset_id=self.dataset.dataset_id_ref,
            table_id=table_id,
            description=f"Changelog of {captured.qualified_name}: one row per change event, appended by {sink_id}",
            schema=schema,
            time_partitioning={"type": "DAY", "expiration_ms": self.dataset.partition_expiration_ms}
            if self.dataset.partition_expiration_ms
            else {"type": "DAY"},
            clustering=clustering,
            deletion_protection=deletion_protection,
        )
        state = BigqueryTable(
            self,
            f"state-{captured.name}",
            dataset_id=self.dataset.dataset_id_ref,
            table_id=state_table_id(table_id),
            description=f"Compacted state of {captured.qualified_name}: the newest event per key (never expires)",
            schema=schema,
            clustering=clustering,
            deletion_protection=deletion_protection,
        )
        project, dataset = stack.gcp.project, self.dataset.dataset_id
        compaction = Compaction(
            table_id=table_id,
            changelog=quote_table(project, dataset, table_id),
            state=quote_table(project, dataset, state_table_id(table_id)),
            log=quote_table(project, dataset, LOG_TABLE),
            stored=tuple(name for name, _ in self._fields(captured, engine, exact_bignumeric=True)),
            primary_key=captured.primary_key,
            policy=self.compaction_policy,
            partitioned_by_ingestion=stack.target != "local",
        )
        return ChangelogTable(self, captured, engine, table_id, resource, state, compaction)

    @staticmethod
    def _fields(captured: CapturedTable, engine: Engine, *, exact_bignumeric: bool) -> list[tuple[str, dict[str, Any]]]:
        fields: list[tuple[str, dict[str, Any]]] = []
        for column in captured.columns_reaching_kafka():
            kind = encoding(column, binlog=engine.is_binlog, exact_bignumeric=exact_bignumeric).changelog_type
            field: dict[str, Any] = {"name": column.name, "type": kind, "mode": "REPEATED" if column.repeated else "NULLABLE"}
            if column.description:
                field["description"] = column.description
            fields.append((column.name, field))
        fields += [(name, {"name": name, "type": kind, "mode": "NULLABLE"}) for name, kind in metadata_columns(engine)]
        kafka = {
            "name": KAFKA_FIELD,
            "type": "RECORD",
            "mode": "NULLABLE",
            "fields": [
                {"name": "topic", "type": "STRING", "mode": "NULLABLE"},
                {"name": "partition", "type": "INTEGER", "mode": "NULLABLE"},
                {"name": "offset", "type": "INTEGER", "mode": "NULLABLE"},
                {"name": "insertTime", "type": "TIMESTAMP", "mode": "NULLABLE"},
            ],
        }
        fields.append((KAFKA_FIELD, kafka))
        return fields

    @classmethod
    def _schema(cls, captured: CapturedTable, engine: Engine, *, exact_bignumeric: bool) -> str:
        """Declared columns as they travel (typemap), Debezium's metadata, KCBQ's ``_kafka`` record."""
        return json.dumps([f for _, f in cls._fields(captured, engine, exact_bignumeric=exact_bignumeric)], separators=(",", ":"))

    def _schedule_compaction(self, stack: Any, identity: list[Any]) -> BigqueryDataTransferConfig:
        """A BigQuery scheduled query running every table's compaction (as the sink's service account, if managed)."""
        script = ";\n".join(s.rstrip().rstrip(";") for t in self._tables.values() for s in t.compaction.statements())
        return BigqueryDataTransferConfig(
            self,
            "compaction",
            display_name=f"datapipe compaction {self.connector_name}"[:100],
            data_source_id="scheduled_query",
            location=stack.gcp.location,
            schedule=self.compaction_policy.schedule,
            params={"query": script + ";\n"},
            service_account_name=self.service_account.get_string_attribute("email") if self.service_account else None,
            depends_on=[self.log_resource, *(t.state_resource for t in self._tables.values()), *identity],
        )

    def _watch_freshness(self, stack: Any, objective: timedelta, identity: list[Any]) -> MonitoringAlertPolicy:
        """A scheduled check of the newest beat every 15 minutes (it fails, logging ``datapipe freshness missed``,
        when the beat is older than the objective) and an alert policy on that log entry."""
        heartbeat = self._tables[HEARTBEAT_TABLE]
        label = f"{self.construct_path} (objective {in_words(objective)})"
        if not stack.gcp.alert_channels:
            warn(
                self,
                f"freshness objective {in_words(objective)} of {self.source.construct_path}: its alert policy notifies "
                "no one; set GcpProject(alert_channels=['projects/<p>/notificationChannels/<id>'])",
            )
        check_query = BigqueryDataTransferConfig(
            self,
            "freshness-check",
            display_name=f"datapipe freshness {self.connector_name}"[:100],
            data_source_id="scheduled_query",
            location=stack.gcp.location,
            schedule=f"every {int(CHECK_EVERY / timedelta(minutes=1))} minutes",
            params={"query": freshness_check_sql(heartbeat.compaction.changelog, objective, label)},
            service_account_name=self.service_account.get_string_attribute("email") if self.service_account else None,
            depends_on=[heartbeat.resource, *identity],
        )
        return MonitoringAlertPolicy(
            self,
            "freshness-alert",
            display_name=f"Freshness of {self.construct_path}"[:100],
            combiner="OR",
            conditions=[
                {
                    "display_name": f"{MISSED}: {self.construct_path}"[:100],
                    "condition_matched_log": [
                        {"filter": f'resource.type="bigquery_dts_config" AND "{MISSED}: {self.construct_path} "'}
                    ],
                }
            ],
            alert_strategy={"notification_rate_limit": [{"period": "300s"}], "auto_close": "1800s"},
            notification_channels=list(stack.gcp.alert_channels),
            documentation={
                "content": f"The newest change of {self.source.construct_path} visible in BigQuery is older than "
                f"{in_words(objective)}. Run `datapipe freshness` and `datapipe doctor` for the cause.",
                "mime_type": "text/markdown",
            },
            depends_on=[check_query],
        )

    def _grant_connect(self, chosen: list[CapturedTable]) -> list[KafkaAcl]:
        """Read+Describe on exactly the topics it consumes; Read, Describe and Delete on its own consumer group
        (Describe and Delete let Connect's offsets API reset it before a redeploy); Write+Describe on its
        dead-letter topic."""
        worker = self.pipeline.connect.principal
        acls = [
            KafkaAcl.ensure(self, worker, ResourceType.TOPIC, self.source.topic(t.name).name, op)
            for t in chosen
            for op in (AclOperation.READ, AclOperation.DESCRIBE)
        ]
        group = f"connect-{self.connector_name}"
        for op in (AclOperation.READ, AclOperation.DESCRIBE, AclOperation.DELETE):
            acls.append(KafkaAcl.ensure(self, worker, ResourceType.GROUP, group, op))
        for op in (AclOperation.WRITE, AclOperation.DESCRIBE):
            acls.append(KafkaAcl.ensure(self, worker, ResourceType.TOPIC, self.dead_letter_topic.name, op))
        return acls

    def _define_identity(self, stack: Any) -> list[Any]:
        """The connector's service account: WRITER on this dataset, job-user on the project; no key in Terraform."""
        account = ServiceAccount(
            self,
            "service-account",
            account_id=_account_id(self.connector_name),
            display_name=f"KCBQ sink {self.construct_path}",
            description="Writes change events into one raw dataset (datapipe-cdk)",
        )
        self.service_account = account
        writer = self.dataset.grant_service_account("WRITER", account.get_string_attribute("email"), "sink-writer")
        job_user = ProjectIamMember(
            self,
            "job-user",
            project=stack.gcp.project,
            role="roles/bigquery.jobUser",
            member=account.get_string_attribute("member"),
        )
        return [writer, job_user]

    def _connector_config(self, project: str, chosen: list[CapturedTable]) -> dict[str, str]:
        topics = [self.source.topic(t.name) for t in chosen]
        engine = self.source.engine
        add_fields = ["op", "source.ts_ms", *engine.position_fields]
        config = {
            "connector.class": KCBQ_CONNECTOR,
            # One task per partition (up to 8): this KCBQ makes two HTTP calls per record, so tasks are its speed.
            "tasks.max": str(min(self.source.partitions, MAX_TASKS)),
            "topics": ",".join(t.name_ref for t in topics),
            "project": project,
            "defaultDataset": self.dataset.dataset_id_ref,
            "keySource": "FILE",
            "keyfile": self.key_file.path,
            # Table = sanitized topic name: the same in every KCBQ line (WePay 2.0 has no topic2TableMap).
            "sanitizeTopics": "true",
            "autoCreateTables": "false",
            "schemaRetriever": "com.wepay.kafka.connect.bigquery.retrieve.IdentitySchemaRetriever",
            # The tables' schemas are the declared columns, changed by Terraform only: the sink never adds a
            # column (it would add KCBQ's own lossy types, and cannot add REPEATED ones at all).
            "allowNewBigQueryFields": "false",
            "allowBigQueryRequiredFieldRelaxation": "false",
            "bigQueryPartitionDecorator": "false",
            "kafkaDataFieldName": KAFKA_FIELD,
            "key.converter": "org.apache.kafka.connect.json.JsonConverter",
            "key.converter.schemas.enable": "true",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter.schemas.enable": "true",
            "transforms.unwrap.type": "io.debezium.transforms.ExtractNewRecordState",
            "transforms.unwrap.delete.tombstone.handling.mode": "rewrite",
            "transforms.unwrap.add.fields": ",".join(add_fields),
            "errors.tolerance": "all",
            "errors.log.enable": "true",
            "errors.deadletterqueue.topic.name": self.dead_letter_topic.name_ref,
            "errors.deadletterqueue.topic.replication.factor": str(self.dead_letter_topic.replication_factor),
            "errors.deadletterqueue.context.headers.enable": "true",
        }
        transforms, predicates = ["unwrap"], []
        for index, table in enumerate(chosen):
            # Cast works by field name, so each table gets its own, applied to its topic only.
            spec = (
                ",".join(f"{k}:string" for k in table.primary_key)
                if table.key_only
                else cast_spec(table.columns_reaching_kafka(), binlog=engine.is_binlog)
            )
            if not spec:
                continue
            name = f"cast{index}"
            transforms.append(name)
            predicates.append(f"is{index}")
            config[f"transforms.{name}.type"] = "org.apache.kafka.connect.transforms.Cast$Value"
            config[f"transforms.{name}.spec"] = spec
            config[f"transforms.{name}.predicate"] = f"is{index}"
            config[f"predicates.is{index}.type"] = "org.apache.kafka.connect.transforms.predicates.TopicNameMatches"
            config[f"predicates.is{index}.pattern"] = re.escape(table.topic_name)
        config["transforms"] = ",".join(transforms)
        if predicates:
            config["predicates"] = ",".join(predicates)
        return config

    def _describe(self, manifest: Manifest) -> None:
        local = self.pipeline.target == "local"
        manifest.sinks.append(
            Sink(
                name=self.node.id,
                path=self.construct_path,
                connector=self.connector_name,
                source=self.source.node.id,
                dataset=self.dataset.dataset_id,
                holds_pii=self.dataset.holds_pii,
                dead_letter_topic=self.dead_letter_topic.name,
                compaction_log=LOG_TABLE,
                compact_every_minutes=self.compaction_policy.every_minutes,
                recent_window_minutes=self.compaction_policy.window_minutes,
                tables=tuple(
                    SinkTable(
                        source_table=t.captured.name,
                        topic=t.captured.topic_name,
                        table=t.table_id,
                        primary_key=tuple(t.primary_key),
                        state_table=t.state_table_id,
                        columns=tuple(
                            ChangelogColumn(
                                c.name,
                                encoding(c, binlog=t.engine.is_binlog, exact_bignumeric=not local).changelog_type,
                                encoding(c, binlog=t.engine.is_binlog, exact_bignumeric=not local).view_type,
                                c.repeated,
                            )
                            for c in t.columns
                        ),
                        compaction=t.compaction.statements(),
                    )
                    for t in self.tables
                ),
            )
        )
        manifest.worker_secrets.append(WorkerSecret(self.key_file.path, (), self.connector_name, self.key_file.what))


def _account_id(sink_id: str) -> str:
    """A valid service account id (6-30 chars, ``[a-z][-a-z0-9]*[a-z0-9]``) derived from the sink id."""
    base = re.sub(r"[^a-z0-9-]", "-", sink_id.lower()).strip("-") or "sink"
    if not base[0].isalpha():
        base = f"s-{base}"
    account = f"{base}-kcbq"[:30].rstrip("-")
    return account if len(account) >= 6 else f"{account}-sink"
