"""Rows the probes write into a source table, and how to see them in the warehouse.

A probe row is an ordinary row of a captured table: required columns get harmless fillers tagged
``lp<hex>`` (never anything that looks like PII), the primary key is the database's own or a fresh
value, and one unclassified text column (the *marker column*) carries a unique tag per update so an
update is recognisable in Kafka, in the changelog and in the latest-state view.

Writing them needs permission (``writes.require_probe_writes``): by default only on the local stack,
elsewhere only with ``write_probe_rows=True``. :class:`ProbeRows` checks it before it reads a column.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from datapipe_cdk.manifest import Manifest, Pipe
from datapipe_cdk.runtime.source import SourceColumn, SourceDatabase, SourceError, filler, new_key
from datapipe_cdk.runtime.warehouse import WarehouseClient, array
from datapipe_cdk.runtime.writes import ReadOnlyError, require_probe_writes


def _named(pipe: Pipe, table: str) -> bool:
    return table in (pipe.source_table.name, pipe.source_label, pipe.label, pipe.changelog_label)


def choose_pipe(manifest: Manifest, table: str | None = None, *, for_markers: bool = True) -> Pipe:
    """The pipe to measure: ``table`` (source table, ``source.table``, the view's ``dataset.view`` or the
    changelog's ``dataset.table``), else the first one that fits. Markers need a latest-state view and a
    one-column primary key; reading what already flowed (``for_markers=False``) needs neither, but prefers
    a pipe that has them."""
    pipes = [p for p in manifest.pipes() if table is None or _named(p, table)]
    markable = [p for p in pipes if p.view is not None and len(p.source_table.primary_key) == 1]
    candidates = markable if for_markers else markable + [p for p in pipes if p not in markable]
    if not candidates:
        wanted = f"table {table!r}" if table else "any table"
        if not for_markers:
            raise SourceError(f"stack {manifest.stack!r}: no pipe (source table written by a sink) for {wanted}")
        raise SourceError(
            f"stack {manifest.stack!r}: no pipe for {wanted} that has a latest-state view and a one-column primary "
            "key; expose the sink's table in a MicroWarehouse (warehouse.expose(sink.table(...))) and redeploy"
        )
    return candidates[0]


def tag() -> str:
    """A short unique tag (``lp`` + 8 hex digits) for fillers and marker values."""
    return "lp" + secrets.token_hex(4)


def _marker_column(pipe: Pipe, columns: list[SourceColumn]) -> str | None:
    """First non-key, unclassified text column long enough for a tag, or None (then no updates)."""
    key = set(pipe.source_table.primary_key)
    for column in columns:
        policy = pipe.source_table.policy(column.name)
        classified = policy is not None and (policy.classification == "PII" or bool(policy.treatment))
        long_enough = (column.max_length or 99) >= 10
        if column.is_text and column.name not in key and not classified and long_enough and not column.generated:
            return column.name
    return None


class ProbeRows:
    """Writes probe rows into one pipe's source table.

    Refuses (:class:`ReadOnlyError`, before any query) unless probes may write into a stack deployed to
    ``target`` (``write_probe_rows``: see :mod:`datapipe_cdk.runtime.writes`) and ``db`` is writable.
    """

    def __init__(self, db: SourceDatabase, pipe: Pipe, *, target: str, write_probe_rows: bool | None = None) -> None:
        require_probe_writes(target, write_probe_rows, where=f"source table {pipe.source_label}")
        if not db.writable:
            raise ReadOnlyError(f"{pipe.source_label}: the source connection is read-only; open it with writable=True")
        self.db = db
        self.pipe = pipe
        self.table = pipe.source_table.name
        self.columns = db.columns(self.table)
        by_name = {c.name: c for c in self.columns}
        self.key = pipe.source_table.primary_key[0]
        if self.key not in by_name:
            raise SourceError(f"{pipe.label}: primary key {self.key} is not a column of the source table")
        self.key_column = by_name[self.key]
        self.marker_column = _marker_column(pipe, self.columns)

    @property
    def key_type(self) -> str:
        """BigQuery type of the key in the changelog: integers stay INT64, everything else is STRING."""
        return "INT64" if self.key_column.is_integer else "STRING"

    def insert(self) -> tuple[object, str]:
        """Insert one probe row; returns (primary key, its tag)."""
        label = tag()
        values: dict[str, object] = {}
        for column in self.columns:
            if column.name == self.key:
                if not column.generated and not column.has_default:
                    values[column.name] = new_key(column)
            elif column.name == self.marker_column:
                values[column.name] = label
            elif not column.nullable and not column.has_default and not column.generated:
                values[column.name] = filler(column, label)
        return self.db.insert(self.table, values, self.key), label

    def update(self, key: object) -> str:
        """Set the marker column of row ``key`` to a new tag; returns the tag."""
        if self.marker_column is None:
            raise SourceError(f"{self.pipe.label}: no unclassified text column to mark updates with")
        label = tag()
        self.db.update(self.table, self.key, key, self.marker_column, label)
        return label

    def delete(self, keys: list[object]) -> None:
        self.db.delete(self.table, self.key, keys)


@dataclass(frozen=True)
class WarehouseView:
    """The pipe's changelog table and latest-state view, queried for given keys."""

    warehouse: WarehouseClient
    pipe: Pipe
    key: str
    key_type: str
    marker_column: str | None

    def _params(self, keys: list[object]) -> list[Any]:
        values = [int(str(k)) if self.key_type == "INT64" else str(k) for k in keys]
        return [array("keys", self.key_type, values)]

    def changelog_events(self, keys: list[object]) -> list[dict[str, Any]]:
        """Changelog events (``k``, ``op``, ``marker``) of ``keys``."""
        if not keys:
            return []
        table = self.warehouse.table_path(self.pipe.sink.dataset, self.pipe.sink_table.table)
        sql = self.warehouse.sql("changelog_events", table=table, key=self.key, marker=self.marker_column)
        return self.warehouse.rows(sql, self._params(keys))

    def current_rows(self, keys: list[object]) -> dict[str, Any]:
        """Key (as text) → marker value, for the keys the latest-state view shows now."""
        if not keys or self.pipe.view is None or self.pipe.warehouse is None:
            return {}
        table = self.warehouse.table_path(self.pipe.warehouse.dataset, self.pipe.view.name)
        sql = self.warehouse.sql("current_rows", table=table, key=self.key, marker=self.marker_column)
        return {str(r["k"]): r.get("marker") for r in self.warehouse.rows(sql, self._params(keys))}


def warehouse_view(warehouse: WarehouseClient, rows: ProbeRows) -> WarehouseView:
    return WarehouseView(warehouse, rows.pipe, rows.key, rows.key_type, rows.marker_column)
