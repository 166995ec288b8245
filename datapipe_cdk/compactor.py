"""Run the compactions a manifest lists (``datapipe compact``, the local stack's compactor).

In production a BigQuery scheduled query runs the same statements every ``compact_every``; this runs
them on demand, with the caller's credentials (the local emulator takes any). Each table's statements
run in order: merge, purge old deletes, record. The google-cloud-bigquery client is imported by the
caller (``datapipe-cdk[runtime]``), so importing this module stays free.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .manifest import Manifest, ManifestError, Sink


@dataclass(frozen=True)
class TableCompaction:
    """One table's compaction: rows the merge wrote, deleted rows purged from the state, seconds taken."""

    sink: str
    table: str
    state_table: str
    merged_rows: int
    purged_rows: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "sink": self.sink,
            "table": self.table,
            "state_table": self.state_table,
            "merged_rows": self.merged_rows,
            "purged_rows": self.purged_rows,
            "seconds": round(self.seconds, 3),
        }


def _log_table(manifest: Manifest, sink: Sink) -> str:
    if not sink.compaction_log:
        raise ManifestError(
            f"{manifest.origin or manifest.stack}: sink {sink.name} has no compacted state (a manifest older than "
            "version 3): deploy the stack with this datapipe-cdk first"
        )
    return f"`{manifest.bigquery.project}.{sink.dataset}.{sink.compaction_log}`"


def last_compacted(client: Any, manifest: Manifest, sink: Sink) -> datetime | None:
    """When the sink's last compaction finished (the oldest of its tables' last ones), or None if never."""
    rows = list(
        client.query_and_wait(
            f"SELECT `table_id`, MAX(`compacted_at`) AS `at` FROM {_log_table(manifest, sink)} GROUP BY `table_id`"
        )
    )
    done = {row["table_id"]: row["at"] for row in rows}
    moments = [done.get(table.table) for table in sink.tables]
    if not moments or any(m is None for m in moments):
        return None
    return min(m for m in moments if m is not None)


def due(client: Any, manifest: Manifest, sink: Sink, now: datetime | None = None) -> bool:
    """True when the sink's last compaction is older than its ``compact_every`` (or never ran)."""
    last = last_compacted(client, manifest, sink)
    now = now or datetime.now(UTC)
    return last is None or now - last >= timedelta(minutes=sink.compact_every_minutes)


def compact(client: Any, manifest: Manifest, sinks: Iterable[str] | None = None) -> list[TableCompaction]:
    """Compact every table of the chosen sinks (all by default); returns what each did."""
    chosen = set(sinks) if sinks is not None else None
    if chosen is not None and (unknown := chosen - {s.name for s in manifest.sinks}):
        raise ManifestError(f"stack {manifest.stack} has no sink {', '.join(sorted(unknown))}")
    results = []
    for sink in manifest.sinks:
        if chosen is not None and sink.name not in chosen:
            continue
        _log_table(manifest, sink)
        for table in sink.tables:
            began = time.monotonic()
            affected = [_run(client, statement) for statement in table.compaction]
            results.append(
                TableCompaction(
                    sink=sink.name,
                    table=table.table,
                    state_table=table.state_table or "",
                    merged_rows=affected[0] if affected else 0,
                    purged_rows=affected[1] if len(affected) > 1 else 0,
                    seconds=time.monotonic() - began,
                )
            )
    return results


def _run(client: Any, statement: str) -> int:
    job = client.query(statement)
    job.result()
    return int(job.num_dml_affected_rows or 0)
