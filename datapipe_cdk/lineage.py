"""Lineage from the construct tree alone: source table -> topic -> changelog table -> views.

``LineageGraph.of(stack)`` needs no deployment. It renders as JSON, OpenLineage run events
(one per job: each connector and each view, with column lineage where the mapping is known),
Mermaid and Graphviz DOT. Standard library only.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ._core import path_of
from .governance import inventory
from .governance.classification import (
    ClassifiedColumn,
    captured_columns,
    changelog_columns,
    highest,
    source_columns,
    view_columns,
)
from .source import CdcSource, Engine

if TYPE_CHECKING:
    from .stack import DataPipelineStack

PRODUCER = "https://github.com/datapipe-cdk/datapipe-cdk"
RUN_EVENT_SCHEMA = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
_FACETS = "https://openlineage.io/spec/facets"
_SCHEMA_URLS = {
    "schema": f"{_FACETS}/1-1-1/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet",
    "columnLineage": f"{_FACETS}/1-2-0/ColumnLineageDatasetFacet.json#/$defs/ColumnLineageDatasetFacet",
    "ownership": f"{_FACETS}/1-0-1/OwnershipDatasetFacet.json#/$defs/OwnershipDatasetFacet",
    "documentation": f"{_FACETS}/1-0-1/DocumentationDatasetFacet.json#/$defs/DocumentationDatasetFacet",
    "jobType": f"{_FACETS}/2-0-3/JobTypeJobFacet.json#/$defs/JobTypeJobFacet",
    "sql": f"{_FACETS}/1-1-0/SQLJobFacet.json#/$defs/SQLJobFacet",
    "datapipe_classification": f"{PRODUCER}/blob/main/schemas/classification-facet.json",
}
_UUID_NAMESPACE = uuid.UUID("6f1c3d9a-55a8-4b1e-9a59-2f4d0c1e7a11")


@dataclass(frozen=True)
class LineageNode:
    """A dataset in the OpenLineage sense: a source table, a topic, a changelog table or a view."""

    id: str
    kind: str
    namespace: str
    name: str
    path: str
    columns: tuple[ClassifiedColumn, ...] = ()
    owners: tuple[str, ...] = ()
    description: str | None = None

    @property
    def classification(self) -> str | None:
        level = highest(self.columns)
        return level.value if level else None

    @property
    def carries_unmasked_pii(self) -> bool:
        return any(c.exposes_pii for c in self.columns)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
            "path": self.path,
            "classification": self.classification,
            "owners": list(self.owners),
            "columns": [c.as_dict() for c in self.columns],
        }


@dataclass(frozen=True)
class ColumnEdge:
    source: str
    target: str
    transformation: str
    """``identity``, ``masked`` or ``hashed``."""


@dataclass(frozen=True)
class LineageEdge:
    """Data flows from ``source`` to ``target`` through ``job`` (a connector or a view)."""

    source: str
    target: str
    job: str
    job_kind: str
    columns: tuple[ColumnEdge, ...] | None = None
    """Column mapping when known; None for custom SQL (table-level lineage only)."""
    sql: str | None = None


@dataclass
class LineageGraph:
    stack: str
    nodes: dict[str, LineageNode] = field(default_factory=dict)
    edges: list[LineageEdge] = field(default_factory=list)

    @classmethod
    def of(cls, stack: DataPipelineStack) -> LineageGraph:
        """The lineage of everything ``stack`` declares."""
        with inventory.snapshot(stack):
            return cls._build(stack)

    @classmethod
    def _build(cls, stack: DataPipelineStack) -> LineageGraph:
        graph = cls(stack.node.id)
        kafka = f"kafka://{stack.kafka.bootstrap_servers[0]}"
        project = stack.gcp.project
        for source in inventory.sources(stack):
            for captured in source.tables:
                columns = captured_columns(captured, path_of(source))
                table = graph._add(
                    LineageNode(
                        f"source:{source.node.id}/{captured.qualified_name}",
                        "source_table",
                        _source_namespace(source),
                        _source_name(source, captured.qualified_name),
                        path_of(source),
                        tuple(source_columns(captured, path_of(source))),
                        (captured.table.owner,) if captured.table.owner else (),
                        captured.table.description,
                    )
                )
                topic = source.topic(captured.name)
                owner = inventory.topic_owner(topic)
                target = graph._add(
                    LineageNode(
                        f"topic:{topic.name}",
                        "topic",
                        kafka,
                        topic.name,
                        path_of(topic),
                        tuple(columns),
                        (owner,) if owner else (),
                    )
                )
                graph._connect(table, target, source.connector_name, "SOURCE_CONNECTOR", _mapping(columns, transformed=True))
        for sink in inventory.sinks(stack):
            owners = tuple(inventory.dataset_owners(sink.dataset))
            for changelog in sink.tables:
                columns = changelog_columns(changelog)
                target = graph._add(
                    LineageNode(
                        f"table:{changelog.dataset.dataset_id}.{changelog.table_id}",
                        "changelog_table",
                        "bigquery",
                        f"{project}.{changelog.dataset.dataset_id}.{changelog.table_id}",
                        path_of(changelog.resource),
                        tuple(columns),
                        owners,
                    )
                )
                graph._connect(
                    graph.nodes[f"topic:{changelog.captured.topic_name}"],
                    target,
                    sink.connector_name,
                    "SINK_CONNECTOR",
                    _mapping(columns, transformed=False),
                )
        for warehouse in inventory.warehouses(stack):
            owners = tuple(inventory.dataset_owners(warehouse.dataset))
            dataset = warehouse.dataset.dataset_id
            for view in warehouse.views.values():
                columns = view_columns(warehouse, view)
                target = graph._add(
                    LineageNode(
                        f"view:{dataset}.{view.name}",
                        "view",
                        "bigquery",
                        f"{project}.{dataset}.{view.name}",
                        path_of(view.resource),
                        tuple(columns),
                        owners,
                    )
                )
                job = f"{warehouse.node.id}.{view.name}"
                if view.source is not None:
                    upstream = graph.nodes[f"table:{view.source.dataset.dataset_id}.{view.source.table_id}"]
                    graph._connect(upstream, target, job, "VIEW", _mapping(columns, transformed=False), view.sql)
                for name in view.depends_on:
                    graph._connect(graph.nodes[f"view:{dataset}.{name}"], target, job, "VIEW", None, view.sql)
        return graph

    def _add(self, node: LineageNode) -> LineageNode:
        return self.nodes.setdefault(node.id, node)

    def _connect(
        self,
        source: LineageNode,
        target: LineageNode,
        job: str,
        kind: str,
        columns: tuple[ColumnEdge, ...] | None,
        sql: str | None = None,
    ) -> None:
        self.edges.append(LineageEdge(source.id, target.id, job, kind, columns, sql))

    @property
    def edge_pairs(self) -> list[tuple[str, str]]:
        return [(e.source, e.target) for e in self.edges]

    def as_dict(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "nodes": [n.as_dict() for n in self.nodes.values()],
            "edges": [
                {
                    "from": e.source,
                    "to": e.target,
                    "job": e.job,
                    "job_kind": e.job_kind,
                    "columns": [{"from": c.source, "to": c.target, "transformation": c.transformation} for c in e.columns]
                    if e.columns is not None
                    else None,
                }
                for e in self.edges
            ],
        }

    def openlineage_events(self, event_time: datetime | None = None) -> list[dict[str, Any]]:
        """One OpenLineage ``COMPLETE`` run event per job, with schema, ownership and column lineage facets."""
        moment = (event_time or datetime.now(UTC)).astimezone(UTC).isoformat().replace("+00:00", "Z")
        jobs: dict[str, list[LineageEdge]] = {}
        for edge in self.edges:
            jobs.setdefault(edge.job, []).append(edge)
        events = []
        for job, edges in jobs.items():
            inputs = list(dict.fromkeys(e.source for e in edges))
            outputs = list(dict.fromkeys(e.target for e in edges))
            kind = edges[0].job_kind
            processing = "BATCH" if kind == "VIEW" else "STREAMING"
            job_facets: dict[str, Any] = {
                "jobType": _facet("jobType", processingType=processing, integration="DATAPIPE_CDK", jobType=kind)
            }
            if edges[0].sql:
                job_facets["sql"] = _facet("sql", query=edges[0].sql)
            events.append(
                {
                    "eventType": "COMPLETE",
                    "eventTime": moment,
                    "producer": PRODUCER,
                    "schemaURL": RUN_EVENT_SCHEMA,
                    "run": {"runId": str(uuid.uuid5(_UUID_NAMESPACE, f"{self.stack}/{job}"))},
                    "job": {"namespace": f"datapipe://{self.stack}", "name": job, "facets": job_facets},
                    "inputs": [self._dataset(self.nodes[i], []) for i in inputs],
                    "outputs": [self._dataset(self.nodes[o], [e for e in edges if e.target == o]) for o in outputs],
                }
            )
        return events

    def _dataset(self, node: LineageNode, incoming: Sequence[LineageEdge]) -> dict[str, Any]:
        facets: dict[str, Any] = {
            "schema": _facet("schema", fields=[{"name": c.name, "type": c.type.value} for c in node.columns]),
            "datapipe_classification": _facet(
                "datapipe_classification", classification=node.classification, fields={c.name: c.as_dict() for c in node.columns}
            ),
        }
        if node.owners:
            facets["ownership"] = _facet("ownership", owners=[{"name": o, "type": "OWNER"} for o in node.owners])
        if node.description:
            facets["documentation"] = _facet("documentation", description=node.description)
        lineage: dict[str, Any] = {}
        for edge in incoming:
            upstream = self.nodes[edge.source]
            for column in edge.columns or ():
                transformation = (
                    {"type": "DIRECT", "subtype": "IDENTITY"}
                    if column.transformation == "identity"
                    else {"type": "DIRECT", "subtype": "TRANSFORMATION", "description": column.transformation, "masking": True}
                )
                lineage.setdefault(column.target, {"inputFields": []})["inputFields"].append(
                    {
                        "namespace": upstream.namespace,
                        "name": upstream.name,
                        "field": column.source,
                        "transformations": [transformation],
                    }
                )
        if lineage:
            facets["columnLineage"] = _facet("columnLineage", fields=lineage)
        return {"namespace": node.namespace, "name": node.name, "facets": facets}

    def mermaid(self) -> str:
        """A Mermaid flowchart; nodes carrying unmasked PII are styled ``pii``."""
        ids = {node_id: f"n{i}" for i, node_id in enumerate(self.nodes)}
        lines = ["flowchart LR", "  classDef pii fill:#fdd,stroke:#c00", "  classDef masked fill:#ffd,stroke:#b90"]
        for node_id, node in self.nodes.items():
            label = _label(node).replace('"', "'")
            lines.append(f'  {ids[node_id]}{_MERMAID_SHAPES[node.kind][0]}"{label}"{_MERMAID_SHAPES[node.kind][1]}')
        for edge in self.edges:
            lines.append(f"  {ids[edge.source]} -->|{edge.job}| {ids[edge.target]}")
        for node_id, node in self.nodes.items():
            style = _style(node)
            if style:
                lines.append(f"  class {ids[node_id]} {style}")
        return "\n".join(lines) + "\n"

    def dot(self) -> str:
        """A Graphviz digraph: a shape per kind of node, unmasked PII in red, masked PII in yellow."""
        lines = [
            f'digraph "{self.stack}" {{',
            "  rankdir=LR;",
            '  node [fontname="Helvetica", fontsize=10];',
            '  edge [fontname="Helvetica", fontsize=9];',
        ]
        for node_id, node in self.nodes.items():
            color = {"pii": "#ffdddd", "masked": "#ffffdd"}.get(_style(node), "#ffffff")
            label = _label(node).replace('"', '\\"').replace("<br/>", "\\n")
            lines.append(f'  "{node_id}" [label="{label}", shape={_DOT_SHAPES[node.kind]}, style=filled, fillcolor="{color}"];')
        for edge in self.edges:
            lines.append(f'  "{edge.source}" -> "{edge.target}" [label="{edge.job}"];')
        lines.append("}")
        return "\n".join(lines) + "\n"

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, sort_keys=True) + "\n"


_MERMAID_SHAPES = {"source_table": ("[(", ")]"), "topic": ("[[", "]]"), "changelog_table": ("[", "]"), "view": ("(", ")")}
_DOT_SHAPES = {"source_table": "cylinder", "topic": "cds", "changelog_table": "box", "view": "ellipse"}


def _label(node: LineageNode) -> str:
    kind = node.kind.replace("_", " ")
    classification = f"<br/>{node.classification}" if node.classification else ""
    return f"{kind}<br/>{node.name}{classification}"


def _style(node: LineageNode) -> str:
    if node.carries_unmasked_pii:
        return "pii"
    return "masked" if any(c.is_pii for c in node.columns) else ""


def _mapping(columns: Sequence[ClassifiedColumn], *, transformed: bool) -> tuple[ColumnEdge, ...]:
    """Same-name column edges; the source connector's edges carry the treatment it applies."""
    return tuple(
        ColumnEdge(c.name, c.name, c.treatment.value if transformed and c.treatment is not None else "identity") for c in columns
    )


def _facet(kind: str, **content: Any) -> dict[str, Any]:
    return {"_producer": PRODUCER, "_schemaURL": _SCHEMA_URLS[kind], **content}


def _source_namespace(source: CdcSource) -> str:
    scheme = "postgres" if source.engine is Engine.POSTGRESQL else "mysql"
    return f"{scheme}://{source.host}:{source.port}"


def _source_name(source: CdcSource, qualified: str) -> str:
    return f"{source.database}.{qualified}" if source.engine is Engine.POSTGRESQL else qualified
