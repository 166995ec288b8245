"""Identifiers are quoted per dialect, values are bound as parameters; Debezium envelopes decode with or without
their schema."""

from __future__ import annotations

import json
from typing import Any

import pytest

from datapipe_cdk.manifest import Source
from datapipe_cdk.runtime import source as source_module
from datapipe_cdk.runtime._sql import quote_bigquery, quote_mysql, quote_postgres, render
from datapipe_cdk.runtime.credentials import Login
from datapipe_cdk.runtime.source import SourceDatabase
from datapipe_cdk.runtime.stream import decode


def test_identifiers_are_quoted_and_escaped() -> None:
    assert quote_bigquery(("p-1", "d", "t")) == "`p-1`.`d`.`t`"
    assert quote_bigquery("a`b") == "`a\\`b`"
    assert quote_mysql(("db", "we`ird")) == "`db`.`we``ird`"
    assert quote_postgres(("s", 'we"ird')) == '"s"."we""ird"'


class _Recorder:
    """A DB-API connection (and its cursor) that records what is executed."""

    def __init__(self) -> None:
        self.executed: list[tuple[str, Any]] = []

    def cursor(self) -> _Recorder:
        return self

    def execute(self, sql: str, params: Any = None) -> None:
        self.executed.append((sql, params))

    def fetchone(self) -> None:
        return None

    def close(self) -> None:
        pass


def _source_database(monkeypatch: pytest.MonkeyPatch, engine: str, *, writable: bool = True) -> tuple[SourceDatabase, _Recorder]:
    """A SourceDatabase whose driver connection is a recorder (no server)."""
    recorder = _Recorder()
    monkeypatch.setattr(source_module.pymysql, "connect", lambda **kwargs: recorder)
    monkeypatch.setattr(source_module.psycopg, "connect", lambda **kwargs: recorder)
    source = Source("payments-db", engine, "127.0.0.1", 1, "payments", "payments", "payments-db", "payments", ())
    return SourceDatabase(source, Login("writer", "pw"), writable=writable), recorder


HOSTILE = "x'); DROP TABLE orders; --"


def test_values_are_bound_not_rendered() -> None:
    sql = render("bigquery", "bigquery/changelog_events", table=("p", "d", "t"), key="id", marker="status")
    assert "IN UNNEST(@keys)" in sql and "`status` AS marker" in sql
    insert = render("postgres", "source/insert", table=("payments", "orders"), columns=["a", "b"], returning="id")
    assert insert.split() == 'INSERT INTO "payments"."orders" ("a", "b") VALUES (%s, %s) RETURNING "id"'.split()
    delete = render("mysql", "source/delete", table=("payments", "orders"), key="id", keys=[HOSTILE, 42])
    assert delete == "DELETE FROM `payments`.`orders` WHERE `id` IN (%s, %s)"


@pytest.mark.parametrize("engine", ["mariadb", "postgresql"])
def test_source_writes_pass_values_as_parameters(monkeypatch: pytest.MonkeyPatch, engine: str) -> None:
    db, recorder = _source_database(monkeypatch, engine)
    db.update("orders", "id", HOSTILE, "status", "lp1234")
    db.delete("orders", "id", [HOSTILE, 42])
    db.insert("orders", {"id": 42, "status": HOSTILE}, "id")
    writes = [e for e in recorder.executed if not e[0].startswith("SET ")]
    [(update, update_params), (delete, delete_params), (insert, insert_params)] = writes
    assert update_params == ("lp1234", HOSTILE) and delete_params == (HOSTILE, 42) and insert_params == (42, HOSTILE)
    assert update.count("%s") == 2 and delete.count("%s") == 2 and insert.count("%s") == 2
    assert not any(value in sql for sql in (update, delete, insert) for value in (HOSTILE, "DROP", "lp1234", "42"))


def test_decode_full_envelope() -> None:
    value = json.dumps(
        {"schema": {}, "payload": {"before": None, "after": {"id": 5}, "op": "c", "source": {"ts_ms": 1000}, "ts_ms": 1100}}
    ).encode()
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
