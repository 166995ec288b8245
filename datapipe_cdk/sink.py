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
from ._core import PipelineConstruct, pipeline_of
from .acl import AclOperation, KafkaAcl, ResourceType
from .dataset import Dataset
from .errors import DatapipeError
from .manifest import Manifest, Sink, SinkTable, WorkerSecret
from .principal import Principal
from .providers.google import BigqueryTable, ProjectIamMember, ServiceAccount
from .providers.kafka_connect import Connector
from .schema import CapturedTable, Column, ColumnType
from .source import CdcSource, Engine
from .topic import StreamingTopic
from .worker_secrets import SecretFile

KCBQ_CONNECTOR = "com.wepay.kafka.connect.bigquery.BigQuerySinkConnector"
KAFKA_FIELD = "_kafka"
_API_TYPES = {
    ColumnType.STRING: "STRING",
    ColumnType.INT64: "INTEGER",
    ColumnType.FLOAT64: "FLOAT",
    ColumnType.NUMERIC: "NUMERIC",
    ColumnType.BOOL: "BOOLEAN",
    ColumnType.BYTES: "BYTES",
    ColumnType.DATE: "DATE",
    ColumnType.TIMESTAMP: "TIMESTAMP",
}


def changelog_table_id(topic: str) -> str:
    """The table KCBQ writes a topic to with ``sanitizeTopics=true``: ``[^A-Za-z0-9_]`` -> ``_``."""
    table = check.word(topic)
    return table if re.match(r"[A-Za-z_]", table) else f"_{table}"


def metadata_columns(engine: Engine) -> list[tuple[str, str]]:
    """Columns ExtractNewRecordState adds (``__op``, ``__deleted``, source time and position)."""
    position = [(f"__{name}", "STRING" if name == "file" else "INTEGER") for name in engine.position_fields]
    return [("__op", "STRING"), ("__deleted", "STRING"), ("__source_ts_ms", "INTEGER"), *position]


@dataclass(frozen=True)
class ChangelogTable:
    """One append-only changelog table: every change event of one source table, in arrival order."""

    sink: BigQuerySink
    captured: CapturedTable
    engine: Engine
    table_id: str
    resource: BigqueryTable

    @property
    def primary_key(self) -> tuple[str, ...]:
        return self.captured.primary_key

    @property
    def dataset(self) -> Dataset:
        return self.sink.dataset

    @property
    def columns(self) -> list[Column]:
        return self.captured.columns_reaching_kafka()

    @property
    def metadata_columns(self) -> list[str]:
        return [name for name, _ in metadata_columns(self.engine)] + [KAFKA_FIELD]

    @property
    def order_columns(self) -> list[str]:
        """Newest-first order of events of one key: source position, then Kafka offset."""
        return [f"__{name}" for name in self.engine.position_fields] + [f"{KAFKA_FIELD}.offset"]


class BigQuerySink(PipelineConstruct):
    """A KCBQ sink connector writing one append-only changelog table per captured table into its own dataset.

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
    ) -> None:
        path = check.child_path(scope, sink_id, "BigQuerySink")
        stack = pipeline_of(scope, path)
        source = check.instance(path, "source", source, CdcSource)
        chosen = [source.captured[name] for name in self._chosen(path, source, tables)]
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
        self._tables: dict[str, ChangelogTable] = {}
        for captured in chosen:
            table_id = changelog_table_id(captured.topic_name)
            resource = BigqueryTable(
                self,
                f"changelog-{captured.name}",
                dataset_id=self.dataset.dataset_id_ref,
                table_id=table_id,
                description=f"Changelog of {captured.qualified_name}: one row per change event, appended by {sink_id}",
                schema=self._schema(captured, source.engine),
                time_partitioning={"type": "DAY", "expiration_ms": self.dataset.partition_expiration_ms}
                if self.dataset.partition_expiration_ms
                else {"type": "DAY"},
                clustering=list(captured.primary_key[:4]) or None,
                deletion_protection=deletion_protection,
                ignore_changes=["schema"],
            )
            self._tables[captured.name] = ChangelogTable(self, captured, source.engine, table_id, resource)
        self.dead_letter_topic = StreamingTopic(
            self, "dead-letter", name=f"dlq.{sink_id}", partitions=1, retention=timedelta(days=14)
        )
        self.key_file = SecretFile(
            stack.connect.secrets_dir, f"{sink_id}-gcp-key.json", sink_id, f"Google service account key JSON of {path}"
        )
        acls = self._grant_connect(chosen)
        self.service_account: ServiceAccount | None = None
        identity = self._define_identity(stack) if stack.gcp.manage_iam else []
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
        return names

    @staticmethod
    def _schema(captured: CapturedTable, engine: Engine) -> str:
        fields: list[dict[str, Any]] = [
            {
                "name": c.name,
                "type": _API_TYPES[c.type],
                "mode": "NULLABLE",
                **({"description": c.description} if c.description else {}),
            }
            for c in captured.columns_reaching_kafka()
        ]
        fields += [{"name": name, "type": kind, "mode": "NULLABLE"} for name, kind in metadata_columns(engine)]
        fields.append(
            {
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
        )
        return json.dumps(fields, separators=(",", ":"))

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
        return {
            "connector.class": KCBQ_CONNECTOR,
            "tasks.max": "1",
            "topics": ",".join(t.name_ref for t in topics),
            "project": project,
            "defaultDataset": self.dataset.dataset_id_ref,
            "keySource": "FILE",
            "keyfile": self.key_file.path,
            # Table = sanitized topic name: the same in every KCBQ line (WePay 2.0 has no topic2TableMap).
            "sanitizeTopics": "true",
            "autoCreateTables": "false",
            "schemaRetriever": "com.wepay.kafka.connect.bigquery.retrieve.IdentitySchemaRetriever",
            "allowNewBigQueryFields": "true",
            "allowBigQueryRequiredFieldRelaxation": "true",
            "bigQueryPartitionDecorator": "false",
            "kafkaDataFieldName": KAFKA_FIELD,
            "decimalHandlingMode": "NUMERIC",
            "key.converter": "org.apache.kafka.connect.json.JsonConverter",
            "key.converter.schemas.enable": "true",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter.schemas.enable": "true",
            "transforms": "unwrap",
            "transforms.unwrap.type": "io.debezium.transforms.ExtractNewRecordState",
            "transforms.unwrap.delete.tombstone.handling.mode": "rewrite",
            "transforms.unwrap.add.fields": ",".join(add_fields),
            "errors.tolerance": "all",
            "errors.log.enable": "true",
            "errors.deadletterqueue.topic.name": self.dead_letter_topic.name_ref,
            "errors.deadletterqueue.topic.replication.factor": str(self.dead_letter_topic.replication_factor),
            "errors.deadletterqueue.context.headers.enable": "true",
        }

    def _describe(self, manifest: Manifest) -> None:
        manifest.sinks.append(
            Sink(
                name=self.node.id,
                path=self.construct_path,
                connector=self.connector_name,
                source=self.source.node.id,
                dataset=self.dataset.dataset_id,
                holds_pii=self.dataset.holds_pii,
                dead_letter_topic=self.dead_letter_topic.name,
                tables=tuple(
                    SinkTable(
                        source_table=t.captured.name,
                        topic=t.captured.topic_name,
                        table=t.table_id,
                        primary_key=tuple(t.primary_key),
                        order_by=tuple(t.order_columns),
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
