"""Read-only by default outside the local stack: probes refuse to write without the opt-in, sources open read-only,
and read-only latency joins what already flowed (changelog rows, Kafka records) without touching a source."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest

from datapipe_cdk.manifest import Manifest, Source
from datapipe_cdk.runtime import latency, observe, quality
from datapipe_cdk.runtime import source as source_module
from datapipe_cdk.runtime.credentials import Credentials, CredentialsError, Login
from datapipe_cdk.runtime.probe_rows import ProbeRows, choose_pipe
from datapipe_cdk.runtime.quality import SKIP, _Sources, deletion_check
from datapipe_cdk.runtime.source import SourceColumn, SourceDatabase
from datapipe_cdk.runtime.stats import END_TO_END, KAFKA_TO_WAREHOUSE, SOURCE_TO_KAFKA, target_sentence
from datapipe_cdk.runtime.stream import ChangeEvent, StreamError
from datapipe_cdk.runtime.warehouse import WarehouseClient
from datapipe_cdk.runtime.writes import (
    ReadOnlyError,
    mode_statement,
    probe_writes_allowed,
    require_probe_writes,
)

RAW: dict[str, Any] = {
    "version": 2,
    "stack": "payments",
    "kafka": {"bootstrap_servers": ["broker:9093"], "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512"},
    "connect": {"url": "https://connect:8083"},
    "bigquery": {"project": "acme-data", "location": "US", "endpoint": None},
    "sources": [
        {
            "name": "payments-db",
            "engine": "mysql",
            "host": "db.prod",
            "port": 3306,
            "database": "payments",
            "schema": None,
            "connector": "payments-db",
            "topic_prefix": "payments",
            "tables": [
                {
                    "name": "orders",
                    "primary_key": ["id"],
                    "topic": "payments.payments.orders",
                    "columns": [{"name": "id"}, {"name": "status"}],
                }
            ],
        }
    ],
    "sinks": [
        {
            "name": "payments-raw",
            "connector": "payments-raw",
            "dataset": "payments_raw",
            "holds_pii": True,
            "tables": [{"source_table": "orders", "topic": "payments.payments.orders", "table": "orders", "primary_key": ["id"]}],
        }
    ],
    "warehouses": [
        {
            "name": "finance",
            "dataset": "finance",
            "holds_pii": False,
            "views": [
                {
                    "name": "orders",
                    "kind": "latest_state",
                    "sink_dataset": "payments_raw",
                    "sink_table": "orders",
                    "primary_key": ["id"],
                }
            ],
        }
    ],
}
NO_LOGINS = Credentials(kafka=Login("reader", "pw"), databases={}, origin="test")
"""No database login at all: a read-only run that tried to open a source would raise CredentialsError."""


def _manifest(target: str | None) -> Manifest:
    raw = json.loads(json.dumps(RAW))
    if target is not None:
        raw["target"] = target
    return Manifest.from_dict(raw)


# --- the rule ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "write_probe_rows", "allowed"),
    [
        ("local", None, True),
        ("local", True, True),
        ("local", False, False),
        ("production", None, False),
        ("production", False, False),
        ("production", True, True),
        ("staging", None, False),  # anything but "local" is treated as production
    ],
)
def test_probe_writes_default_to_the_local_stack_only(target: str, write_probe_rows: bool | None, allowed: bool) -> None:
    assert probe_writes_allowed(target, write_probe_rows) is allowed
    statement = mode_statement(target, write_probe_rows)
    assert statement.startswith("WRITES PROBE ROWS" if allowed else "READ-ONLY")
    if allowed and target != "local":
        assert "explicit opt-in" in statement


def test_a_manifest_without_target_is_production_so_read_only() -> None:
    assert _manifest(None).target == "production"
    assert not probe_writes_allowed(_manifest(None).target)


@pytest.mark.parametrize("value", ["yes", 1, "False"])
def test_only_booleans_opt_in(value: object) -> None:
    with pytest.raises(ValueError, match="write_probe_rows must be True, False or None"):
        probe_writes_allowed("production", value)  # type: ignore[arg-type]


def test_the_refusal_says_how_to_opt_in() -> None:
    with pytest.raises(ReadOnlyError, match=r"write_probe_rows=True \(tools/run_notebooks.py --write-probe-rows\)"):
        require_probe_writes("production")
    with pytest.raises(ReadOnlyError, match="write_probe_rows=False"):
        require_probe_writes("local", False)


# --- the probe writer ----------------------------------------------------------------------------


class _FakeDatabase:
    """Stands in for SourceDatabase: records every call."""

    def __init__(self, writable: bool) -> None:
        self.writable = writable
        self.calls: list[str] = []

    def columns(self, table: str) -> list[SourceColumn]:
        self.calls.append(f"columns {table}")
        return [
            SourceColumn("id", "int", False, False, None, True, "int"),
            SourceColumn("status", "varchar", True, False, 32, False, "varchar(32)"),
        ]


def test_the_probe_writer_refuses_a_non_local_target_without_the_opt_in() -> None:
    pipe = choose_pipe(_manifest("production"))
    db = _FakeDatabase(writable=True)
    with pytest.raises(ReadOnlyError, match="target 'production' is not the local stack"):
        ProbeRows(db, pipe, target="production")  # type: ignore[arg-type]
    with pytest.raises(ReadOnlyError):
        ProbeRows(db, pipe, target="production", write_probe_rows=False)  # type: ignore[arg-type]
    assert db.calls == []  # refused before reading anything
    rows = ProbeRows(db, pipe, target="production", write_probe_rows=True)  # type: ignore[arg-type]
    assert rows.marker_column == "status"
    assert ProbeRows(_FakeDatabase(writable=True), pipe, target="local").key == "id"  # type: ignore[arg-type]


def test_the_probe_writer_refuses_a_read_only_connection_even_when_opted_in() -> None:
    pipe = choose_pipe(_manifest("local"))
    with pytest.raises(ReadOnlyError, match="read-only"):
        ProbeRows(_FakeDatabase(writable=False), pipe, target="local", write_probe_rows=True)  # type: ignore[arg-type]


def _no_connections(monkeypatch: pytest.MonkeyPatch, *modules: Any) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("no connection may be opened in read-only mode")

    for module in modules:
        for name in ("SourceDatabase", "WarehouseClient", "TopicTail"):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, refuse)


def test_run_probe_refuses_before_connecting(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_connections(monkeypatch, latency)
    with pytest.raises(ReadOnlyError, match=r"payments-db\.orders"):
        latency.run_probe(_manifest("production"), NO_LOGINS, markers=3, progress=False)
    with pytest.raises(ReadOnlyError, match="write_probe_rows=False"):
        latency.run_probe(_manifest("local"), NO_LOGINS, markers=3, progress=False, write_probe_rows=False)


def test_run_probe_with_the_opt_in_goes_on_to_connect(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_connections(monkeypatch, latency)
    monkeypatch.setattr(latency, "WarehouseClient", lambda endpoint: object())
    with pytest.raises(CredentialsError):  # past the guard: it asks for the writer login
        latency.run_probe(_manifest("production"), NO_LOGINS, markers=3, progress=False, write_probe_rows=True)


def test_the_deletion_check_is_skipped_without_writing_or_connecting(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_connections(monkeypatch, quality)
    frame, result = deletion_check(_manifest("production"), NO_LOGINS, rows=3)
    assert result.status == SKIP and "read-only" in result.detail and "write_probe_rows=True" in result.detail
    assert frame.empty
    _, forced = deletion_check(_manifest("local"), NO_LOGINS, rows=3, write_probe_rows=False)
    assert forced.status == SKIP and "write_probe_rows=False" in forced.detail
    raw = json.loads(json.dumps(RAW))
    raw["warehouses"] = []  # nothing a probe could write through: read-only still just skips
    _, unexposed = deletion_check(Manifest.from_dict(raw), NO_LOGINS)
    assert unexposed.status == SKIP and unexposed.table == "payments_raw.orders"


# --- read-only source sessions -------------------------------------------------------------------


class _Recorder:
    def __init__(self) -> None:
        self.executed: list[str] = []

    def cursor(self) -> _Recorder:
        return self

    def execute(self, sql: str, params: Any = None) -> None:
        self.executed.append(sql)

    def fetchone(self) -> tuple[int]:
        return (0,)

    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    ("engine", "statement"),
    [("mysql", "SET SESSION TRANSACTION READ ONLY"), ("postgresql", "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")],
)
def test_sources_open_read_only_unless_asked(monkeypatch: pytest.MonkeyPatch, engine: str, statement: str) -> None:
    recorder = _Recorder()
    monkeypatch.setattr(source_module.pymysql, "connect", lambda **kwargs: recorder)
    monkeypatch.setattr(source_module.psycopg, "connect", lambda **kwargs: recorder)
    source = Source("db", engine, "h", 1, "payments", "payments", "db", "payments", ())
    db = SourceDatabase(source, Login("reader", "pw"))
    utc = ["SET time_zone = '+00:00'"] if engine == "mysql" else []  # MariaDB TIMESTAMPs read as UTC, like Debezium
    assert not db.writable and recorder.executed == [*utc, statement]
    for write in (
        lambda: db.insert("orders", {"id": 1}, "id"),
        lambda: db.update("orders", "id", 1, "status", "x"),
        lambda: db.delete("orders", "id", [1]),
    ):
        with pytest.raises(ReadOnlyError, match="open read-only"):
            write()
    opened = len(recorder.executed)
    db.count("orders")
    assert recorder.executed[opened:] and all(sql.startswith("SELECT") for sql in recorder.executed[opened:])
    recorder.executed.clear()
    SourceDatabase(source, Login("writer", "pw"), writable=True)
    assert recorder.executed == utc


def test_quality_checks_open_sources_read_only(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[dict[str, object]] = []

    def fake(source: Source, login: Login, **kwargs: object) -> object:
        opened.append(kwargs)
        return object()

    monkeypatch.setattr(quality, "SourceDatabase", fake)
    sources = _Sources(Credentials(kafka=None, databases={"mysql": Login("reader", "pw")}, origin="test"))
    sources.database(_manifest("production").sources[0])
    assert opened == [{"writable": False}]


# --- read-only latency ---------------------------------------------------------------------------

NOW = 1_800_000_000.0
NOW_MS = int(NOW * 1000)


def _event(offset: int, source_ms: int, record_ms: int | None, op: str = "u", partition: int = 0) -> ChangeEvent:
    return ChangeEvent(op, None, {"id": offset}, source_ms, record_ms, NOW, partition=partition, offset=offset)


def _row(offset: int, source_ms: int, insert_ms: int | None, op: str = "u", partition: int = 0) -> dict[str, Any]:
    insert = None if insert_ms is None else datetime.fromtimestamp(insert_ms / 1000, UTC)
    return {"op": op, "source_ts_ms": source_ms, "kafka_partition": partition, "kafka_offset": offset, "insert_time": insert}


def test_changelog_rows_join_kafka_records_on_partition_and_offset() -> None:
    t = NOW_MS - 60_000
    rows = [
        _row(10, t, t + 900),
        _row(10, t, t + 5_000),  # delivered twice: the first insert counts
        _row(11, t + 1000, t + 1600),
        _row(3, t - 10_000, t - 9_000, op="r"),  # snapshot read: left out
        _row(12, t - 7_200_000, t - 7_199_000),
    ]  # before the lookback window
    events = [_event(10, t, t + 200), _event(11, t + 1000, t + 1100), _event(13, t + 2000, t + 2300)]
    changes = observe.join_samples(rows, events, since_ms=NOW_MS - 3_600_000, max_changes=100)
    assert list(changes["offset"]) == [10, 11, 13]
    table = observe.observed_latencies(changes).pivot_table(index="marker", columns="stage", values="latency_s")
    assert table.loc[0, SOURCE_TO_KAFKA] == pytest.approx(0.2)
    assert table.loc[0, KAFKA_TO_WAREHOUSE] == pytest.approx(0.7)
    assert table.loc[0, END_TO_END] == pytest.approx(0.9)
    assert table.loc[1, END_TO_END] == pytest.approx(0.6)
    assert table.loc[2, SOURCE_TO_KAFKA] == pytest.approx(0.3)  # only in Kafka (not yet in the changelog)
    long = observe.observed_latencies(changes)
    assert set(long.loc[long["marker"] == 2, "stage"]) == {SOURCE_TO_KAFKA}  # not counted missing downstream


def test_a_changelog_row_past_kafka_retention_lacks_only_the_kafka_stages() -> None:
    t = NOW_MS - 1000
    changes = observe.join_samples([_row(5, t, t + 400)], [], since_ms=0, max_changes=10)
    long = observe.observed_latencies(changes).set_index("stage")["latency_s"]
    assert long[END_TO_END] == pytest.approx(0.4)
    assert math.isnan(long[SOURCE_TO_KAFKA]) and math.isnan(long[KAFKA_TO_WAREHOUSE])


def test_the_newest_changes_are_kept() -> None:
    rows = [_row(i, NOW_MS - 100_000 + i * 1000, NOW_MS - 99_000 + i * 1000) for i in range(10)]
    changes = observe.join_samples(rows, [], since_ms=0, max_changes=3)
    assert list(changes["offset"]) == [7, 8, 9]


class _Warehouse(WarehouseClient):
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        super().__init__(_manifest("production").bigquery, client=object())  # type: ignore[arg-type]
        self._canned = rows
        self.queries: list[tuple[str, list[Any]]] = []

    def rows(self, sql: str, params: Sequence[Any] = (), timeout_s: float = 60.0) -> list[dict[str, Any]]:
        self.queries.append((sql, list(params)))
        return self._canned


class _Kafka:
    def __init__(self, events: list[ChangeEvent], heartbeat_ms: int | None) -> None:
        self.events = events
        self.heartbeat_ms = heartbeat_ms
        self.asked: list[tuple[str, Mapping[int, int] | None]] = []

    def recent(self, topic: str, *, last: int, since: Mapping[int, int] | None = None) -> list[ChangeEvent]:
        self.asked.append((topic, since))
        return self.events

    def newest_ms(self, topic: str) -> int | None:
        if self.heartbeat_ms is None:
            raise StreamError(f"topic {topic!r} not found (absent); deploy the stack first")
        return self.heartbeat_ms


def test_observe_latency_reads_only_and_never_opens_a_source(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_connections(monkeypatch, observe, latency, quality)
    t = NOW_MS - 30_000
    warehouse = _Warehouse([_row(7, t, t + 1500), _row(8, t + 100, t + 1700)])
    kafka = _Kafka([_event(7, t, t + 300), _event(8, t + 100, t + 350)], heartbeat_ms=NOW_MS - 4000)
    result = observe.observe_latency(
        _manifest("production"), NO_LOGINS, lookback_s=600, max_changes=50, warehouse=warehouse, kafka=kafka, now=NOW
    )
    assert result.mode == "read_only" and result.table == "payments_raw.orders"
    [(sql, params)] = warehouse.queries
    assert "`payments_raw`.`orders`" in sql and "insertTime" in sql and "!= 'r'" in sql
    assert {p.name: p.value for p in params} == {"since_ms": NOW_MS - 600_000, "limit": 100}
    assert kafka.asked == [("payments.payments.orders", {0: 7})]  # back to the oldest changelog row's offset
    summary = result.summary().set_index("stage")
    assert summary.loc[END_TO_END, "samples"] == 2 and summary.loc[END_TO_END, "p50_s"] == pytest.approx(1.55)
    assert summary.loc[SOURCE_TO_KAFKA, "max_s"] == pytest.approx(0.3)
    assert result.settings["heartbeat_age_s"] == pytest.approx(4.0)
    assert result.settings["heartbeat_topic"] == "__debezium-heartbeat.payments"
    assert any("one-second resolution" in note for note in result.notes)  # a MySQL source
    assert "lower bound" in target_sentence(result.summary(), read_only=True)


def test_observe_latency_explains_what_it_could_not_read() -> None:
    class _Broken(_Kafka):
        def recent(self, topic: str, *, last: int, since: Mapping[int, int] | None = None) -> list[ChangeEvent]:
            raise StreamError("cannot read metadata of topic: Authorization failed")

    result = observe.observe_latency(
        _manifest("production"), NO_LOGINS, warehouse=_Warehouse([]), kafka=_Broken([], heartbeat_ms=None), now=NOW
    )
    assert result.latencies.empty
    notes = " | ".join(result.notes)
    assert "Authorization failed" in notes and "heartbeat" in notes and "nothing to measure read-only" in notes
    assert "cannot be judged" in target_sentence(result.summary(), read_only=True)


def test_kafka_times_equal_to_commit_times_are_not_reported_as_kafka_latency() -> None:
    t = NOW_MS - 10_000
    events = [_event(i, t + i, t + i) for i in range(10)]  # the producer stamped source.ts_ms
    warehouse = _Warehouse([_row(i, t + i, t + i + 800) for i in range(10)])
    result = observe.observe_latency(
        _manifest("production"), NO_LOGINS, warehouse=warehouse, kafka=_Kafka(events, heartbeat_ms=t), now=NOW
    )
    assert set(result.latencies["stage"]) == {END_TO_END}
    assert any("cannot be measured" in note for note in result.notes)


def test_negative_samples_are_counted_as_clock_skew() -> None:
    t = NOW_MS - 10_000
    result = observe.observe_latency(
        _manifest("production"),
        NO_LOGINS,
        warehouse=_Warehouse([_row(1, t, t - 250)]),
        kafka=_Kafka([_event(1, t, t + 100)], heartbeat_ms=t),
        now=NOW,
    )
    assert any("clocks disagree" in note and "0.35" in note for note in result.notes)


def test_read_only_needs_no_view_and_no_single_column_key() -> None:
    raw = json.loads(json.dumps(RAW))
    raw["warehouses"] = []
    raw["sources"][0]["tables"][0]["primary_key"] = ["id", "region"]
    manifest = Manifest.from_dict(raw)
    with pytest.raises(Exception, match="latest-state view and a one-column primary key"):
        choose_pipe(manifest)
    assert choose_pipe(manifest, for_markers=False).changelog_label == "payments_raw.orders"
    assert choose_pipe(manifest, "payments_raw.orders", for_markers=False).source_table.name == "orders"


def test_change_frame_shows_times_as_timestamps() -> None:
    t = NOW_MS - 1000
    frame = observe.change_frame(observe.join_samples([_row(1, t, t + 500)], [], since_ms=0, max_changes=5))
    assert frame.loc[0, "source_ts"] == pd.Timestamp(t, unit="ms", tz="UTC")
    assert pd.isna(frame.loc[0, "kafka_ts"])
