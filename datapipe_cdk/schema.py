"""Tables and columns as the pipeline knows them: primary keys, types, classification."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

from . import _validate as check
from .errors import DatapipeError

IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]{0,127}"


class ColumnType(Enum):
    """What a source column holds (strings accepted in any case: ``"int64"``). Each arrives in the
    latest-state views exactly, as the type named here (see :mod:`datapipe_cdk.typemap`).

    * ``STRING``: CHAR, VARCHAR, TEXT, ENUM, SET (a comma list), uuid, inet, citext.
    * ``INT64``: TINYINT to BIGINT, unsigned up to INT UNSIGNED, YEAR; smallint, integer, bigint.
    * ``UINT64``: BIGINT UNSIGNED, up to 2^64-1 (a NUMERIC in the views; INT64 would wrap it).
    * ``FLOAT64``: FLOAT, DOUBLE, real, double precision.
    * ``NUMERIC``: DECIMAL(p, s) / numeric(p, s); give ``Column(precision=, scale=)``. The views hold
      NUMERIC up to 29 integer and 9 fractional digits, BIGNUMERIC up to 38 and 38, else (and without a
      precision: PostgreSQL's unconstrained numeric) the exact decimal text.
    * ``BOOL``: BOOLEAN, TINYINT(1), BIT(1).
    * ``BYTES``: BINARY, VARBINARY, BLOB, bytea, BIT(n).
    * ``DATE``: DATE.
    * ``TIME``: TIME(p) / time: a BigQuery TIME, plus ``<column>__micros`` (microseconds, INT64) which
      also holds what TIME cannot: MySQL durations beyond a day or negative, PostgreSQL's 24:00:00.
    * ``DATETIME``: DATETIME(p) / timestamp (no time zone), microseconds kept.
    * ``TIMESTAMP``: TIMESTAMP(p) / timestamptz, an instant in UTC, microseconds kept.
    * ``JSON``: JSON / json / jsonb, as its exact text (``PARSE_JSON`` would round numbers).
    * ``INTERVAL``: PostgreSQL interval, as ISO 8601 text (``P1Y2M3DT4H5M6.789S``).
    """

    STRING = "STRING"
    INT64 = "INT64"
    UINT64 = "UINT64"
    FLOAT64 = "FLOAT64"
    NUMERIC = "NUMERIC"
    BOOL = "BOOL"
    BYTES = "BYTES"
    DATE = "DATE"
    TIME = "TIME"
    DATETIME = "DATETIME"
    TIMESTAMP = "TIMESTAMP"
    JSON = "JSON"
    INTERVAL = "INTERVAL"

    @property
    def is_text(self) -> bool:
        """Debezium masks and hashes only text columns."""
        return self is ColumnType.STRING


class Classification(Enum):
    """How sensitive a column is; PII columns also name a DLP info type."""

    PUBLIC = "PUBLIC"
    INTERNAL = "INTERNAL"
    CONFIDENTIAL = "CONFIDENTIAL"
    PII = "PII"


class InfoType(Enum):
    """Google Sensitive Data Protection info types we classify with (and scan for)."""

    EMAIL_ADDRESS = "EMAIL_ADDRESS"
    PHONE_NUMBER = "PHONE_NUMBER"
    CREDIT_CARD_NUMBER = "CREDIT_CARD_NUMBER"
    US_SOCIAL_SECURITY_NUMBER = "US_SOCIAL_SECURITY_NUMBER"
    PERSON_NAME = "PERSON_NAME"
    STREET_ADDRESS = "STREET_ADDRESS"
    IBAN_CODE = "IBAN_CODE"
    DATE_OF_BIRTH = "DATE_OF_BIRTH"


class Treatment(Enum):
    """What the source connector does to a column before it reaches Kafka."""

    MASKED = "masked"
    HASHED = "hashed"
    EXCLUDED = "excluded"


@dataclass(frozen=True)
class Column:
    """A source column. Classify PII columns: policies follow them to every topic, table and view.

    Args:
        name: the column's name in the source table.
        type: a ``ColumnType`` (or its name, any case: ``"int64"``).
        classification: a ``Classification`` (or its name); ``PII`` columns are followed by the policies.
        info_type: for PII, the DLP ``InfoType`` it holds (or its name).
        description: documentation carried to the changelog table, the catalog and lineage.
        precision: for ``NUMERIC``, the total digits of DECIMAL(p, s) (decides NUMERIC or BIGNUMERIC).
        scale: for ``NUMERIC``, its fractional digits.
        repeated: an array column (PostgreSQL ``text[]``, ``integer[]``) of ``type`` elements. BigQuery has no
            NULL array (it reads as ``[]``) and the sink drops NULL elements.

    Strings given for the enums are converted on creation; an unknown one is refused, never kept as text.
    """

    name: str
    type: ColumnType = ColumnType.STRING
    classification: Classification | None = None
    info_type: InfoType | None = None
    description: str | None = None
    precision: int | None = None
    scale: int | None = None
    repeated: bool = False

    def __post_init__(self) -> None:
        where = f"Column({self.name!r})"
        object.__setattr__(self, "type", check.choice(where, "type", self.type, ColumnType))
        if self.classification is not None:
            object.__setattr__(self, "classification", check.choice(where, "classification", self.classification, Classification))
        if self.info_type is not None:
            object.__setattr__(self, "info_type", check.choice(where, "info_type", self.info_type, InfoType))

    def checked(self, path: str) -> Column:
        check.text(path, "column name", self.name, pattern=IDENTIFIER, rule="must be a SQL identifier")
        if self.info_type is not None and self.classification is not Classification.PII:
            raise DatapipeError(
                path, f"column {self.name!r} has an info_type, so its classification must be PII", self.classification
            )
        if self.description is not None:
            if not isinstance(self.description, str):
                raise DatapipeError(path, f"column {self.name!r} description must be a string", self.description)
            check.plain(path, f"column {self.name!r} description", self.description)
        if self.precision is not None or self.scale is not None:
            if self.type is not ColumnType.NUMERIC:
                raise DatapipeError(path, f"column {self.name!r}: precision and scale are for NUMERIC columns", self.type.value)
            precision = check.integer(path, f"column {self.name!r} precision", self.precision, minimum=1, maximum=1000)
            scale = check.integer(path, f"column {self.name!r} scale", 0 if self.scale is None else self.scale, minimum=0)
            if scale > precision:
                raise DatapipeError(path, f"column {self.name!r}: scale cannot exceed precision ({precision})", scale)
        check.flag(path, f"column {self.name!r} repeated", self.repeated)
        if self.repeated and self.type in (
            ColumnType.DATE,
            ColumnType.TIME,
            ColumnType.DATETIME,
            ColumnType.TIMESTAMP,
            ColumnType.UINT64,
        ):
            raise DatapipeError(
                path,
                f"column {self.name!r}: arrays of {self.type.value} would pass through the sink's lossy converters; "
                "exclude it (excluded=...) or store it as text in the source",
                self.type.value,
            )
        return self

    @property
    def is_pii(self) -> bool:
        return self.classification is Classification.PII


@dataclass(frozen=True)
class Table:
    """A captured table: its primary key and its columns.

    Args:
        primary_key: the key columns, in order (``["id"]``, ``["tenant_id", "order_id"]``); the
            latest-state views keep the newest row per key.
        columns: every column to capture, as ``Column``s with type and classification. Columns not
            declared here never leave the database; a table without columns fails the
            ``columns-declared`` policy unless opted out with a reason.
        description: documentation for the catalog.
        owner: who to ask about this table (wins over the source's owner), e.g. ``"group:orders@acme.com"``.
    """

    primary_key: Sequence[str]
    columns: Sequence[Column] = ()
    description: str | None = None
    owner: str | None = None

    def checked(self, path: str, name: str) -> Table:
        keys = check.sequence(path, f"tables[{name!r}].primary_key", self.primary_key)
        for key in keys:
            check.text(path, f"tables[{name!r}] primary key column", key, pattern=IDENTIFIER, rule="must be a SQL identifier")
        columns = [
            check.instance(path, f"tables[{name!r}] column", c, Column).checked(path)
            for c in check.sequence(path, f"tables[{name!r}].columns", self.columns)
        ]
        names = [c.name for c in columns]
        folded = [n.casefold() for n in names]
        if len(set(folded)) != len(folded):
            twice = sorted({n for n in names if folded.count(n.casefold()) > 1})
            raise DatapipeError(
                path, f"tables[{name!r}] lists a column twice (BigQuery column names ignore case): {', '.join(twice)}", names
            )
        if len(set(keys)) != len(keys):
            raise DatapipeError(path, f"tables[{name!r}].primary_key lists a column twice; name each key column once", keys)
        if columns:
            missing = [k for k in keys if k not in names]
            if missing:
                raise DatapipeError(path, f"tables[{name!r}] primary key columns must be among its columns", missing)
        if self.description is not None:
            if not isinstance(self.description, str):
                raise DatapipeError(path, f"tables[{name!r}] description must be a string", self.description)
            check.plain(path, f"tables[{name!r}] description", self.description)
        return Table(primary_key=tuple(keys), columns=tuple(columns), description=self.description, owner=self.owner)

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)


@dataclass(frozen=True)
class CapturedTable:
    """One table a source captures, with everything downstream constructs need to know about it."""

    name: str
    namespace: str
    """MySQL/MariaDB database or PostgreSQL schema."""
    table: Table
    topic_name: str
    treatments: Mapping[str, Treatment] = field(default_factory=dict)

    @property
    def primary_key(self) -> tuple[str, ...]:
        return tuple(self.table.primary_key)

    @property
    def qualified_name(self) -> str:
        return f"{self.namespace}.{self.name}"

    @property
    def key_only(self) -> bool:
        """Declared by its primary key alone: only the key columns are captured, as text."""
        return not self.table.columns

    def columns_reaching_kafka(self) -> list[Column]:
        """Declared columns minus excluded ones (masked/hashed columns still arrive, transformed). A table declared
        by key alone carries its key columns only, as text (their type is unknown): declare columns for the rest."""
        if self.key_only:
            return [
                Column(k, ColumnType.STRING, description="primary key column (type undeclared: as text)")
                for k in self.primary_key
            ]
        return [c for c in self.table.columns if self.treatments.get(c.name) is not Treatment.EXCLUDED]
