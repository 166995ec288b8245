"""The manifest: one typed, versioned description of what a stack deploys.

Constructs write it (the ``datapipe_manifest`` Terraform output); notebooks, the runtime helpers and
the CLI read it back with :meth:`Manifest.from_dict`. One definition serves both sides, so a field
cannot be written under one name and read under another. Standard library only: reading a manifest
never starts cdktf.

Versions: 1 (unversioned, before 2026-12) and 2 (no compacted state, no column types) are read with
defaults for the fields they lack; a manifest newer than this library is refused with the fix (upgrade
datapipe-cdk).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

VERSION = 3
OUTPUT_NAME = "datapipe_manifest"


class ManifestError(RuntimeError):
    """The manifest is missing or unusable; the message says what to run."""


@dataclass(frozen=True)
class ColumnPolicy:
    """A declared source column: its type, classification and what the connector does to it."""

    name: str
    type: str | None = None
    classification: str | None = None
    info_type: str | None = None
    treatment: str | None = None
    """``masked``, ``hashed`` or ``excluded`` (never leaves the source); None when it flows as written."""
    precision: int | None = None
    scale: int | None = None
    repeated: bool = False


@dataclass(frozen=True)
class SourceTable:
    name: str
    primary_key: tuple[str, ...]
    topic: str
    columns: tuple[ColumnPolicy, ...] = ()
    columns_declared: bool = True
    """False when the table was captured without declaring its columns (opted out of ``columns-declared``)."""

    def policy(self, column: str) -> ColumnPolicy | None:
        return next((c for c in self.columns if c.name == column), None)

    @property
    def excluded(self) -> set[str]:
        """Columns the connector drops (treatment ``excluded``): they never leave the source."""
        return {c.name for c in self.columns if c.treatment == "excluded"}


@dataclass(frozen=True)
class Source:
    name: str
    engine: str
    host: str
    port: int
    database: str
    schema: str | None
    connector: str
    topic_prefix: str
    tables: tuple[SourceTable, ...]
    path: str = ""
    username: str = "debezium"
    heartbeat_table: str | None = None
    """``<database or schema>.<table>`` written by the connector's heartbeat, when the source has one."""
    signal_table: str | None = None
    freshness_seconds: int | None = None
    """The source's freshness objective (its heartbeat table beats at a quarter of it)."""

    @property
    def is_postgres(self) -> bool:
        return self.engine in ("postgres", "postgresql")


@dataclass(frozen=True)
class ChangelogColumn:
    """A data column of a changelog table: how it is stored there and its type in latest-state views."""

    name: str
    changelog_type: str
    view_type: str
    repeated: bool = False


@dataclass(frozen=True)
class SinkTable:
    source_table: str
    topic: str
    table: str
    primary_key: tuple[str, ...]
    state_table: str | None = None
    """The compacted state table (newest row per key); None in manifests before version 3."""
    columns: tuple[ChangelogColumn, ...] = ()
    compaction: tuple[str, ...] = ()
    """The statements that compact it, in order (``datapipe compact`` runs them)."""


@dataclass(frozen=True)
class Sink:
    name: str
    connector: str
    dataset: str
    holds_pii: bool
    tables: tuple[SinkTable, ...]
    path: str = ""
    source: str = ""
    dead_letter_topic: str | None = None
    compaction_log: str | None = None
    compact_every_minutes: int = 60
    recent_window_minutes: int = 360


@dataclass(frozen=True)
class View:
    name: str
    kind: str
    """``latest_state`` (a sink table's current rows) or ``custom`` (a team's SQL)."""
    sink_dataset: str | None = None
    sink_table: str | None = None
    primary_key: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()
    """Columns a latest-state view exposes (every declared column unless chosen); empty when undeclared."""
    depends_on: tuple[str, ...] = ()


@dataclass(frozen=True)
class WarehouseSpec:
    name: str
    dataset: str
    holds_pii: bool
    views: tuple[View, ...]
    path: str = ""
    owners: tuple[str, ...] = ()
    readers: tuple[str, ...] = ()
    freshness_seconds: int | None = None
    """The freshness objective of its latest-state views."""


@dataclass(frozen=True)
class KafkaEndpoint:
    bootstrap_servers: tuple[str, ...]
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None


@dataclass(frozen=True)
class ConnectEndpoint:
    url: str
    basic_auth_username: str | None = None
    secrets_dir: str | None = None


@dataclass(frozen=True)
class BigQueryEndpoint:
    project: str
    location: str = "US"
    endpoint: str | None = None


@dataclass(frozen=True)
class WorkerSecret:
    """A file every Connect worker must hold: ``keys`` read by ``used_by`` through the ``file`` provider."""

    file: str
    keys: tuple[str, ...]
    used_by: str
    """The connector whose config references it."""
    what: str = ""


@dataclass(frozen=True)
class Variable:
    """A Terraform variable the stack declares (set it with ``TF_VAR_<name>``)."""

    name: str
    sensitive: bool
    description: str = ""


@dataclass
class Governance:
    policies: list[str] = field(default_factory=list)
    opt_outs: list[dict[str, str]] = field(default_factory=list)
    temporary_grants: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {"kafka": [], "bigquery": []})


@dataclass
class Manifest:
    """What one stack deploys. Constructs append to the lists at synth; readers get it from JSON."""

    stack: str
    kafka: KafkaEndpoint
    connect: ConnectEndpoint
    bigquery: BigQueryEndpoint
    sources: list[Source] = field(default_factory=list)
    sinks: list[Sink] = field(default_factory=list)
    warehouses: list[WarehouseSpec] = field(default_factory=list)
    governance: Governance = field(default_factory=Governance)
    worker_secrets: list[WorkerSecret] = field(default_factory=list)
    variables: list[Variable] = field(default_factory=list)
    target: str = "production"
    version: int = VERSION
    origin: str = ""
    """Where it was read from (a file path and which part of it); empty when built at synth."""

    @classmethod
    def empty(cls, stack: str, kafka: Any, connect: Any, gcp: Any, *, target: str = "production") -> Manifest:
        """A manifest with the stack's endpoints and nothing deployed yet (constructs add the rest)."""
        return cls(
            stack=stack,
            kafka=KafkaEndpoint(
                bootstrap_servers=tuple(kafka.bootstrap_servers),
                security_protocol=kafka.security_protocol,
                sasl_mechanism=kafka.sasl_mechanism.java_name if kafka.sasl_username else None,
            ),
            connect=ConnectEndpoint(
                url=connect.url, basic_auth_username=connect.basic_auth_username, secrets_dir=connect.secrets_dir
            ),
            bigquery=BigQueryEndpoint(project=gcp.project, location=gcp.location, endpoint=gcp.bigquery_endpoint),
            target=target,
        )

    @property
    def connect_url(self) -> str:
        return self.connect.url

    def source(self, name: str) -> Source:
        for source in self.sources:
            if source.name == name:
                return source
        raise ManifestError(f"stack {self.stack!r} has no source {name!r} (sources: {[s.name for s in self.sources]})")

    def pipes(self) -> list[Pipe]:
        """Every captured table a sink writes (joined by topic), once per latest-state view that exposes
        it, or once with ``view=None`` when no view does."""
        by_topic = {t.topic: (s, t) for s in self.sources for t in s.tables}
        found = []
        for sink in self.sinks:
            for sink_table in sink.tables:
                if sink_table.topic not in by_topic:
                    continue
                source, source_table = by_topic[sink_table.topic]
                views = self._views_of(sink, sink_table) or [(None, None)]
                found += [Pipe(source, source_table, sink, sink_table, w, v) for w, v in views]
        return found

    def _views_of(self, sink: Sink, table: SinkTable) -> list[tuple[WarehouseSpec | None, View | None]]:
        return [
            (warehouse, view)
            for warehouse in self.warehouses
            for view in warehouse.views
            if view.kind == "latest_state" and (view.sink_dataset, view.sink_table) == (sink.dataset, table.table)
        ]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; ``origin`` is where a manifest was read from, so it is not written."""
        data = _plain(self)
        data.pop("origin", None)
        return data

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], origin: str = "<dict>", *, bigquery_endpoint: str | None = None) -> Manifest:
        """Read the output's JSON value; :class:`ManifestError` names the first missing or unresolved field.

        ``bigquery_endpoint``, when given, replaces the manifest's (which is then not read).
        """
        if not isinstance(raw, Mapping):
            raise ManifestError(f"{origin}: the manifest must be a JSON object, got {type(raw).__name__}")
        version = raw.get("version", 1)
        if not isinstance(version, int) or version > VERSION:
            raise ManifestError(
                f"{origin}: manifest version {version!r} is newer than this datapipe-cdk reads ({VERSION}): upgrade datapipe-cdk"
            )
        reader = _Reader(origin)
        kafka = reader.get(raw, "kafka", "manifest")
        connect = reader.get(raw, "connect", "manifest")
        bigquery = reader.get(raw, "bigquery", "manifest")
        governance = raw.get("governance") or {}
        return cls(
            stack=reader.get(raw, "stack", "manifest"),
            kafka=KafkaEndpoint(
                bootstrap_servers=tuple(reader.get(kafka, "bootstrap_servers", "kafka")),
                security_protocol=str(kafka.get("security_protocol") or "PLAINTEXT"),
                sasl_mechanism=kafka.get("sasl_mechanism"),
            ),
            connect=ConnectEndpoint(
                url=reader.get(connect, "url", "connect"),
                basic_auth_username=connect.get("basic_auth_username"),
                secrets_dir=connect.get("secrets_dir"),
            ),
            bigquery=BigQueryEndpoint(
                project=reader.get(bigquery, "project", "bigquery"),
                location=str(bigquery.get("location") or "US"),
                endpoint=bigquery_endpoint or reader.optional(bigquery, "endpoint", "bigquery"),
            ),
            sources=[reader.source(s, f"sources[{i}]") for i, s in enumerate(raw.get("sources") or [])],
            sinks=[reader.sink(s, f"sinks[{i}]") for i, s in enumerate(raw.get("sinks") or [])],
            warehouses=[reader.warehouse(w, f"warehouses[{i}]") for i, w in enumerate(raw.get("warehouses") or [])],
            governance=Governance(
                policies=list(governance.get("policies") or []),
                opt_outs=list(governance.get("opt_outs") or []),
                temporary_grants={
                    "kafka": list((governance.get("temporary_grants") or {}).get("kafka") or []),
                    "bigquery": list((governance.get("temporary_grants") or {}).get("bigquery") or []),
                },
            ),
            worker_secrets=[
                WorkerSecret(s["file"], tuple(s.get("keys") or ()), s.get("used_by", ""), s.get("what", ""))
                for s in raw.get("worker_secrets") or []
            ],
            variables=[
                Variable(v["name"], bool(v.get("sensitive")), v.get("description", "")) for v in raw.get("variables") or []
            ],
            target=str(raw.get("target") or "production"),
            version=VERSION,
            origin=origin,
        )


@dataclass(frozen=True)
class Pipe:
    """One table's path: source table → topic → changelog table → latest-state view (if exposed)."""

    source: Source
    source_table: SourceTable
    sink: Sink
    sink_table: SinkTable
    warehouse: WarehouseSpec | None
    view: View | None

    @property
    def label(self) -> str:
        """``dataset.view`` of the latest-state view, else ``dataset.table`` of the changelog table."""
        if self.warehouse is not None and self.view is not None:
            return f"{self.warehouse.dataset}.{self.view.name}"
        return self.changelog_label

    @property
    def changelog_label(self) -> str:
        return f"{self.sink.dataset}.{self.sink_table.table}"

    @property
    def source_label(self) -> str:
        return f"{self.source.name}.{self.source_table.name}"


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class _Reader:
    """Field access that names the first missing or unresolved field."""

    def __init__(self, origin: str) -> None:
        self.origin = origin

    def literal(self, value: Any, where: str) -> Any:
        if isinstance(value, str) and "${" in value:
            raise ManifestError(
                f"{self.origin}: manifest field {where} is still a Terraform expression ({value!r}); deploy the stack "
                "(datapipe deploy / tofu apply) and read it from the state"
            )
        return value

    def get(self, raw: Mapping[str, Any], key: str, where: str) -> Any:
        if not isinstance(raw, Mapping) or key not in raw:
            raise ManifestError(f"{self.origin}: manifest has no {where}.{key}; re-synthesize with the current datapipe-cdk")
        return self.literal(raw[key], f"{where}.{key}")

    def optional(self, raw: Mapping[str, Any], key: str, where: str) -> Any:
        return self.literal(raw.get(key), f"{where}.{key}")

    def strings(self, values: Sequence[Any] | None) -> tuple[str, ...]:
        return tuple(str(v) for v in values or ())

    def source(self, raw: Mapping[str, Any], where: str) -> Source:
        tables = tuple(
            SourceTable(
                name=self.get(t, "name", f"{where}.tables"),
                primary_key=self.strings(self.get(t, "primary_key", f"{where}.tables")),
                topic=self.get(t, "topic", f"{where}.tables"),
                columns=tuple(
                    ColumnPolicy(
                        c["name"],
                        c.get("type"),
                        c.get("classification"),
                        c.get("info_type"),
                        c.get("treatment"),
                        c.get("precision"),
                        c.get("scale"),
                        bool(c.get("repeated")),
                    )
                    for c in t.get("columns") or []
                ),
                columns_declared=bool(t.get("columns_declared", bool(t.get("columns")))),
            )
            for t in self.get(raw, "tables", where)
        )
        return Source(
            name=self.get(raw, "name", where),
            engine=str(self.get(raw, "engine", where)).lower(),
            host=self.get(raw, "host", where),
            port=int(self.get(raw, "port", where)),
            database=self.get(raw, "database", where),
            schema=self.optional(raw, "schema", where),
            connector=self.get(raw, "connector", where),
            topic_prefix=self.get(raw, "topic_prefix", where),
            tables=tables,
            path=str(raw.get("path") or ""),
            username=str(raw.get("username") or "debezium"),
            heartbeat_table=raw.get("heartbeat_table"),
            signal_table=raw.get("signal_table"),
            freshness_seconds=raw.get("freshness_seconds"),
        )

    def sink(self, raw: Mapping[str, Any], where: str) -> Sink:
        return Sink(
            name=self.get(raw, "name", where),
            connector=self.get(raw, "connector", where),
            dataset=self.get(raw, "dataset", where),
            holds_pii=bool(raw.get("holds_pii", True)),
            tables=tuple(
                SinkTable(
                    source_table=self.get(t, "source_table", f"{where}.tables"),
                    topic=self.get(t, "topic", f"{where}.tables"),
                    table=self.get(t, "table", f"{where}.tables"),
                    primary_key=self.strings(t.get("primary_key")),
                    state_table=t.get("state_table"),
                    columns=tuple(
                        ChangelogColumn(c["name"], c["changelog_type"], c["view_type"], bool(c.get("repeated")))
                        for c in t.get("columns") or []
                    ),
                    compaction=self.strings(t.get("compaction")),
                )
                for t in self.get(raw, "tables", where)
            ),
            path=str(raw.get("path") or ""),
            source=str(raw.get("source") or ""),
            dead_letter_topic=raw.get("dead_letter_topic"),
            compaction_log=raw.get("compaction_log"),
            compact_every_minutes=int(raw.get("compact_every_minutes") or 60),
            recent_window_minutes=int(raw.get("recent_window_minutes") or 360),
        )

    def warehouse(self, raw: Mapping[str, Any], where: str) -> WarehouseSpec:
        return WarehouseSpec(
            name=self.get(raw, "name", where),
            dataset=self.get(raw, "dataset", where),
            holds_pii=bool(raw.get("holds_pii", True)),
            views=tuple(
                View(
                    name=self.get(v, "name", f"{where}.views"),
                    kind=str(v.get("kind", "custom")),
                    sink_dataset=self.optional(v, "sink_dataset", f"{where}.views"),
                    sink_table=self.optional(v, "sink_table", f"{where}.views"),
                    primary_key=self.strings(v.get("primary_key")),
                    columns=self.strings(v.get("columns")),
                    depends_on=self.strings(v.get("depends_on")),
                )
                for v in raw.get("views") or []
            ),
            path=str(raw.get("path") or ""),
            owners=self.strings(raw.get("owners")),
            readers=self.strings(raw.get("readers")),
            freshness_seconds=raw.get("freshness_seconds"),
        )
