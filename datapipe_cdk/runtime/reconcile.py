"""Reconciliation of values: every row of a source table against its latest-state view, cell by cell.

Both sides are read whole (up to ``row_limit`` rows) and brought to one canonical Python value per
declared column type before comparing, so a difference is a real one:

* integers, unsigned 64-bit integers and decimals compare as exact numbers (``1.50`` equals ``1.5``);
* floats compare exactly, a MySQL ``FLOAT`` / PostgreSQL ``real`` read as the float32 it stores;
* TIME compares in microseconds (the view's ``<column>__micros``: durations past a day included);
* DATETIME as a naive date-time, TIMESTAMP as an instant in UTC, DATE as a date;
* JSON as its text, INTERVAL as (years, months, days, hours, minutes, seconds);
* PostgreSQL text-like types (uuid, inet, json, ...) as the server prints them;
* a NULL array as an empty one (BigQuery cannot store a NULL ARRAY: it reads back as ``[]``).

Masked and hashed columns are not compared (the source holds the clear value); they are listed as
skipped with the reason. Keys are compared as tuples, so composite keys work; a key in the view but not
at the source is a deleted row still shown (a delete the pipeline never saw, e.g. TRUNCATE); a key at
the source but not in the view is a missing row.
"""

from __future__ import annotations

import datetime as dt
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from datapipe_cdk.manifest import ColumnPolicy, Pipe
from datapipe_cdk.runtime._sql import quote_bigquery, quote_mysql, quote_postgres
from datapipe_cdk.runtime.source import SourceColumn, SourceDatabase
from datapipe_cdk.runtime.warehouse import WarehouseClient

TIME_MICROS_SUFFIX = "__micros"
_ISO_INTERVAL = re.compile(r"^P(?P<y>-?\d+)Y(?P<mo>-?\d+)M(?P<d>-?\d+)DT(?P<h>-?\d+)H(?P<mi>-?\d+)M(?P<s>-?\d+(?:\.\d+)?)S$")
_FLOAT32_TYPES = ("float", "real")
_PG_TEXT_TYPES = ("uuid", "inet", "cidr", "json", "jsonb", "macaddr", "macaddr8", "xml", "money", "tsvector", "bit")


class ReconcileError(RuntimeError):
    """The table cannot be reconciled as asked (too large, no view); the message says why."""


@dataclass(frozen=True)
class Difference:
    key: tuple[Any, ...]
    column: str
    source: Any
    view: Any


@dataclass
class Reconciliation:
    """What differs between a source table and its view; ``ok`` when nothing does."""

    table: str
    source_rows: int
    view_rows: int
    compared_columns: list[str]
    skipped_columns: dict[str, str] = field(default_factory=dict)
    missing: list[tuple[Any, ...]] = field(default_factory=list)
    """Keys at the source that the view lacks."""
    extra: list[tuple[Any, ...]] = field(default_factory=list)
    """Keys the view shows that the source no longer has (deleted rows still visible)."""
    differences: list[Difference] = field(default_factory=list)
    duplicated: list[tuple[Any, ...]] = field(default_factory=list)
    """Keys the view shows more than once."""

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.differences or self.duplicated)

    @property
    def differing_columns(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for d in self.differences:
            counts[d.column] = counts.get(d.column, 0) + 1
        return counts

    def summary(self, examples: int = 3) -> str:
        parts = [f"{self.source_rows} source rows, {self.view_rows} view rows, {len(self.compared_columns)} columns compared"]
        if self.missing:
            parts.append(f"{len(self.missing)} missing, e.g. {self.missing[:examples]}")
        if self.extra:
            parts.append(
                f"{len(self.extra)} deleted at the source but shown (a delete the pipeline never saw: TRUNCATE?), "
                f"e.g. {self.extra[:examples]}"
            )
        if self.duplicated:
            parts.append(f"{len(self.duplicated)} keys shown twice, e.g. {self.duplicated[:examples]}")
        if self.differences:
            columns = ", ".join(f"{c} ({n})" for c, n in sorted(self.differing_columns.items()))
            shown = [f"{d.key} {d.column}: source {d.source!r} != view {d.view!r}" for d in self.differences[:examples]]
            parts.append(f"{len(self.differences)} cells differ in {columns}, e.g. {'; '.join(shown)}")
        if self.skipped_columns:
            parts.append("not compared: " + ", ".join(f"{c} ({why})" for c, why in self.skipped_columns.items()))
        return "; ".join(parts)


def _float32(value: float) -> float:
    return float(struct.unpack("f", struct.pack("f", value))[0])


def _interval(value: Any) -> tuple[Decimal, ...] | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return tuple(Decimal(str(v)) for v in value)
    found = _ISO_INTERVAL.match(str(value))
    if not found:
        return (Decimal("NaN"),)
    return tuple(Decimal(found.group(g)) for g in ("y", "mo", "d", "h", "mi", "s"))


def _micros(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, dt.timedelta):
        return value // dt.timedelta(microseconds=1)
    if isinstance(value, dt.time):
        return ((value.hour * 60 + value.minute) * 60 + value.second) * 1_000_000 + value.microsecond
    return int(value)


def _instant(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def _number(value: Any) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def canonical(kind: str | None, value: Any, *, float32: bool = False, repeated: bool = False) -> Any:
    """One comparable value of a declared column type (``None`` stays ``None``, except that a NULL array is
    an empty one: BigQuery stores and returns a NULL ARRAY as ``[]``)."""
    if value is None:
        return [] if repeated else None
    if kind == "INTERVAL":
        return _interval(value)
    if isinstance(value, list):
        return [canonical(kind, v, float32=float32) for v in value]
    if kind in ("INT64", "UINT64"):
        number = _number(value)
        return int(number) if number is not None and number == number.to_integral_value() else value
    if kind == "NUMERIC":
        return _number(value)
    if kind == "FLOAT64":
        real = float(value)
        return _float32(real) if float32 else real
    if kind == "BOOL":
        if isinstance(value, (bytes, bytearray)):
            return int.from_bytes(value, "big") != 0
        return bool(value)
    if kind == "BYTES":
        return bytes(value)
    if kind == "DATE":
        return value if isinstance(value, dt.date) and not isinstance(value, dt.datetime) else dt.date.fromisoformat(str(value))
    if kind == "TIME":
        return _micros(value)
    if kind == "DATETIME":
        return value.replace(tzinfo=None) if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    if kind == "TIMESTAMP":
        return _instant(value)
    if kind == "INTERVAL":
        return _interval(value)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, (set, frozenset)):
        return ",".join(sorted(value))
    return str(value)


def _source_expression(dialect: str, column: SourceColumn) -> str:
    """How to read one source column so its value is canonical (exact float32, microseconds, printed text)."""
    if dialect == "postgres":
        name = quote_postgres(column.name)
        kind = column.data_type
        if kind == "real":
            return f"{name}::float8"
        if kind in ("time", "time without time zone"):
            return f"(EXTRACT(EPOCH FROM {name}) * 1000000)::bigint"
        if kind == "interval":
            parts = ", ".join(f"EXTRACT({p} FROM {name})" for p in ("YEAR", "MONTH", "DAY", "HOUR", "MINUTE", "SECOND"))
            return f"CASE WHEN {name} IS NULL THEN NULL ELSE ARRAY[{parts}] END"
        if kind in _PG_TEXT_TYPES or column.full_type in _PG_TEXT_TYPES:
            return f"CASE WHEN {name} IS NULL THEN NULL ELSE format('%%s', {name}) END"
        return name
    name = quote_mysql(column.name)
    if column.data_type == "float":
        return f"CAST({name} AS DOUBLE)"
    if column.data_type == "set":
        return f"CAST({name} AS CHAR)"
    return name


def _declared(pipe: Pipe) -> dict[str, ColumnPolicy]:
    table = pipe.source_table
    if table.columns:
        return {c.name: c for c in table.columns if c.treatment != "excluded"}
    return {k: ColumnPolicy(k, "STRING") for k in table.primary_key}  # a key-only table carries its key as text


def reconcile(
    db: SourceDatabase,
    wh: WarehouseClient,
    pipe: Pipe,
    source_columns: Sequence[SourceColumn],
    *,
    row_limit: int = 200_000,
) -> Reconciliation:
    """Compare every row and every declared column of ``pipe``'s source table with its latest-state view."""
    if pipe.view is None or pipe.warehouse is None:
        raise ReconcileError(f"{pipe.source_label}: no latest-state view exposes it")
    declared = _declared(pipe)
    exposed = set(pipe.view.columns) or set(declared)
    present = {c.name: c for c in source_columns}
    key = list(pipe.source_table.primary_key)
    skipped: dict[str, str] = {}
    compared: list[str] = []
    for name, policy in declared.items():
        if name not in exposed:
            continue
        if policy.treatment in ("masked", "hashed"):
            skipped[name] = f"{policy.treatment} at the source"
        elif name not in present:
            skipped[name] = "gone from the source (drift)"
        else:
            compared.append(name)
    missing_key = [k for k in key if k not in present or k not in exposed]
    if missing_key:
        raise ReconcileError(f"{pipe.label}: key column(s) {missing_key} not readable on both sides")
    columns = list(dict.fromkeys([*key, *compared]))
    kinds = {name: declared[name].type for name in columns}
    arrays = {name for name in columns if declared[name].repeated}
    floats = {name for name in columns if present[name].data_type in _FLOAT32_TYPES}

    source_sql = "SELECT {} FROM {}".format(
        ", ".join(_source_expression(db.dialect, present[c]) for c in columns),
        (quote_postgres if db.dialect == "postgres" else quote_mysql)(db.qualified(pipe.source_table.name)),
    )
    source_rows = db.select(source_sql, row_limit + 1)
    if len(source_rows) > row_limit:
        raise ReconcileError(f"{pipe.label}: more than {row_limit} source rows: raise row_limit (or reconcile a sample)")
    view_names = [f"{c}{TIME_MICROS_SUFFIX}" if kinds[c] == "TIME" else c for c in columns]
    view_sql = "SELECT {} FROM {} LIMIT {}".format(
        ", ".join(quote_bigquery(n) for n in view_names),
        quote_bigquery(wh.table_path(pipe.warehouse.dataset, pipe.view.name)),
        row_limit + 1,
    )
    view_rows = [tuple(row[n] for n in view_names) for row in wh.rows(view_sql)]

    def index(rows: Sequence[Sequence[Any]]) -> tuple[dict[tuple[Any, ...], list[Any]], list[tuple[Any, ...]]]:
        found: dict[tuple[Any, ...], list[Any]] = {}
        twice = []
        for row in rows:
            values = [
                canonical(kinds[c], v, float32=c in floats, repeated=c in arrays) for c, v in zip(columns, row, strict=True)
            ]
            k = tuple(values[: len(key)])
            if k in found:
                twice.append(k)
            found[k] = values
        return found, twice

    source, _ = index(source_rows)
    view, duplicated = index(view_rows)
    result = Reconciliation(
        table=pipe.label,
        source_rows=len(source_rows),
        view_rows=len(view_rows),
        compared_columns=compared,
        skipped_columns=skipped,
        duplicated=sorted(duplicated, key=repr),
    )
    result.missing = sorted((k for k in source if k not in view), key=repr)
    result.extra = sorted((k for k in view if k not in source), key=repr)
    for k in sorted((k for k in source if k in view), key=repr):
        for position, column in enumerate(columns):
            left, right = source[k][position], view[k][position]
            if not _same(left, right):
                result.differences.append(Difference(k, column, left, right))
    return result


def _same(left: Any, right: Any) -> bool:
    if isinstance(left, float) and isinstance(right, float) and left != left and right != right:
        return True  # NaN on both sides
    return bool(left == right)
