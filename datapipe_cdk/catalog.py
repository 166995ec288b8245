"""The catalog manifest: owner, description, schema, classification, retention and location of every
dataset, table, view and topic a stack declares, from the construct tree alone. Standard library only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ._validate import path_of
from .dataset import Dataset
from .governance import inventory
from .governance.classification import ClassifiedColumn, changelog_columns, highest, view_columns
from .units import FOREVER, to_millis

if TYPE_CHECKING:
    from .stack import DataPipelineStack

CATALOG_VERSION = 1


def catalog(stack: DataPipelineStack) -> dict[str, Any]:
    """The catalog manifest of ``stack`` (JSON-ready; entries in tree order)."""
    with inventory.snapshot(stack):
        return _catalog(stack)


def _catalog(stack: DataPipelineStack) -> dict[str, Any]:
    entries: list[dict[str, Any]] = []
    kafka = stack.kafka.bootstrap_servers[0]
    for topic in inventory.topics(stack):
        columns = inventory.topic_columns(topic)
        owner = inventory.topic_owner(topic)
        entries.append(
            _entry(
                "topic",
                topic.name,
                path_of(topic),
                f"kafka://{kafka}/{topic.name}",
                [owner] if owner else [],
                None,
                columns,
                _retention(topic.retention, "retention.ms", broker_default=True),
                partitions=topic.partitions,
                cleanup_policy=topic.cleanup_policy.value,
            )
        )
    for dataset in inventory.datasets(stack):
        entries.append(_dataset_entry(stack, dataset))
    for sink in inventory.sinks(stack):
        for table in sink.tables:
            columns = changelog_columns(table)
            entries.append(
                _entry(
                    "table",
                    f"{table.dataset.dataset_id}.{table.table_id}",
                    f"{path_of(sink)}/changelog-{table.captured.name}",
                    _bigquery(stack, table.dataset.dataset_id, table.table_id),
                    inventory.dataset_owners(table.dataset),
                    f"Changelog of {table.captured.qualified_name}: one row per change event",
                    columns,
                    _retention(table.dataset.retention, "time_partitioning.expiration_ms"),
                    dataset=table.dataset.dataset_id,
                    primary_key=list(table.primary_key),
                    upstream=table.captured.topic_name,
                )
            )
    for warehouse in inventory.warehouses(stack):
        dataset = warehouse.dataset
        for view in warehouse.views.values():
            columns = view_columns(warehouse, view)
            upstream = (
                [f"{view.source.dataset.dataset_id}.{view.source.table_id}"]
                if view.source is not None
                else [f"{dataset.dataset_id}.{name}" for name in view.depends_on]
            )
            entries.append(
                _entry(
                    "view",
                    f"{dataset.dataset_id}.{view.name}",
                    f"{path_of(warehouse)}/view-{view.name}",
                    _bigquery(stack, dataset.dataset_id, view.name),
                    inventory.dataset_owners(dataset),
                    f"Latest state of {view.source.captured.qualified_name}"
                    if view.source is not None
                    else "Team view (custom SQL)",
                    columns,
                    {"setting": None, "ms": None, "days": None, "text": "not applicable: a view stores nothing"},
                    dataset=dataset.dataset_id,
                    view_kind=view.kind,
                    upstream=upstream,
                    column_lineage="known" if view.source is not None else "upper bound (custom SQL)",
                )
            )
    return {"catalog_version": CATALOG_VERSION, "stack": stack.node.id, "entries": entries}


def to_json(stack: DataPipelineStack) -> str:
    return json.dumps(catalog(stack), indent=2, sort_keys=True) + "\n"


def _dataset_entry(stack: DataPipelineStack, dataset: Dataset) -> dict[str, Any]:
    owner = inventory.owning_construct(dataset)
    tables: list[ClassifiedColumn] = []
    for sink in inventory.sinks(stack):
        if sink.dataset is dataset:
            tables += [c for t in sink.tables for c in changelog_columns(t)]
    for warehouse in inventory.warehouses(stack):
        if warehouse.dataset is dataset:
            tables += [c for v in warehouse.views.values() for c in view_columns(warehouse, v)]
    entry = _entry(
        "dataset",
        dataset.dataset_id,
        path_of(owner),
        _bigquery(stack, dataset.dataset_id),
        inventory.dataset_owners(dataset),
        dataset.description,
        [],
        _retention(dataset.retention, "default_partition_expiration_ms"),
        holds_pii=dataset.holds_pii,
        readers=[str(p) for p in dataset.readers],
        region=stack.gcp.location,
    )
    level = highest(tables)
    entry["classification"] = level.value if level else None
    entry["unmasked_pii"] = any(c.exposes_pii for c in tables)
    entry["info_types"] = sorted({c.info_type.value for c in tables if c.info_type is not None})
    return entry


def _entry(
    kind: str,
    name: str,
    path: str,
    location: str,
    owners: Sequence[str],
    description: str | None,
    columns: Sequence[ClassifiedColumn],
    retention: dict[str, Any],
    **extra: Any,
) -> dict[str, Any]:
    level = highest(columns)
    return {
        "kind": kind,
        "name": name,
        "path": path,
        "location": location,
        "owners": list(owners),
        "description": description,
        "classification": level.value if level else None,
        "info_types": sorted({c.info_type.value for c in columns if c.info_type is not None}),
        "unmasked_pii": any(c.exposes_pii for c in columns),
        "schema": [
            {
                "name": c.qualified if extra.get("view_kind") == "custom" else c.name,
                "type": c.type.value,
                "classification": c.classification.value if c.classification else None,
                "info_type": c.info_type.value if c.info_type else None,
                "treatment": c.treatment.value if c.treatment else None,
            }
            for c in columns
        ],
        "retention": retention,
        **extra,
    }


def _retention(value: timedelta | None, setting: str, *, broker_default: bool = False) -> dict[str, Any]:
    if value is None:
        return {"setting": setting, "ms": None, "days": None, "text": "broker default" if broker_default else "forever"}
    if value == FOREVER:
        return {"setting": setting, "ms": -1, "days": None, "text": "forever"}
    return {
        "setting": setting,
        "ms": to_millis(value),
        "days": round(value / timedelta(days=1), 3),
        "text": f"{value.days} days" if value.days else str(value),
    }


def _bigquery(stack: DataPipelineStack, dataset: str, table: str | None = None) -> str:
    location = f"bigquery://{stack.gcp.project}/{dataset}"
    return f"{location}/{table}" if table else location
