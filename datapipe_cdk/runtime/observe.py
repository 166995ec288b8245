"""Read-only latency: how long changes that already flowed took, measured without writing anything.

Nothing here connects to a source database. Three samples are read and joined on the Kafka coordinates
(partition, offset) that KCBQ writes into every changelog row (``_kafka``):

* **the changelog table**: its newest ``max_changes`` events committed within ``lookback_s`` (snapshot
  reads left out), each with ``__source_ts_ms`` (Debezium's ``source.ts_ms``, the source commit time) and
  ``_kafka.insertTime`` (when the sink connector turned the record into a BigQuery row);
* **the CDC topic**: the records those rows came from, plus its newest records: Kafka's record timestamp
  and the ``source.ts_ms`` in the Debezium value;
* **Debezium heartbeats**: the age of the newest record of the connector's heartbeat topic (is it alive
  while tables are idle?) and, when the manifest names the connector's heartbeat table, that table's change
  events as further source → Kafka samples.

Stages (named as the marker probe's, so summaries and plots are shared):

==================== =================================================== =================================
``source_to_kafka``  Kafka record timestamp - ``source.ts_ms``            every change read from the topic
``kafka_to_warehouse`` ``_kafka.insertTime`` - Kafka record timestamp     changelog rows found in the topic
``end_to_end``       ``_kafka.insertTime`` - ``__source_ts_ms``           every changelog row
==================== =================================================== =================================

Limits: ``insertTime`` is stamped when the sink converts the record, before its write request, so the
warehouse stages are lower bounds of "queryable" (the write, retries and BigQuery's own delay are not in
them; a latest-state view is a plain view over the changelog and adds no delay of its own). Times come
from three clocks (source database, Connect workers, Kafka brokers): skew shows up as error, negative
values are counted. MySQL/MariaDB binlog times have one-second resolution, so source-side stages read up
to 1 s high there. Only traffic within ``lookback_s`` is seen: an idle table gives no sample, and records
past the topic's retention give no Kafka stages.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import pandas as pd
from confluent_kafka import KafkaException
from google.api_core.exceptions import GoogleAPIError

from datapipe_cdk.manifest import Manifest, Pipe
from datapipe_cdk.runtime.credentials import Credentials
from datapipe_cdk.runtime.latency import ProbeResult
from datapipe_cdk.runtime.probe_rows import choose_pipe
from datapipe_cdk.runtime.stats import END_TO_END, KAFKA_TO_WAREHOUSE, SOURCE_TO_KAFKA
from datapipe_cdk.runtime.stream import ChangeEvent, StreamError, heartbeat_topic, newest_record_ms, read_recent
from datapipe_cdk.runtime.warehouse import WarehouseClient, scalar

READ_ONLY = "read_only"
SAME_CLOCK_SHARE = 0.9
"""When this share of records carry a Kafka timestamp equal to ``source.ts_ms``, the producer stamped the
source time: Kafka times then say nothing about Kafka, and the Kafka stages are not reported."""
KIND_TABLE, KIND_HEARTBEAT = "table", "heartbeat"
CHANGE_COLUMNS = ["change", "kind", "op", "partition", "offset", "source_ts_ms", "kafka_ts_ms", "insert_ms"]


class KafkaReads(Protocol):
    """What read-only latency needs from Kafka (a fake in tests)."""

    def recent(self, topic: str, *, last: int, since: Mapping[int, int] | None = None) -> list[ChangeEvent]: ...

    def newest_ms(self, topic: str) -> int | None: ...


@dataclass(frozen=True)
class KafkaReader:
    """``KafkaReads`` on the stack's Kafka with the notebook's login."""

    manifest: Manifest
    credentials: Credentials
    timeout_s: float = 30.0

    def recent(self, topic: str, *, last: int, since: Mapping[int, int] | None = None) -> list[ChangeEvent]:
        return read_recent(self.manifest.kafka, self.credentials.kafka, topic, last=last, since=since, timeout_s=self.timeout_s)

    def newest_ms(self, topic: str) -> int | None:
        return newest_record_ms(self.manifest.kafka, self.credentials.kafka, topic, timeout_s=min(self.timeout_s, 15.0))


def _millis(value: Any) -> int | None:
    """Milliseconds since the epoch from a BigQuery TIMESTAMP (datetime), seconds (float) or None."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return round(value.timestamp() * 1000)
    if isinstance(value, int | float):
        return round(float(value) * 1000)
    return round(pd.Timestamp(value).timestamp() * 1000)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def changelog_sample(warehouse: WarehouseClient, pipe: Pipe, *, since_ms: int, limit: int) -> list[dict[str, Any]]:
    """The changelog's newest events since ``since_ms`` (see ``sql/bigquery/changelog_latency``)."""
    table = warehouse.table_path(pipe.sink.dataset, pipe.sink_table.table)
    sql = warehouse.sql("changelog_latency", table=table)
    return warehouse.rows(sql, [scalar("since_ms", "INT64", since_ms), scalar("limit", "INT64", limit)])


@dataclass
class _Change:
    kind: str
    op: str | None
    partition: int | None
    offset: int | None
    source_ts_ms: int
    kafka_ts_ms: int | None
    insert_ms: int | None


def _from_event(event: ChangeEvent, kind: str) -> _Change:
    assert event.source_ts_ms is not None
    return _Change(kind, event.op, event.partition, event.offset, event.source_ts_ms, event.record_ts_ms, None)


def _newest(changes: list[_Change], count: int) -> list[_Change]:
    return sorted(changes, key=lambda c: c.source_ts_ms, reverse=True)[: max(0, count)]


def join_samples(
    rows: Sequence[Mapping[str, Any]],
    events: Sequence[ChangeEvent],
    *,
    since_ms: int,
    max_changes: int,
    heartbeat_events: Sequence[ChangeEvent] = (),
) -> pd.DataFrame:
    """One row per change (columns ``CHANGE_COLUMNS``, times in ms since the epoch, None where unknown).

    Changelog ``rows`` (from ``changelog_sample``) are joined to Kafka ``events`` by (partition, offset); a
    row delivered twice counts once, with its first insert time. Events no changelog row names add a
    source → Kafka sample only. Snapshot reads and changes committed before ``since_ms`` are left out; of
    each kind the newest ``max_changes`` are kept.
    """
    by_coordinates: dict[tuple[int, int], ChangeEvent] = {}
    for event in events:
        if event.op != "r" and event.source_ts_ms is not None and event.partition is not None and event.offset is not None:
            by_coordinates[(event.partition, event.offset)] = event
    changes: dict[tuple[int, int], _Change] = {}
    for row in rows:
        partition, offset = _int(row.get("kafka_partition")), _int(row.get("kafka_offset"))
        source_ms = _int(row.get("source_ts_ms"))
        if partition is None or offset is None or source_ms is None or row.get("op") == "r" or source_ms < since_ms:
            continue
        insert_ms = _millis(row.get("insert_time"))
        seen = changes.get((partition, offset))
        if seen is not None:
            if insert_ms is not None and (seen.insert_ms is None or insert_ms < seen.insert_ms):
                seen.insert_ms = insert_ms
            continue
        found = by_coordinates.get((partition, offset))
        changes[(partition, offset)] = _Change(
            KIND_TABLE, row.get("op"), partition, offset, source_ms, found.record_ts_ms if found else None, insert_ms
        )
    table_changes = _newest(list(changes.values()), max_changes)
    kafka_only = [
        _from_event(e, KIND_TABLE)
        for key, e in by_coordinates.items()
        if key not in changes and e.source_ts_ms is not None and e.source_ts_ms >= since_ms
    ]
    heartbeats = [
        _from_event(e, KIND_HEARTBEAT)
        for e in heartbeat_events
        if e.op != "r" and e.source_ts_ms is not None and e.source_ts_ms >= since_ms
    ]
    every = [*table_changes, *_newest(kafka_only, max_changes - len(table_changes)), *_newest(heartbeats, max_changes)]
    every.sort(key=lambda c: c.source_ts_ms)
    return pd.DataFrame([{"change": i, **vars(c)} for i, c in enumerate(every)], columns=CHANGE_COLUMNS)


def _known(value: Any) -> bool:
    return value is not None and not pd.isna(value)


def _seconds(end: Any, start: Any) -> float:
    return (float(end) - float(start)) / 1000 if _known(end) and _known(start) else math.nan


def observed_latencies(changes: pd.DataFrame, *, kafka_times_usable: bool = True) -> pd.DataFrame:
    """The long table (``marker``, ``op``, ``stage``, ``latency_s``, ``committed_at``) of ``join_samples``'
    changes: a stage appears only for changes it applies to (see the module docstring), NaN where the
    other end was not found (a changelog row whose record is past the topic's retention)."""
    rows = []
    for change in changes.to_dict("records"):
        committed = pd.Timestamp(int(change["source_ts_ms"]), unit="ms", tz="UTC")
        in_changelog = change["kind"] == KIND_TABLE and _known(change["insert_ms"])
        in_kafka = _known(change["kafka_ts_ms"])
        stages: list[tuple[str, float]] = []
        if kafka_times_usable and (in_kafka or in_changelog):
            stages.append((SOURCE_TO_KAFKA, _seconds(change["kafka_ts_ms"], change["source_ts_ms"])))
        if in_changelog:
            if kafka_times_usable:
                stages.append((KAFKA_TO_WAREHOUSE, _seconds(change["insert_ms"], change["kafka_ts_ms"])))
            stages.append((END_TO_END, _seconds(change["insert_ms"], change["source_ts_ms"])))
        for stage, value in stages:
            rows.append(
                {"marker": change["change"], "op": change["op"], "stage": stage, "latency_s": value, "committed_at": committed}
            )
    return pd.DataFrame(rows, columns=["marker", "op", "stage", "latency_s", "committed_at"])


def _kafka_times_usable(changes: pd.DataFrame) -> bool:
    """False when (nearly) every record's Kafka timestamp is its source commit time (see ``SAME_CLOCK_SHARE``)."""
    both = changes.dropna(subset=["kafka_ts_ms", "source_ts_ms"])
    if not len(both):
        return True
    same = (both["kafka_ts_ms"].astype("int64") == both["source_ts_ms"].astype("int64")).mean()
    return bool(same < SAME_CLOCK_SHARE)


def change_frame(changes: pd.DataFrame) -> pd.DataFrame:
    """``join_samples``' changes with UTC timestamps instead of milliseconds (NaT: not seen there)."""
    frame = changes.copy()
    for column, name in (("source_ts_ms", "source_ts"), ("kafka_ts_ms", "kafka_ts"), ("insert_ms", "insert_time")):
        frame[name] = pd.to_datetime(pd.to_numeric(frame[column], errors="coerce"), unit="ms", utc=True)
    return frame.drop(columns=["source_ts_ms", "kafka_ts_ms", "insert_ms"])


def observe_latency(
    manifest: Manifest,
    credentials: Credentials,
    *,
    table: str | None = None,
    lookback_s: float = 3600.0,
    max_changes: int = 1000,
    timeout_s: float = 60.0,
    warehouse: WarehouseClient | None = None,
    kafka: KafkaReads | None = None,
    now: float | None = None,
) -> ProbeResult:
    """Latency of the changes that already flowed through one pipe (``table``: as ``choose_pipe``), read from
    its changelog table, its CDC topic and the connector's heartbeats. Never writes, never opens a source.

    A sample that cannot be read (no login for Kafka, a topic past retention, a query refused) leaves its
    stages empty and says why in ``settings["notes"]``.
    """
    if max_changes < 1 or lookback_s <= 0:
        raise ValueError(f"max_changes must be >= 1 and lookback_s > 0, got {max_changes} and {lookback_s}")
    pipe = choose_pipe(manifest, table, for_markers=False)
    started = time.time() if now is None else now
    since_ms = int((started - lookback_s) * 1000)
    warehouse = warehouse or WarehouseClient(manifest.bigquery)
    kafka = kafka or KafkaReader(manifest, credentials, timeout_s=timeout_s)
    notes: list[str] = []
    rows: list[dict[str, Any]] = []
    try:
        rows = changelog_sample(warehouse, pipe, since_ms=since_ms, limit=max_changes * 2)
    except GoogleAPIError as error:
        notes.append(
            f"changelog {pipe.changelog_label} not read ({type(error).__name__}: {str(error)[:200]}): no warehouse stages"
        )
    since_offsets: dict[int, int] = {}
    for row in rows:
        partition, offset = _int(row.get("kafka_partition")), _int(row.get("kafka_offset"))
        if partition is not None and offset is not None:
            since_offsets[partition] = min(offset, since_offsets.get(partition, offset))
    events: list[ChangeEvent] = []
    topic = pipe.source_table.topic
    try:
        events = kafka.recent(topic, last=max_changes, since=since_offsets)
    except (StreamError, KafkaException) as error:
        notes.append(f"topic {topic} not read ({error}): no Kafka stages")
    heartbeat_events: list[ChangeEvent] = []
    if pipe.source.heartbeat_table:
        heartbeat_table_topic = f"{pipe.source.topic_prefix}.{pipe.source.heartbeat_table}"
        try:
            heartbeat_events = kafka.recent(heartbeat_table_topic, last=max_changes)
        except (StreamError, KafkaException) as error:
            notes.append(f"heartbeat table topic {heartbeat_table_topic} not read ({error})")
    heartbeat_age_s = None
    beats = heartbeat_topic(pipe.source.topic_prefix)
    try:
        newest = kafka.newest_ms(beats)
        heartbeat_age_s = None if newest is None else round(started - newest / 1000, 1)
        if newest is None:
            notes.append(f"heartbeat topic {beats} is empty")
    except (StreamError, KafkaException) as error:
        notes.append(f"no heartbeat read from {beats} ({error}); CdcSource(heartbeat=...) adds one")
    changes = join_samples(rows, events, since_ms=since_ms, max_changes=max_changes, heartbeat_events=heartbeat_events)
    usable = _kafka_times_usable(changes)
    if not usable:
        notes.append(
            "Kafka record timestamps equal the source commit times (the producer stamps source.ts_ms): "
            "source_to_kafka and kafka_to_warehouse cannot be measured; end_to_end still can"
        )
    latencies = observed_latencies(changes, kafka_times_usable=usable)
    negative = int((latencies["latency_s"] < 0).sum())
    if negative:
        notes.append(
            f"{negative} samples are negative: the source, Connect and Kafka clocks disagree by at least "
            f"{-latencies['latency_s'].min():.2f} s"
        )
    if not pipe.source.is_postgres:
        notes.append(
            f"{pipe.source.engine} source.ts_ms has one-second resolution: source_to_kafka and end_to_end read up to 1 s high"
        )
    if not len(changes):
        notes.append(
            f"no change committed in the last {lookback_s:.0f} s reached {pipe.changelog_label} or {topic}: "
            "nothing to measure read-only (widen lookback_s, or opt in to probe rows)"
        )
    in_changelog = changes[changes["insert_ms"].notna()] if len(changes) else changes
    return ProbeResult(
        table=pipe.changelog_label,
        markers=change_frame(changes),
        latencies=latencies,
        settings={
            "lookback_s": lookback_s,
            "max_changes": max_changes,
            "changelog_rows": len(in_changelog),
            "kafka_records": len(events),
            "heartbeat_table_records": len(heartbeat_events),
            "heartbeat_topic": beats,
            "heartbeat_age_s": heartbeat_age_s,
            "source_topic": topic,
        },
        mode=READ_ONLY,
        notes=notes,
    )
