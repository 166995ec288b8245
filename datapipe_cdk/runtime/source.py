"""A source database seen through a login: introspection, counts, keys and (opted in) probe writes.

PyMySQL for MariaDB/MySQL, psycopg for PostgreSQL; both use ``%s`` placeholders and autocommit, so
every write is committed when the call returns (that instant is a probe's start time).

A connection is read-only unless opened with ``writable=True``: its session is set read-only in the
database (``SET SESSION TRANSACTION READ ONLY`` / ``SET SESSION CHARACTERISTICS AS TRANSACTION READ
ONLY``), and ``insert``/``update``/``delete`` raise :class:`ReadOnlyError` before sending anything.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

import psycopg
import pymysql

from datapipe_cdk.manifest import Source
from datapipe_cdk.runtime._sql import render
from datapipe_cdk.runtime.credentials import Login
from datapipe_cdk.runtime.writes import ReadOnlyError


class SourceError(RuntimeError):
    """The source cannot be used as asked; the message names the table and the reason."""


DATABASE_ERRORS: tuple[type[Exception], ...] = (pymysql.err.Error, psycopg.Error, SourceError)
"""What a source query can raise: the drivers' errors and ours."""


class _Cursor(Protocol):
    def execute(self, query: Any, params: Any = ...) -> Any: ...
    def fetchall(self) -> Sequence[Sequence[Any]]: ...
    def fetchmany(self, size: int) -> Sequence[Sequence[Any]]: ...
    def fetchone(self) -> Sequence[Any] | None: ...
    @property
    def lastrowid(self) -> Any: ...


@dataclass(frozen=True)
class SourceColumn:
    name: str
    data_type: str
    nullable: bool
    has_default: bool
    max_length: int | None
    generated: bool
    full_type: str

    @property
    def is_text(self) -> bool:
        return self.data_type in (
            "varchar",
            "character varying",
            "char",
            "character",
            "text",
            "tinytext",
            "mediumtext",
            "longtext",
        )

    @property
    def is_integer(self) -> bool:
        return self.data_type in ("int", "integer", "bigint", "smallint", "mediumint", "tinyint")


_READ_ONLY_SESSION = {
    "mysql": "SET SESSION TRANSACTION READ ONLY",
    "postgres": "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
}

_INT_RANGES = {"tinyint": 127, "smallint": 32_767, "mediumint": 8_388_607, "int": 2_147_483_647, "integer": 2_147_483_647}


def filler(column: SourceColumn, tag: str) -> object:
    """A harmless value for a required column with no default (``tag`` keeps strings unique)."""
    kind = column.data_type
    if column.is_text:
        return tag[: column.max_length] if column.max_length else tag
    if column.is_integer or kind in ("decimal", "numeric", "float", "double", "real", "double precision"):
        return 0
    if kind in ("boolean", "bool", "bit"):
        return False
    if kind == "date":
        return dt.date.today()
    if kind.startswith("timestamp") or kind == "datetime":
        return dt.datetime.now(dt.UTC).replace(tzinfo=None)
    if kind.startswith("time"):
        return dt.time(0, 0)
    if kind in ("json", "jsonb"):
        return "{}"
    if kind == "uuid":
        return str(uuid.uuid4())
    if kind == "enum" and (values := re.findall(r"'((?:[^']|'')*)'", column.full_type)):
        return values[0].replace("''", "'")
    if kind in ("blob", "bytea", "binary", "varbinary", "longblob", "mediumblob", "tinyblob"):
        return b""
    raise SourceError(f"column {column.name} of type {column.full_type} needs a value the probe cannot invent")


def new_key(column: SourceColumn) -> object:
    """A fresh primary-key value for a key the database does not generate."""
    if column.is_integer:
        top = _INT_RANGES.get(column.data_type, 9_000_000_000_000_000_000)
        return top - secrets.randbelow(top // 100)
    if column.data_type == "uuid":
        return str(uuid.uuid4())
    if column.is_text:
        return ("lp" + secrets.token_hex(16))[: column.max_length or 34]
    if column.data_type in ("decimal", "numeric"):
        return Decimal(secrets.randbelow(10**9))
    raise SourceError(f"primary key column {column.name} of type {column.full_type} is not supported by the probe")


class SourceDatabase:
    """One connection to a source; use as a context manager or call ``close()``.

    Read-only unless ``writable`` (only the probes ask for that, after ``writes.require_probe_writes``).
    """

    def __init__(self, source: Source, login: Login, *, writable: bool = False) -> None:
        self.source = source
        self.dialect = "postgres" if source.is_postgres else "mysql"
        self.writable = writable
        if source.is_postgres:
            self._conn: Any = psycopg.connect(
                host=source.host,
                port=source.port,
                user=login.user,
                password=login.password,
                dbname=source.database,
                autocommit=True,
                connect_timeout=5,
            )
        else:
            self._conn = pymysql.connect(
                host=source.host,
                port=source.port,
                user=login.user,
                password=login.password,
                database=source.database,
                autocommit=True,
                connect_timeout=5,
            )
        try:
            with self._cursor() as cur:
                if not source.is_postgres:  # TIMESTAMP values read and written as UTC, like Debezium's
                    cur.execute("SET time_zone = '+00:00'")
                if not writable:
                    cur.execute(_READ_ONLY_SESSION[self.dialect])
        except BaseException:
            self._conn.close()
            raise

    def _require_writable(self, what: str) -> None:
        if not self.writable:
            raise ReadOnlyError(f"source {self.source.name} is open read-only: refusing to {what}")

    def __enter__(self) -> SourceDatabase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def _cursor(self) -> Iterator[_Cursor]:
        cursor = self._conn.cursor()
        try:
            yield cursor
        finally:
            cursor.close()

    def qualified(self, table: str) -> tuple[str, str]:
        """(schema or database, table) as the source names it."""
        namespace = self.source.schema if self.source.is_postgres else self.source.database
        return (namespace or "public", table)

    def _sql(self, template: str, **context: object) -> str:
        return render(self.dialect, f"source/{template}", **context)

    def columns(self, table: str) -> list[SourceColumn]:
        with self._cursor() as cur:
            cur.execute(self._sql("columns"), self.qualified(table))
            rows = cur.fetchall()
        if not rows:
            raise SourceError(f"table {'.'.join(self.qualified(table))} not found in source {self.source.name}")
        return [
            SourceColumn(
                str(r[0]),
                str(r[1]).lower(),
                str(r[2]).upper() == "YES",
                r[3] is not None,
                int(r[4]) if r[4] is not None else None,
                bool(r[5]),
                str(r[6]).lower(),
            )
            for r in rows
        ]

    def select(self, sql: str, limit: int) -> list[tuple[Any, ...]]:
        """Up to ``limit`` rows of a SELECT the caller built from quoted identifiers (``%%`` for a literal %)."""
        with self._cursor() as cur:
            cur.execute(sql, ())
            rows = cur.fetchmany(limit)
        return [tuple(r) for r in rows]

    def replica_identity(self, table: str) -> str | None:
        """PostgreSQL's REPLICA IDENTITY of ``table``: ``full``, ``default``, ``index`` or ``nothing`` (None elsewhere)."""
        if not self.source.is_postgres:
            return None
        with self._cursor() as cur:
            cur.execute(
                "SELECT c.relreplident FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relname = %s",
                self.qualified(table),
            )
            row = cur.fetchone()
        return {"f": "full", "d": "default", "i": "index", "n": "nothing"}.get(str(row[0])) if row else None

    def count(self, table: str) -> int:
        with self._cursor() as cur:
            cur.execute(self._sql("count", table=self.qualified(table)))
            row = cur.fetchone()
        return int(row[0]) if row else 0

    def keys(self, table: str, key: str, limit: int) -> list[object]:
        with self._cursor() as cur:
            cur.execute(self._sql("keys", table=self.qualified(table), key=key), (limit,))
            return [r[0] for r in cur.fetchall()]

    def insert(self, table: str, values: dict[str, object], key: str) -> object:
        """Insert one row; returns its primary key (the given one, or the one the database made)."""
        self._require_writable(f"insert into {table}")
        with self._cursor() as cur:
            sql = self._sql(
                "insert", table=self.qualified(table), columns=list(values), returning=key if self.source.is_postgres else None
            )
            cur.execute(sql, tuple(values.values()))
            if self.source.is_postgres:
                row = cur.fetchone()
                return row[0] if row else values.get(key)
            return values[key] if key in values else cur.lastrowid

    def update(self, table: str, key: str, key_value: object, column: str, value: object) -> None:
        self._require_writable(f"update {table}")
        with self._cursor() as cur:
            cur.execute(self._sql("update", table=self.qualified(table), column=column, key=key), (value, key_value))

    def delete(self, table: str, key: str, key_values: Sequence[object]) -> None:
        if not key_values:
            return
        self._require_writable(f"delete from {table}")
        with self._cursor() as cur:
            cur.execute(self._sql("delete", table=self.qualified(table), key=key, keys=key_values), tuple(key_values))
