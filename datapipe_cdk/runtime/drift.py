"""Schema drift: what a source table really has against what the pipeline declares for it.

* a source column nobody declared never leaves the database (the connector's include list): it is
  reported, so someone declares and classifies it, and only then does it reach any view;
* a declared column gone from the source arrives NULL from then on;
* a declared type that does not fit the source type would carry wrong values (or stop the sink);
* a PostgreSQL table without ``REPLICA IDENTITY FULL`` sends unchanged large values (TOAST) as
  ``__debezium_unavailable_value`` in updates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from datapipe_cdk.manifest import ColumnPolicy, SourceTable
from datapipe_cdk.runtime.source import SourceColumn

_INTEGERS = ("tinyint", "smallint", "mediumint", "int", "integer", "bigint", "year")
_TEXT = ("char", "varchar", "character varying", "character", "text", "tinytext", "mediumtext", "longtext", "enum", "set",
         "uuid", "inet", "cidr", "citext", "user-defined", "macaddr", "json", "jsonb", "xml", "name")  # fmt: skip
_FITS: dict[str, tuple[str, ...]] = {
    "INT64": _INTEGERS,
    "UINT64": ("bigint",),
    "FLOAT64": ("float", "double", "real", "double precision"),
    "NUMERIC": ("decimal", "numeric"),
    "BOOL": ("boolean", "bit", "tinyint"),
    "BYTES": ("binary", "varbinary", "blob", "tinyblob", "mediumblob", "longblob", "bytea", "bit"),
    "DATE": ("date",),
    "TIME": ("time", "time without time zone"),
    "DATETIME": ("datetime", "timestamp without time zone"),
    "TIMESTAMP": ("timestamp", "timestamp with time zone"),
    "JSON": ("json", "jsonb", "longtext"),
    "INTERVAL": ("interval",),
    "STRING": _TEXT,
}
_TOASTABLE = ("text", "character varying", "varchar", "bytea", "json", "jsonb", "array", "numeric", "xml", "user-defined")
_ARRAY_ELEMENTS = {"INT64": ("_int2", "_int4", "_int8"), "FLOAT64": ("_float4", "_float8"), "BOOL": ("_bool",),
                   "BYTES": ("_bytea",), "STRING": ("_text", "_varchar", "_bpchar", "_uuid")}  # fmt: skip


def fitting_types(column: SourceColumn) -> list[str]:
    """The ``ColumnType`` names that carry ``column`` as it is (for a fix to suggest), most specific first."""
    if column.data_type == "bigint" and "unsigned" in column.full_type:
        return ["UINT64"]
    fits = [declared for declared, kinds in _FITS.items() if column.data_type in kinds and declared != "STRING"]
    return ["STRING", *fits] if column.data_type in _TEXT else fits


def type_misfit(policy: ColumnPolicy, column: SourceColumn) -> str | None:
    """Why ``column`` cannot be carried as ``policy`` declares it; None when it fits."""
    declared = policy.type or "STRING"
    kind, full = column.data_type, column.full_type
    unsigned = "unsigned" in full
    if policy.repeated:
        elements = _ARRAY_ELEMENTS.get(declared, ())
        if kind == "array" and full in elements:
            return None
        return f"declared an array of {declared}, source is {full}"
    if kind == "array":
        return f"source is an array ({full}): declare Column(..., repeated=True)"
    if declared == "INT64" and kind == "bigint" and unsigned:
        return "BIGINT UNSIGNED holds values past INT64: declare UINT64"
    if declared == "UINT64" and not (kind == "bigint" and unsigned):
        return f"UINT64 is for BIGINT UNSIGNED, source is {full}: declare INT64"
    if declared == "BOOL" and kind == "tinyint" and full != "tinyint(1)":
        return f"{full} holds more than 0/1: declare INT64"
    if declared == "BOOL" and kind == "bit" and full not in ("bit(1)", "bit"):
        return f"{full} holds several bits: declare BYTES"
    if declared == "BYTES" and kind == "bit" and full in ("bit(1)",):
        return "BIT(1) arrives as a boolean: declare BOOL"
    if kind not in _FITS.get(declared, ()):
        return f"declared {declared}, source is {full}"
    return None


@dataclass
class Drift:
    """One table's drift; ``problems`` fail a check, ``undeclared`` is reported for someone to act on."""

    undeclared: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    misfits: dict[str, str] = field(default_factory=dict)
    replica_identity_problem: str | None = None

    @property
    def problems(self) -> list[str]:
        found = [f"declared but gone from the source: {self.gone}"] * bool(self.gone)
        found += [f"{name}: {why}" for name, why in self.misfits.items()]
        if self.replica_identity_problem:
            found.append(self.replica_identity_problem)
        return found

    def describe(self) -> str:
        parts = list(self.problems)
        if self.undeclared:
            parts.append(f"not declared, so not carried (declare and classify them to expose them): {self.undeclared}")
        return "; ".join(parts)


def drift(table: SourceTable, columns: Sequence[SourceColumn], replica_identity: str | None) -> Drift:
    """Compare the source's columns (and, for PostgreSQL, its replica identity) with the declaration."""
    found = Drift()
    present = {c.name: c for c in columns}
    if table.columns_declared:
        declared = {c.name: c for c in table.columns}
        found.undeclared = [name for name in present if name not in declared]
        found.gone = [name for name in declared if name not in present and declared[name].treatment != "excluded"]
        for name, policy in declared.items():
            if name in present and policy.treatment != "excluded" and (why := type_misfit(policy, present[name])):
                found.misfits[name] = why
        carried = [present[n] for n in declared if n in present and declared[n].treatment != "excluded"]
    else:
        found.undeclared = [name for name in present if name not in table.primary_key]
        carried = [present[n] for n in table.primary_key if n in present]
    if replica_identity is not None and replica_identity != "full":
        large = [c.name for c in carried if c.data_type in _TOASTABLE]
        if large:
            found.replica_identity_problem = (
                f"REPLICA IDENTITY is {replica_identity.upper()}: updates that leave {large} unchanged send "
                "'__debezium_unavailable_value' for values stored out of line (TOAST); run ALTER TABLE ... "
                "REPLICA IDENTITY FULL"
            )
    return found
