"""The catalog manifest: owner, description, schema, classification, retention and location of every
dataset, table, view and topic a stack declares, from the construct tree alone. Standard library only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ._core import path_of
from .dataset import Dataset
from .governance import inventory
from .governance.classification import ClassifiedColumn, changelog_columns, highest, info_types, view_columns
from .units import FOREVER, to_millis

if TYPE_CHECKING:
    from .stack import DataPipelineStack

CATALOG_VERSION = 1


def catalog(stack: DataPipelineStack) -> dict[str, Any]:
    """The catalog manifest of ``stack`` (JSON-ready; entries in tree order)."""
    with inventory.snapshot(stack):
        return _catalog(stack)


def _catalog(stack: DataPipelineStack) -> dict[str, Any]:
    topic_entries: list[dict[str, Any]] = []
    table_entries: list[dict[str, Any]] = []  # tables and views
    dataset_columns: dict[int, list[ClassifiedColumn]] = {}  # dataset (by id) -> its tables' and views' columns
    kafka = stack.kafka.bootstrap_servers[0]
    for topic in inventory.topics(stack):
        columns = inventory.topic_columns(topic)
        owner = inventory.topic_owner(topic)
        topic_entries.append(
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
    for sink in inventory.sinks(stack):
        for table in sink.tables:
            columns = changelog_columns(table)
            dataset_columns.setdefault(id(sink.dataset), []).extend(columns)
            table_entries.append(
                _entry(
                    "table",
                    f"{table.dataset.dataset_id}.{table.table_id}",
                    path_of(table.resource),
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
            dataset_columns.setdefault(id(dataset), []).extend(columns)
            upstream = (
                [f"{view.source.dataset.dataset_id}.{view.source.table_id}"]
                if view.source is not None
                else [f"{dataset.dataset_id}.{name}" for name in view.depends_on]
            )
            table_entries.append(
                _entry(
                    "view",
                    f"{dataset.dataset_id}.{view.name}",
                    path_of(view.resource),
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
    dataset_entries = [_dataset_entry(stack, d, dataset_columns.get(id(d), [])) for d in inventory.datasets(stack)]
    entries = topic_entries + dataset_entries + table_entries
    return {"catalog_version": CATALOG_VERSION, "stack": stack.node.id, "entries": entries}


def to_json(stack: DataPipelineStack) -> str:
    return json.dumps(catalog(stack), indent=2, sort_keys=True) + "\n"


def _dataset_entry(stack: DataPipelineStack, dataset: Dataset, columns: Sequence[ClassifiedColumn]) -> dict[str, Any]:
    """``columns``: every column of the dataset's tables and views."""
    owner = inventory.owning_construct(dataset)
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
    level = highest(columns)
    entry["classification"] = level.value if level else None
    entry["unmasked_pii"] = any(c.exposes_pii for c in columns)
    entry["info_types"] = info_types(columns)
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
        "info_types": info_types(columns),
        "unmasked_pii": any(c.exposes_pii for c in columns),
        "schema": [c.as_dict(qualified=extra.get("view_kind") == "custom") for c in columns],
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
