"""Live staleness against the freshness objectives (``datapipe freshness``, the latency notebook).

Staleness of a table = now minus the source time of the newest change visible in BigQuery along its path.
A source with an objective beats into its heartbeat table, so its newest beat (in the sink's changelog or
compacted state) measures the whole path even when the table itself is idle. Without a heartbeat the
table's own newest change is all there is, so an idle table looks stale: it is reported without an
objective ("no heartbeat").
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from datapipe_cdk.heartbeat import HEARTBEAT_TABLE
from datapipe_cdk.manifest import Manifest, Pipe, Sink, SinkTable
from datapipe_cdk.runtime._sql import quote_bigquery
from datapipe_cdk.runtime.warehouse import WarehouseClient


@dataclass(frozen=True)
class Staleness:
    """One table's freshness: its objective (None: none declared), the measured staleness and what measured it."""

    table: str
    source: str
    objective_s: int | None
    staleness_s: float | None
    """Seconds since the newest change visible (None: nothing visible yet)."""
    measured_by: str
    newest_own_change_s: float | None
    """Seconds since this table's own newest change (informational: an idle table is old and fine)."""

    @property
    def status(self) -> str:
        if self.objective_s is None:
            return "no objective"
        if self.staleness_s is None:
            return "missed (nothing visible)"
        return "met" if self.staleness_s <= self.objective_s else "missed"

    @property
    def missed(self) -> bool:
        return self.status.startswith("missed")

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "status": self.status}


def _newest_ms(wh: WarehouseClient, manifest: Manifest, sink: Sink, table: SinkTable) -> int | None:
    """The newest ``__source_ts_ms`` of a changelog's last day and its compacted state."""
    project = manifest.bigquery.project
    parts = [
        f"SELECT MAX(`__source_ts_ms`) AS t FROM {quote_bigquery((project, sink.dataset, table.table))} "
        "WHERE `_kafka`.`insertTime` IS NULL OR `_kafka`.`insertTime` >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 1 DAY)"
    ]
    if table.state_table:
        parts.append(f"SELECT MAX(`__source_ts_ms`) AS t FROM {quote_bigquery((project, sink.dataset, table.state_table))}")
    rows = wh.rows(f"SELECT MAX(t) AS newest FROM ({' UNION ALL '.join(parts)})")
    newest = rows[0]["newest"] if rows else None
    return int(newest) if newest is not None else None


def _age(newest_ms: int | None, now: float) -> float | None:
    return None if newest_ms is None else round(max(0.0, now - newest_ms / 1000), 1)


def _objective(pipe: Pipe) -> int | None:
    objectives = [pipe.source.freshness_seconds, pipe.warehouse.freshness_seconds if pipe.warehouse else None]
    declared = [o for o in objectives if o is not None]
    return min(declared) if declared else None


def objective_of(manifest: Manifest, label: str | None) -> int | None:
    """The freshness objective (seconds) of the table or view ``label`` (as latency results name it)."""
    found = [_objective(p) for p in manifest.pipes() if label in (p.label, p.changelog_label, p.source_table.name)]
    declared = [o for o in found if o is not None]
    return min(declared) if declared else None


def measure(manifest: Manifest, wh: WarehouseClient | None = None) -> list[Staleness]:
    """Every captured table's staleness (one row per table and view), against its objective."""
    wh = wh or WarehouseClient(manifest.bigquery)
    now = time.time()
    beats: dict[str, float | None] = {}
    for sink in manifest.sinks:
        for table in sink.tables:
            if table.source_table == HEARTBEAT_TABLE:
                beats[sink.name] = _age(_newest_ms(wh, manifest, sink, table), now)
    found = []
    for pipe in manifest.pipes():
        if pipe.source_table.name == HEARTBEAT_TABLE:
            continue
        own = _age(_newest_ms(wh, manifest, pipe.sink, pipe.sink_table), now)
        heartbeat = pipe.sink.name in beats
        found.append(
            Staleness(
                table=pipe.label,
                source=pipe.source_label,
                objective_s=_objective(pipe),
                staleness_s=beats[pipe.sink.name] if heartbeat else own,
                measured_by=f"{pipe.source.name} heartbeat" if heartbeat else "its own newest change (no heartbeat)",
                newest_own_change_s=own,
            )
        )
    return found


def render(rows: list[Staleness]) -> str:
    """A table for the terminal."""
    header = ("TABLE", "OBJECTIVE", "STALENESS", "STATUS", "MEASURED BY")
    lines = [
        (
            r.table,
            f"{r.objective_s} s" if r.objective_s is not None else "-",
            f"{r.staleness_s:.1f} s" if r.staleness_s is not None else "never",
            r.status,
            r.measured_by,
        )
        for r in rows
    ]
    widths = [max(len(str(x)) for x in column) for column in zip(header, *lines, strict=True)]
    return (
        "\n".join("  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)).rstrip() for line in [header, *lines])
        + "\n"
    )
