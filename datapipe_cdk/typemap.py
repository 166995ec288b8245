"""How each column type travels, exactly: Debezium's encoding, the sink's cast, the changelog column, the view.

Measured on the local stack (Debezium 3.5/3.6, Kafka 4.3 JSON converter, the KCBQ 2.0.0-alpha Maven Central
serves, the BigQuery emulator) and kept to what is exact there and on BigQuery:

* sources emit microseconds (``time.precision.mode=adaptive_time_microseconds``), decimals as plain text
  (``decimal.handling.mode=string``), BIGINT UNSIGNED as an exact decimal
  (``bigint.unsigned.handling.mode=precise``) and intervals as ISO 8601 text;
* the sink's ``Cast`` transform turns dates, times and date-times into plain integers (days, microseconds)
  and unsigned BIGINTs and zoned timestamps into text before KCBQ sees them: its logical-type converters
  drop microseconds, shift dates before 1582, crash on TIME and on ``'infinity'``, and send decimals
  through a float;
* changelog columns hold those plain values; the latest-state views turn them back into BigQuery types.

Known limits, documented rather than hidden: MySQL ``YEAR 0000`` cannot be read by Debezium;
PostgreSQL NaN/Infinity floats arrive as 0.0 (Kafka's JSON converter); NULL elements inside arrays
are dropped by the sink, and a NULL array reads as ``[]`` (BigQuery has no NULL ARRAY); ``'infinity'``
timestamps read as NULL; a BIGNUMERIC holds 38 fractional digits (wider decimals stay exact text).
"""

from __future__ import annotations

from dataclasses import dataclass

from .schema import Column, ColumnType

MICROS_PER_DAY = 86_400_000_000
DATETIME_MICROS = (-62_135_596_800_000_000, 253_402_300_799_999_999)
"""Microseconds since the epoch of 0001-01-01 00:00:00 and 9999-12-31 23:59:59.999999: BigQuery's DATETIME range."""
TIME_MICROS_SUFFIX = "__micros"
"""A TIME column also appears in the views as ``<column>__micros``: exact for any duration."""


@dataclass(frozen=True)
class Encoding:
    """One column's journey: its changelog column type, the sink's cast (None: none) and its view type."""

    changelog_type: str
    cast: str | None
    view_type: str


def encoding(column: Column, *, binlog: bool, exact_bignumeric: bool = True) -> Encoding:
    """How ``column`` is carried. ``binlog``: a MySQL/MariaDB source (BOOL is a TINYINT there).

    ``exact_bignumeric=False`` (the local emulator, whose BIGNUMERIC holds only 38 digits and 18
    decimals) keeps decimals that need a BIGNUMERIC as their exact text.
    """
    kind = column.type
    if column.repeated:
        element = {
            ColumnType.INT64: "INTEGER",
            ColumnType.FLOAT64: "FLOAT",
            ColumnType.BOOL: "BOOLEAN",
            ColumnType.BYTES: "BYTES",
        }
        base = element.get(kind, "STRING")
        return Encoding(base, None, f"ARRAY<{_view_scalar(base)}>")
    if kind is ColumnType.UINT64:
        return Encoding("STRING", "string", "NUMERIC")
    if kind is ColumnType.NUMERIC:
        return Encoding("STRING", None, numeric_type(column, exact_bignumeric))
    if kind is ColumnType.BOOL:
        return Encoding("INTEGER", "int8", "BOOL") if binlog else Encoding("BOOLEAN", None, "BOOL")
    if kind is ColumnType.DATE:
        return Encoding("INTEGER", "int32", "DATE")
    if kind is ColumnType.TIME:
        return Encoding("INTEGER", "int64", "TIME")
    if kind is ColumnType.DATETIME:
        return Encoding("INTEGER", "int64", "DATETIME")
    if kind is ColumnType.TIMESTAMP:
        return Encoding("STRING", "string", "TIMESTAMP")
    plain = {ColumnType.INT64: "INTEGER", ColumnType.FLOAT64: "FLOAT", ColumnType.BYTES: "BYTES"}
    changelog = plain.get(kind, "STRING")  # STRING, JSON (verbatim text), INTERVAL (ISO 8601 text)
    return Encoding(changelog, None, _view_scalar(changelog))


def numeric_type(column: Column, exact_bignumeric: bool = True) -> str:
    """NUMERIC when DECIMAL(p, s) fits one (29 integer, 9 fractional digits), BIGNUMERIC when it fits that
    (38 and 38), else STRING (the exact text). Without a declared precision (PostgreSQL's unconstrained
    ``numeric`` holds up to 131072 digits): STRING, never a cast that could fail or round."""
    if column.precision is None:
        return "STRING"
    scale = column.scale or 0
    whole = column.precision - scale
    if whole <= 29 and scale <= 9:
        return "NUMERIC"
    if whole <= 38 and scale <= 38 and exact_bignumeric:
        return "BIGNUMERIC"
    return "STRING"


def _view_scalar(changelog_type: str) -> str:
    return {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL"}.get(changelog_type, changelog_type)


def view_expressions(column: Column, quoted: str, *, binlog: bool, exact_bignumeric: bool = True) -> list[tuple[str, str]]:
    """``[(expression, output name)]`` turning a changelog column (``quoted``, already quoted) into its view columns."""
    enc = encoding(column, binlog=binlog, exact_bignumeric=exact_bignumeric)
    name = column.name
    if column.repeated:
        return [(quoted, name)]
    kind = column.type
    if kind is ColumnType.UINT64 or (kind is ColumnType.NUMERIC and enc.view_type in ("NUMERIC", "BIGNUMERIC")):
        return [(f"CAST({quoted} AS {enc.view_type})", name)]
    if kind is ColumnType.BOOL and binlog:
        return [(f"{quoted} != 0", name)]
    if kind is ColumnType.DATE:
        return [(f"DATE_FROM_UNIX_DATE({quoted})", name)]
    if kind is ColumnType.TIME:
        in_day = (
            f"IF({quoted} BETWEEN 0 AND {MICROS_PER_DAY - 1}, TIME_ADD(TIME '00:00:00', INTERVAL {quoted} MICROSECOND), NULL)"
        )
        return [(in_day, name), (quoted, f"{name}{TIME_MICROS_SUFFIX}")]
    if kind is ColumnType.DATETIME:
        low, high = DATETIME_MICROS
        return [(f"IF({quoted} BETWEEN {low} AND {high}, DATETIME(TIMESTAMP_MICROS({quoted})), NULL)", name)]
    if kind is ColumnType.TIMESTAMP:
        return [(f"SAFE_CAST({quoted} AS TIMESTAMP)", name)]
    return [(quoted, name)]


def cast_spec(columns: list[Column], *, binlog: bool) -> str:
    """The sink's ``Cast$Value`` spec for one table (``col:int64,col2:string``); empty when nothing is cast."""
    parts = []
    for column in columns:
        cast = encoding(column, binlog=binlog).cast
        if cast is not None:
            parts.append(f"{column.name}:{cast}")
    return ",".join(parts)
