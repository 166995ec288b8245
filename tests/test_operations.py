"""Snapshots and replays as commands, without services: the signal channel every source gets, what deploy signals,
the signal rows and DDL, pause/resume against a fake Connect, and dead-letter replay converting records with the
sink's own transform chain (read from the synthesized sink config) and resuming where it should."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from typing import Any

import pytest

from datapipe_cdk import BigQuerySink, CdcSource, Column, ColumnType, DatapipeError, Table
from datapipe_cdk.cli import main
from datapipe_cdk.connect_api import ConnectorState
from datapipe_cdk.manifest import Manifest
from datapipe_cdk.runtime import operations, replay
from datapipe_cdk.runtime.replay import Dropped, Outcome, ReplayError, SinkChain, Unconvertible

from .conftest import make_stack, resources, synth_stack

ITEMS = Table(
    ["id"],
    [
        Column("id", ColumnType.INT64),
        Column("name"),
        Column("active", ColumnType.BOOL),
        Column("born", ColumnType.DATE),
        Column("seen_at", ColumnType.DATETIME),
        Column("big", ColumnType.UINT64),
        Column("at", ColumnType.TIMESTAMP),
    ],
)
KEYED = Table(["id"], [Column("id", ColumnType.INT64), Column("note")])


def _app(stack: Any, engine: str = "mariadb", tables: dict[str, Table] | None = None) -> tuple[dict[str, Any], Manifest]:
    source = CdcSource(
        stack, "ops-db", engine=engine, host="db", database="opsdb", tables=tables or {"items": ITEMS}, topic_prefix="ops"
    )
    BigQuerySink(stack, "ops-raw", source=source, dataset="ops_raw")
    doc = synth_stack(stack)
    return doc, Manifest.from_dict(doc["output"]["datapipe_manifest"]["value"])


def _config(doc: dict[str, Any], name: str) -> dict[str, str]:
    return next(c for c in resources(doc, "kafka-connect_connector") if c["name"] == name)["config"]


# --- the signal channel ---------------------------------------------------------------------------


def test_every_source_reads_its_signal_table_and_drops_its_events_before_kafka(stack):
    doc, manifest = _app(stack)
    config = _config(doc, "ops-db")
    assert config["signal.enabled.channels"] == "source"
    assert config["signal.data.collection"] == "opsdb.debezium_signal"
    # Debezium reads signals from the change events: the column filter must let the three columns through
    assert config["column.include.list"].endswith(
        r",opsdb\.debezium_signal\.id,opsdb\.debezium_signal\.type,opsdb\.debezium_signal\.data"
    )
    assert config["transforms"] == "dropSignals"
    assert config["transforms.dropSignals.type"] == "org.apache.kafka.connect.transforms.Filter"
    assert config["predicates.isSignal.pattern"] == r"ops\.opsdb\.debezium_signal"
    assert "debezium_signal" not in " ".join(t["name"] for t in resources(doc, "kafka_topic"))  # no topic, no ACL
    assert manifest.sources[0].signal_table == "opsdb.debezium_signal"


def test_a_postgres_source_signals_through_its_schema(stack):
    doc, manifest = _app(stack, engine="postgresql")
    assert _config(doc, "ops-db")["signal.data.collection"] == "public.debezium_signal"
    assert manifest.sources[0].signal_table == "public.debezium_signal"


def test_the_signal_table_cannot_be_captured_nor_its_settings_overridden(stack):
    with pytest.raises(DatapipeError, match="debezium_signal is the source's Debezium signal table"):
        CdcSource(stack, "a", engine="mysql", host="db", database="d", tables={"debezium_signal": KEYED})
    with pytest.raises(DatapipeError, match=r"must not set 'signal\.data\.collection'"):
        CdcSource(
            stack,
            "b",
            engine="mysql",
            host="db",
            database="d",
            tables={"t": KEYED},
            extra_config={"signal.data.collection": "d.other"},
        )


# --- what deploy signals, the signal row, the DDL -------------------------------------------------


def test_deploy_signals_only_tables_added_to_a_source_that_was_running():
    before = _app(make_stack(stack_id="ops"), tables={"items": ITEMS})[1]
    after = _app(make_stack(stack_id="ops"), tables={"items": ITEMS, "extras": KEYED})[1]
    assert operations.added_tables(before, after) == {"ops-db": ["extras"]}
    assert operations.added_tables(None, after) == {}  # a first deploy snapshots every table anyway
    assert operations.added_tables(after, after) == {}
    no_signal = replace(after, sources=[replace(after.sources[0], signal_table=None)])
    assert operations.added_tables(before, no_signal) == {}


def test_the_snapshot_signal_names_captured_tables_only():
    source = _app(make_stack(), tables={"items": ITEMS, "extras": KEYED})[1].sources[0]
    signal_id, kind, data = operations.snapshot_signal(source, ["extras"], "s-1")
    assert (signal_id, kind, json.loads(data)) == (
        "s-1",
        "execute-snapshot",
        {"data-collections": ["opsdb.extras"], "type": "incremental"},
    )
    with pytest.raises(operations.OperationError, match=r"source ops-db does not capture nope \(captured: items, extras\)"):
        operations.snapshot_signal(source, ["nope"])


def test_the_signal_table_ddl_names_the_login_and_the_publication():
    mysql = _app(make_stack())[1].sources[0]
    assert operations.signal_table_ddl(mysql) == (
        "CREATE TABLE `opsdb`.`debezium_signal` (id VARCHAR(42) PRIMARY KEY, type VARCHAR(32) NOT NULL, "
        "data VARCHAR(2048) NULL);\n"
        "GRANT SELECT, INSERT ON `opsdb`.`debezium_signal` TO 'debezium'@'%';\n"
    )
    pg = _app(make_stack(), engine="postgresql")[1].sources[0]
    ddl = operations.signal_table_ddl(pg, "ops_publication")
    assert 'GRANT SELECT, INSERT ON "public"."debezium_signal" TO "debezium";' in ddl
    assert 'ALTER PUBLICATION "ops_publication" ADD TABLE "public"."debezium_signal";' in ddl


def test_snapshot_refuses_a_malformed_table_before_loading_the_app(capsys):
    assert main(["snapshot", "--app", "missing.py", "--table", "orders"]) == 64
    assert "--table must be SOURCE.TABLE" in capsys.readouterr().err


# --- pause / resume -------------------------------------------------------------------------------


class FakeConnect:
    url = "http://connect"

    def __init__(self, *names: str) -> None:
        self.states = {n: "RUNNING" for n in names}
        self.tasks: list[dict[str, Any]] = []

    def pause(self, name: str) -> bool:
        if name in self.states:
            self.states[name] = "PAUSED"
        return name in self.states

    def resume(self, name: str) -> bool:
        if name in self.states:
            self.states[name] = "RUNNING"
        return name in self.states

    def status(self, name: str) -> ConnectorState:
        return ConnectorState(name, self.states[name], (self.states[name],))

    def connectors(self) -> list[str]:
        return sorted(self.states)

    def wait_running(self, names: list[str], timeout: float = 0) -> float:
        assert all(self.states[n] == "RUNNING" for n in names)
        return 0.0

    def call(self, method: str, path: str) -> tuple[int, Any]:
        return 200, self.tasks


def test_pause_and_resume_wait_for_the_state_and_name_unknown_connectors():
    client: Any = FakeConnect("ops-db")
    assert operations.pause_connector(client, "ops-db").state == "PAUSED"
    assert operations.resume_connector(client, "ops-db").state == "RUNNING"
    with pytest.raises(operations.OperationError, match=r"has no connector 'opz-db' \(connectors: ops-db\)"):
        operations.pause_connector(client, "opz-db")


def test_deploy_waits_until_the_running_tasks_capture_the_added_table():
    client: Any = FakeConnect("ops-db")
    client.tasks = [{"config": {"table.include.list": r"opsdb\.items,opsdb\.extras"}}]
    operations.wait_until_captured(client, "ops-db", ["opsdb.extras"], settle_s=0)
    client.tasks = [{"config": {"table.include.list": r"opsdb\.items"}}]
    with pytest.raises(operations.OperationError, match=r"still does not capture opsdb\.extras"):
        operations.wait_until_captured(client, "ops-db", ["opsdb.extras"], timeout=0, settle_s=0)


# --- dead-letter replay ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chain() -> SinkChain:
    doc, _ = _app(make_stack())
    return SinkChain.from_config(_config(doc, "ops-raw"))


TOPIC = "ops.opsdb.items"
SOURCE = {
    "version": "3.5",
    "connector": "mariadb",
    "ts_ms": 1_700_000_000_123,
    "snapshot": "false",
    "db": "opsdb",
    "table": "items",
    "server_id": 1,
    "gtid": None,
    "file": "bin.000003",
    "pos": 1234,
    "row": 0,
}
ROW = {
    "id": 7,
    "name": "seven",
    "active": 1,
    "born": 19000,
    "seen_at": 1_700_000_000_123_456,
    "big": base64.b64encode((2**64 - 1).to_bytes(9, "big", signed=True)).decode(),
    "at": "2024-01-02T03:04:05.123456Z",
}
ROW_SCHEMA = [
    {"field": "id", "type": "int64"},
    {"field": "name", "type": "string", "optional": True},
    {"field": "active", "type": "int16", "optional": True},
    {"field": "born", "type": "int32", "name": "io.debezium.time.Date", "optional": True},
    {"field": "seen_at", "type": "int64", "name": "io.debezium.time.MicroTimestamp", "optional": True},
    {
        "field": "big",
        "type": "bytes",
        "name": "org.apache.kafka.connect.data.Decimal",
        "parameters": {"scale": "0"},
        "optional": True,
    },
    {"field": "at", "type": "string", "name": "io.debezium.time.ZonedTimestamp", "optional": True},
]
SOURCE_SCHEMA = [{"field": k, "type": "string", "optional": True} for k in SOURCE]


def envelope(op: str, before: dict[str, Any] | None, after: dict[str, Any] | None, *, schema: bool = True) -> bytes:
    payload = {"before": before, "after": after, "source": SOURCE, "op": op, "ts_ms": 1_700_000_000_200}
    if not schema:
        return json.dumps(payload).encode()
    row = {"type": "struct", "optional": True, "fields": ROW_SCHEMA}
    fields = [
        {**row, "field": "before"},
        {**row, "field": "after"},
        {"type": "struct", "field": "source", "fields": SOURCE_SCHEMA},
        {"type": "string", "field": "op"},
        {"type": "int64", "field": "ts_ms", "optional": True},
    ]
    return json.dumps(
        {"schema": {"type": "struct", "name": "ops.opsdb.items.Envelope", "fields": fields}, "payload": payload}
    ).encode()


EXPECTED = {
    "id": 7,
    "name": "seven",
    "active": 1,
    "born": 19000,
    "seen_at": 1_700_000_000_123_456,
    "big": "18446744073709551615",
    "at": "2024-01-02T03:04:05.123456Z",
    "__deleted": "false",
    "__op": "u",
    "__source_ts_ms": 1_700_000_000_123,
    "__snapshot": "false",
    "__file": "bin.000003",
    "__pos": 1234,
    "__row": 0,
    "__server_id": 1,
    "__gtid": None,
}


def test_the_chain_is_read_from_the_sink_config(chain):
    assert chain.unwrap is not None and chain.unwrap.delete_mode == "rewrite"
    assert chain.unwrap.add_fields == ("op", "source.ts_ms", "snapshot", "file", "pos", "row", "server_id", "gtid")
    assert chain.kafka_field == "_kafka"
    assert [(c.spec, c.applies_to(TOPIC), c.applies_to("ops.opsdb.other")) for c in chain.casts] == [
        ((("active", "int8"), ("born", "int32"), ("seen_at", "int64"), ("big", "string"), ("at", "string")), True, False)
    ]


def test_an_update_becomes_the_row_the_sink_writes(chain):
    assert chain.row(TOPIC, envelope("u", None, ROW)) == EXPECTED


def test_a_delete_becomes_its_before_row_marked_deleted_and_a_tombstone_is_dropped(chain):
    row = chain.row(TOPIC, envelope("d", ROW, None))
    assert (row["__deleted"], row["__op"], row["id"]) == ("true", "d", 7)
    with pytest.raises(Dropped, match="tombstone"):
        chain.row(TOPIC, None)


def test_a_record_without_the_envelope_is_read_as_its_payload(chain):
    plain = {**ROW, "big": 2**64 - 1}  # written by a tool: a plain number, no Connect Decimal
    assert chain.row(TOPIC, envelope("u", None, plain, schema=False)) == EXPECTED


def test_records_the_sink_cannot_convert_fail_for_the_same_reason(chain):
    with pytest.raises(Unconvertible, match=r"Cast of seen_at to int64 fails: '2024-01-01 10:00:00' is not an int64"):
        chain.row(TOPIC, envelope("u", None, {**ROW, "seen_at": "2024-01-01 10:00:00"}, schema=False))
    with pytest.raises(Unconvertible, match="not JSON"):
        chain.row(TOPIC, b"\x00garbage")
    with pytest.raises(Unconvertible, match="not a Debezium change event"):
        chain.row(TOPIC, b'{"id": 1}')


def test_a_transform_replay_cannot_repeat_is_refused():
    with pytest.raises(ReplayError, match="transform route"):
        SinkChain.from_config({"transforms": "route", "transforms.route.type": "org.apache.kafka.connect.transforms.RegexRouter"})


@pytest.mark.parametrize(
    "value, target, expected",
    [
        (200, "int8", -56), (True, "int8", 1), (3.9, "int16", 3), (2**40 + 5, "int32", 5), ("-12", "int64", -12),
        (1e10, "string", "1.0E10"), (0.001, "string", "0.001"), (1234567.0, "string", "1234567.0"), (1e7, "string", "1.0E7"),
        (1.5e-5, "string", "1.5E-5"), (False, "string", "false"), ("x", "string", "x"), (None, "int64", None),
        (0.5, "boolean", False), (2, "boolean", True), ("TRUE", "boolean", True), (" 1.5e3d ", "float64", 1500.0),
    ],
)  # fmt: skip
def test_cast_follows_kafkas_semantics(value, target, expected):
    assert replay.cast(value, target) == expected


@pytest.mark.parametrize(
    "value, target", [("128", "int8"), ("1.5", "int32"), (" 1", "int64"), ([1], "string"), ("1_0", "float64")]
)
def test_cast_fails_where_kafkas_cast_throws(value, target):
    with pytest.raises(Unconvertible):
        replay.cast(value, target)


class Message:
    def __init__(self, offset: int, value: bytes | None, origin: tuple[str, int, int] | None = (TOPIC, 0, 41)) -> None:
        self._offset, self._value = offset, value
        self._headers = (
            []
            if origin is None
            else [
                ("__connect.errors.topic", origin[0].encode()),
                ("__connect.errors.partition", str(origin[1]).encode()),
                ("__connect.errors.offset", str(origin[2]).encode()),
            ]
        )

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> list[tuple[str, bytes]]:
        return self._headers


def test_a_replayed_row_keeps_the_original_kafka_position(chain):
    _, manifest = _app(make_stack())
    tables = {t.topic: t for t in manifest.sinks[0].tables}
    pending = replay.convert(Message(3, envelope("u", None, ROW)), chain, tables, "dlq.ops-raw", 1_800_000_000.5)
    assert isinstance(pending, replay._Pending)
    assert pending.row["_kafka"] == {"topic": TOPIC, "partition": 0, "offset": 41, "insertTime": 1_800_000_000.5}
    assert (pending.outcome.table, pending.insert_id) == ("ops_opsdb_items", "dlq.ops-raw:0:3")
    missing = replay.convert(Message(4, envelope("u", None, ROW), origin=None), chain, tables, "dlq.ops-raw", 0.0)
    assert isinstance(missing, Outcome) and missing.status == "failed" and "errors.deadletterqueue" in missing.detail


def test_a_row_insertall_refuses_fails_alone():
    calls: list[int] = []

    def insert(table: str, rows: Any, ids: Any) -> list[dict[str, Any]]:
        calls.append(len(rows))
        bad = [i for i, r in enumerate(rows) if r["id"] == 2]
        return [{"index": i, "errors": [{"message": "no such field: oops"}]} for i in bad]

    pending = [replay._Pending(Outcome(0, n, "o", "t", "delivered"), {"id": n}, f"d:0:{n}") for n in (1, 2, 3)]
    done = replay._write(insert, "p.d.t", pending)
    assert [(o.dlq_offset, o.status) for o in done] == [(1, "delivered"), (2, "failed"), (3, "delivered")]
    assert "insertAll refused: no such field: oops" in done[1].detail
    assert calls == [3, 1, 1, 1]


def test_replay_resumes_past_what_it_read_but_not_past_a_failure():
    ok, bad = Outcome(0, 5, "o", "t", "delivered"), Outcome(0, 6, "o", "t", "failed", "x")
    assert replay.resume_offsets([ok, Outcome(0, 6, "o", "t", "dropped")], {0: 5}) == {0: 7}
    assert replay.resume_offsets([ok, bad, Outcome(0, 7, "o", "t", "delivered")], {0: 5}) == {0: 6}
    assert replay.resume_offsets([bad], {0: 6}) == {}  # a failed first record: nothing moves
    assert replay.group_of("ops-raw") == "datapipe-dlq-replay-ops-raw"
