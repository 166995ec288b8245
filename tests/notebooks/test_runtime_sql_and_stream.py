"""Identifiers are quoted per dialect; Debezium envelopes decode with or without their schema."""

from __future__ import annotations

import json

from datapipe_cdk.runtime._sql import quote_bigquery, quote_mysql, quote_postgres, render
from datapipe_cdk.runtime.stream import decode


def test_identifiers_are_quoted_and_escaped() -> None:
    assert quote_bigquery(("p-1", "d", "t")) == "`p-1`.`d`.`t`"
    assert quote_bigquery("a`b") == "`a\\`b`"
    assert quote_mysql(("db", "we`ird")) == "`db`.`we``ird`"
    assert quote_postgres(("s", 'we"ird')) == '"s"."we""ird"'


def test_values_are_bound_not_rendered() -> None:
    sql = render("bigquery", "bigquery/changelog_events", table=("p", "d", "t"), key="id", marker="status")
    assert "IN UNNEST(@keys)" in sql and "`status` AS marker" in sql
    insert = render("postgres", "source/insert", table=("payments", "orders"), columns=["a", "b"], returning="id")
    assert insert.split() == 'INSERT INTO "payments"."orders" ("a", "b") VALUES (%s, %s) RETURNING "id"'.split()


def test_decode_full_envelope() -> None:
    value = json.dumps({"schema": {}, "payload": {"before": None, "after": {"id": 5}, "op": "c",
                                                  "source": {"ts_ms": 1000}, "ts_ms": 1100}}).encode()
    event = decode(value, 1200, 1.5)
    assert event is not None
    assert (event.op, event.row(), event.source_ts_ms, event.record_ts_ms) == ("c", {"id": 5}, 1000, 1200)


def test_decode_delete_uses_before_and_skips_tombstones_and_non_events() -> None:
    value = json.dumps({"before": {"id": 5}, "after": None, "op": "d", "source": {"ts_ms": 1}}).encode()
    event = decode(value, None, 0.0)
    assert event is not None and event.row() == {"id": 5}
    assert decode(None, None, 0.0) is None
    assert decode(b'{"payload": {"databaseName": "payments", "ddl": "CREATE TABLE"}}', None, 0.0) is None
    assert decode(b"not json", None, 0.0) is None
