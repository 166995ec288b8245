"""Freshness objectives: "changes to this table are visible in the warehouse within N", compiled and watched.

``CdcSource(freshness=...)`` (and ``MicroWarehouse(freshness=...)`` for the views it exposes) declares the
objective. Synth derives what bounds staleness and refuses what cannot meet it:

* the connector's heartbeat (``heartbeat.interval.ms``) runs at a quarter of the objective, or at the
  declared ``heartbeat`` (used as declared, up to half the objective), and each beat writes the source's
  heartbeat table (``heartbeat.action.query``). That
  table is captured like any other, so a beat travels the whole path (database, Kafka, sink, BigQuery)
  even when every other table is idle: the newest beat visible in BigQuery is how fresh the pipeline is;
* a declared ``heartbeat`` slower than half the objective is refused (staleness could not be told from
  idleness), as is an objective under 10 seconds (the sink, KCBQ 2.0.0-alpha, writes each record with
  two HTTP calls: it cannot promise less);
* compaction does not bound staleness (views read the recent changes live), so it is not derived.

Each objective is watched: in production a BigQuery scheduled query per sink checks the newest beat every
15 minutes (the shortest schedule BigQuery allows) and fails with ``datapipe freshness missed`` when it is
older than the objective, and a Cloud Monitoring alert policy on that log entry notifies
``GcpProject(alert_channels=...)``. Everywhere, ``datapipe freshness`` measures it live.
"""

from __future__ import annotations

from datetime import timedelta

from . import _validate as check
from .errors import DatapipeError
from .heartbeat import HEARTBEAT_TABLE
from .schema import CapturedTable, Classification, Column, ColumnType, Table
from .units import in_words

MIN_OBJECTIVE = timedelta(seconds=10)
CHECK_EVERY = timedelta(minutes=15)
MISSED = "datapipe freshness missed"
"""The text of the error a missed objective raises (the alert policy matches it)."""


def checked_objective(path: str, freshness: object, heartbeat: timedelta | None) -> tuple[timedelta, timedelta]:
    """(the objective, the heartbeat interval that serves it); refuses what cannot meet the objective."""
    objective = check.duration(path, "freshness", freshness, minimum=MIN_OBJECTIVE, at_least=True)
    derived = max(timedelta(seconds=1), objective / 4)
    if heartbeat is not None:
        if heartbeat > objective / 2:
            raise DatapipeError(
                path,
                f"heartbeat={heartbeat} cannot show freshness={objective}: a beat must travel at least twice per "
                f"objective; set heartbeat to {objective / 2} or less, or leave it out (derived: {derived})",
                heartbeat,
            )
        derived = heartbeat  # as declared: a stricter default never silently replaces what the user wrote
    return objective, timedelta(milliseconds=int(derived / timedelta(milliseconds=1)))


def heartbeat_table(namespace: str, prefix: str) -> CapturedTable:
    """The captured heartbeat table: one row, its time rewritten on every beat."""
    table = Table(
        primary_key=["id"],
        columns=[
            Column("id", ColumnType.INT64, Classification.INTERNAL, description="always 1"),
            Column("beat", ColumnType.TIMESTAMP, Classification.INTERNAL, description="when the connector last beat"),
        ],
        description="Debezium heartbeat: rewritten on every beat so freshness can be measured end to end",
    )
    return CapturedTable(
        name=HEARTBEAT_TABLE, namespace=namespace, table=table, topic_name=f"{prefix}.{namespace}.{HEARTBEAT_TABLE}"
    )


def freshness_check_sql(changelog: str, objective: timedelta, label: str) -> str:
    """The scheduled check: fails (an error the alert matches) when the newest beat is older than the objective."""
    seconds = int(objective.total_seconds())
    age = "TIMESTAMP_DIFF(CURRENT_TIMESTAMP(), TIMESTAMP_MILLIS(MAX(`__source_ts_ms`)), SECOND)"
    return (
        f"SELECT IF(\n"
        f"  IFNULL({age}, {seconds + 1}) > {seconds},\n"
        f"  ERROR(CONCAT('{MISSED}: {label}: newest change visible ', IFNULL(CAST({age} AS STRING), 'never'), "
        f"' s ago, objective {in_words(objective)}')),\n"
        f"  'fresh')\n"
        f"FROM {changelog}\n"
        f"WHERE _PARTITIONTIME IS NULL OR _PARTITIONTIME >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 2 DAY)\n"
    )
