"""Reconciliation and drift without a database: canonical values per type, source read expressions, type fit."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from datapipe_cdk.manifest import ColumnPolicy, SourceTable
from datapipe_cdk.runtime.drift import drift, type_misfit
from datapipe_cdk.runtime.reconcile import Difference, Reconciliation, _source_expression, canonical
from datapipe_cdk.runtime.source import SourceColumn


def _column(name: str, data_type: str, full_type: str | None = None) -> SourceColumn:
    return SourceColumn(name, data_type, True, False, None, False, full_type or data_type)


@pytest.mark.parametrize(
    ("kind", "source", "view"),
    [
        ("NUMERIC", Decimal("1.5000"), Decimal("1.5")),  # scale is not a difference
        ("NUMERIC", Decimal("99999999999999.9999"), "99999999999999.9999"),  # a wide decimal kept as text
        ("UINT64", 18446744073709551615, Decimal("18446744073709551615")),
        ("TIME", dt.timedelta(hours=-838, minutes=-59, seconds=-59, microseconds=-999999), -3020399999999),
        ("TIME", dt.timedelta(microseconds=5), 5),
        ("TIMESTAMP", dt.datetime(2038, 1, 19, 3, 14, 7, 999999), dt.datetime(2038, 1, 19, 3, 14, 7, 999999, tzinfo=dt.UTC)),
        ("BOOL", b"\x01", True),
        ("BOOL", 0, False),
        (
            "INTERVAL",
            [Decimal(0), Decimal(-1), Decimal(-2), Decimal(0), Decimal(0), Decimal("-0.000001")],
            "P0Y-1M-2DT0H0M-0.000001S",
        ),
        ("STRING", 5, "5"),  # a key-only table's key, as text
        ("STRING", {"x", "z"}, "x,z"),
    ],
)
def test_equal_values_are_equal_once_canonical(kind: str, source: object, view: object) -> None:
    assert canonical(kind, source) == canonical(kind, view)


@pytest.mark.parametrize(
    ("kind", "source", "view"),
    [
        ("NUMERIC", Decimal("99999999999999.9999"), Decimal("99999999999999.991611392")),  # rounded through a float
        ("DATETIME", dt.datetime(2024, 1, 15, 12, 34, 56, 123456), dt.datetime(2024, 1, 15, 12, 34, 56, 123000)),
        ("UINT64", 18446744073709551615, -1),
        ("STRING", "", None),  # empty string is not NULL
        ("STRING", None, "********"),
        ("FLOAT64", 0.1, 0.1000001),
    ],
)
def test_lossy_values_differ(kind: str, source: object, view: object) -> None:
    assert canonical(kind, source) != canonical(kind, view)


def test_float32_columns_compare_as_the_float_they_store() -> None:
    stored = 3.4028234663852886e38  # FLOAT max as Debezium reads it
    assert canonical("FLOAT64", 3.40282e38, float32=True) != canonical("FLOAT64", stored, float32=True)
    assert canonical("FLOAT64", 3.4028234663852886e38, float32=True) == canonical("FLOAT64", stored, float32=True)


def test_source_columns_are_read_exactly() -> None:
    assert _source_expression("mysql", _column("f", "float")) == "CAST(`f` AS DOUBLE)"
    assert _source_expression("mysql", _column("s", "set")) == "CAST(`s` AS CHAR)"
    assert _source_expression("postgres", _column("t", "time without time zone")) == '(EXTRACT(EPOCH FROM "t") * 1000000)::bigint'
    assert _source_expression("postgres", _column("r", "real")) == '"r"::float8'
    assert _source_expression("postgres", _column("i", "inet")) == 'CASE WHEN "i" IS NULL THEN NULL ELSE format(\'%%s\', "i") END'
    assert _source_expression("postgres", _column("ts", "timestamp with time zone")) == '"ts"'


def test_a_reconciliation_names_the_keys_and_columns_that_differ() -> None:
    result = Reconciliation("wh.orders", 3, 3, ["id", "amount"])
    assert result.ok
    result.differences.append(Difference((7, "eu"), "amount", Decimal("1.50"), Decimal("1.49")))
    result.extra.append((9, "eu"))
    summary = result.summary()
    assert not result.ok
    assert "1 cells differ in amount (1)" in summary and "(7, 'eu') amount" in summary
    assert "1 deleted at the source but shown (a delete the pipeline never saw: TRUNCATE?)" in summary


@pytest.mark.parametrize(
    ("declared", "source", "why"),
    [
        (ColumnPolicy("n", "INT64"), _column("n", "bigint", "bigint(20) unsigned"), "BIGINT UNSIGNED holds values past INT64"),
        (ColumnPolicy("b", "BOOL"), _column("b", "tinyint", "tinyint(4)"), "tinyint(4) holds more than 0/1"),
        (ColumnPolicy("d", "DATE"), _column("d", "datetime", "datetime(6)"), "declared DATE, source is datetime(6)"),
        (ColumnPolicy("a", "STRING"), _column("a", "array", "_text"), "declare Column(..., repeated=True)"),
        (ColumnPolicy("a", "INT64", repeated=True), _column("a", "array", "_text"), "declared an array of INT64"),
    ],
)
def test_declared_types_that_do_not_fit_the_source_are_named(declared: ColumnPolicy, source: SourceColumn, why: str) -> None:
    misfit = type_misfit(declared, source)
    assert misfit is not None and why in misfit


def test_fitting_declarations_pass() -> None:
    pairs = [
        (ColumnPolicy("n", "UINT64"), _column("n", "bigint", "bigint(20) unsigned")),
        (ColumnPolicy("b", "BOOL"), _column("b", "tinyint", "tinyint(1)")),
        (ColumnPolicy("t", "TIMESTAMP"), _column("t", "timestamp with time zone", "timestamptz")),
        (ColumnPolicy("a", "STRING", repeated=True), _column("a", "array", "_text")),
        (ColumnPolicy("j", "JSON"), _column("j", "longtext")),  # MariaDB's JSON
    ]
    assert [type_misfit(p, c) for p, c in pairs] == [None] * len(pairs)


def test_drift_reports_undeclared_gone_and_toast_risk() -> None:
    table = SourceTable(
        "orders", ("id",), "t", (ColumnPolicy("id", "INT64"), ColumnPolicy("note", "STRING"), ColumnPolicy("old", "STRING"))
    )
    found = drift(table, [_column("id", "integer", "int4"), _column("note", "text"), _column("vat", "numeric")], "default")
    assert found.undeclared == ["vat"]
    assert found.gone == ["old"]
    assert found.replica_identity_problem is not None and "REPLICA IDENTITY FULL" in found.replica_identity_problem
    assert "not declared, so not carried" in found.describe()
    clean = drift(table, [_column("id", "integer", "int4"), _column("note", "text"), _column("old", "text")], "full")
    assert not clean.problems and not clean.undeclared
