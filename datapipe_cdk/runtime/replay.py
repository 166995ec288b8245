"""Re-deliver a sink's dead-lettered records into its changelog tables, as the sink would have written them.

With ``errors.tolerance=all`` a record the sink's converter or transforms reject goes to the sink's
dead-letter topic (``dlq.<sink>``), with Connect's headers naming where it came from
(``__connect.errors.topic`` / ``partition`` / ``offset``); the row it carried stays stale in the views.

**Why not produce it into the source topic again.** Latest-state views and compaction rank a key's events
by ``_kafka.offset`` (see :mod:`datapipe_cdk.compaction`). Re-produced, the record would get a new, higher
offset and outrank every newer change of its key. Replay therefore writes the changelog row itself, with
``_kafka`` = the record's *original* topic, partition and offset (and ``insertTime`` = now, as the sink
sets it), through BigQuery's ``insertAll`` (the API the sink uses; the local emulator endpoint comes from
the manifest): the row takes exactly the place in its key's history that the sink would have given it.

**The row is built by the sink's own chain, read from its connector config** (not re-derived):

1. the value's JSON, with or without the ``schema`` / ``payload`` envelope (a record re-published by a
   tool that writes plain JSON lacks it, which is what the sink's converter refused);
2. ``ExtractNewRecordState`` (``transforms.unwrap.*``): ``after`` for creates, updates and snapshot reads;
   ``before`` plus ``__deleted = 'true'`` for deletes (``rewrite``); tombstones and truncates are dropped,
   as the sink drops them; ``add.fields`` (``op``, ``source.ts_ms``, the position fields) become ``__op``,
   ``__source_ts_ms``, ``__<field>``;
3. each ``Cast$Value`` whose topic predicate matches, with Kafka's semantics (numbers narrowed, strings
   parsed strictly, ``Decimal`` bytes decoded; :func:`cast`);
4. the row as KCBQ writes it (bytes stay base64, ``NULL`` array elements dropped), plus ``_kafka``.

A record that still fails (not JSON, not a change event, a cast that fails again, a row ``insertAll``
refuses) is reported with the reason, never dropped.

**Once.** Progress is the consumer group ``datapipe-dlq-replay-<sink>`` on the dead-letter topic. Per
partition it commits past every record delivered or dropped as the sink drops it, up to the first record
that failed: that one (and any later record) is read again by the next replay, after the next fix. Rows
carry a stable ``insertId`` (``<dead-letter topic>:<partition>:<offset>``), which BigQuery and the
emulator use to drop a re-sent row. The login (``DATAPIPE_KAFKA_USERNAME``, else the local admin) needs
Read on the dead-letter topic and Read on that group.
"""

from __future__ import annotations

import base64
import json
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from datapipe_cdk.manifest import KafkaEndpoint, Sink, SinkTable
from datapipe_cdk.runtime.credentials import Login
from datapipe_cdk.runtime.sink_health import _header
from datapipe_cdk.runtime.stream import StreamError, _partitions, _read_until, consumer_config

GROUP_PREFIX = "datapipe-dlq-replay-"
KAFKA_FIELD_KEY = "kafkaDataFieldName"
UNWRAP = "io.debezium.transforms.ExtractNewRecordState"
CAST = "org.apache.kafka.connect.transforms.Cast$Value"
TOPIC_MATCHES = "org.apache.kafka.connect.transforms.predicates.TopicNameMatches"
DECIMAL = "org.apache.kafka.connect.data.Decimal"
DELETED = "__deleted"
"""The field ExtractNewRecordState's rewrite modes add (its name ignores ``add.fields.prefix``)."""
_TOP_LEVEL = {"op", "ts_ms", "ts_us", "ts_ns"}
_TRANSACTION = {"id", "total_order", "data_collection_order"}
_INT_BITS = {"int8": 8, "int16": 16, "int32": 32, "int64": 64}
_JAVA_INT = re.compile(r"[+-]?[0-9]+")
_JAVA_FLOAT = re.compile(r"[+-]?(NaN|Infinity|([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?[fFdD]?)")
BATCH = 500


class ReplayError(RuntimeError):
    """The sink cannot be replayed as configured; the message names what and why."""


class Unconvertible(ValueError):
    """One record cannot be turned into a changelog row; the message says why."""


class Dropped(Exception):
    """The sink drops this record by design (a tombstone, a truncate): nothing to write."""


def group_of(sink: str) -> str:
    """The consumer group that records how far the dead letters of ``sink`` were replayed."""
    return f"{GROUP_PREFIX}{sink}"


# --- the sink's chain ---------------------------------------------------------------------


@dataclass(frozen=True)
class Unwrap:
    """``ExtractNewRecordState`` as the sink configures it."""

    add_fields: tuple[str, ...] = ()
    prefix: str = "__"
    delete_mode: str = "rewrite"


@dataclass(frozen=True)
class CastStep:
    """One ``Cast$Value``: field -> Connect type, applied to topics matching ``pattern`` (None: every topic)."""

    spec: tuple[tuple[str, str], ...]
    pattern: str | None = None
    negate: bool = False

    def applies_to(self, topic: str) -> bool:
        if self.pattern is None:
            return True
        return (re.fullmatch(self.pattern, topic) is not None) != self.negate


@dataclass(frozen=True)
class SinkChain:
    """The converter-side steps of one sink: unwrap, then casts in order, then KCBQ's ``_kafka`` record."""

    unwrap: Unwrap | None
    casts: tuple[CastStep, ...]
    kafka_field: str | None = "_kafka"

    @classmethod
    def from_config(cls, config: Mapping[str, str]) -> SinkChain:
        """Read the chain from the sink connector's config; a transform replay cannot repeat exactly is refused."""
        unwrap: Unwrap | None = None
        casts: list[CastStep] = []
        for name in [t.strip() for t in str(config.get("transforms", "")).split(",") if t.strip()]:
            key = f"transforms.{name}."
            kind = config.get(f"{key}type", "")
            if kind == UNWRAP:
                fields = tuple(f.strip() for f in config.get(f"{key}add.fields", "").split(",") if f.strip())
                unwrap = Unwrap(fields, config.get(f"{key}add.fields.prefix", "__"),
                                config.get(f"{key}delete.tombstone.handling.mode", "tombstone"))  # fmt: skip
            elif kind == CAST:
                pairs = [p.strip() for p in config.get(f"{key}spec", "").split(",") if p.strip()]
                if any(":" not in p for p in pairs):
                    raise ReplayError(f"transform {name}: a whole-value Cast ({config.get(f'{key}spec')!r}) is not replayable")
                spec = tuple((f.strip(), t.strip().lower()) for f, t in (p.split(":", 1) for p in pairs))
                casts.append(CastStep(spec, *cls._predicate(config, name, key)))
            else:
                raise ReplayError(
                    f"the sink's transform {name} ({kind or 'no type'}) is not one replay knows how to repeat exactly "
                    f"({UNWRAP}, {CAST}): replay would write rows the sink would not"
                )
        kafka_field = config.get(KAFKA_FIELD_KEY) or None
        return cls(unwrap, tuple(casts), kafka_field)

    @staticmethod
    def _predicate(config: Mapping[str, str], name: str, key: str) -> tuple[str | None, bool]:
        predicate = config.get(f"{key}predicate")
        if not predicate:
            return None, False
        kind = config.get(f"predicates.{predicate}.type")
        if kind != TOPIC_MATCHES:
            raise ReplayError(f"transform {name}: predicate {predicate} ({kind}) is not a {TOPIC_MATCHES}")
        negate = str(config.get(f"{key}negate", "false")).lower() == "true"
        return config.get(f"predicates.{predicate}.pattern", ""), negate

    def row(self, topic: str, value: bytes | None) -> dict[str, Any]:
        """The changelog row the sink writes for one record of ``topic`` (without ``_kafka``)."""
        if value is None:
            if self.unwrap is not None and self.unwrap.delete_mode != "rewrite-with-tombstone":
                raise Dropped("a tombstone: the sink's unwrap drops it")
            raise Unconvertible("a tombstone (no value): nothing to write")
        payload, schema = _document(value)
        fields_schema: dict[str, Mapping[str, Any]] = {}
        if self.unwrap is None:
            row = dict(payload)
        else:
            row, fields_schema = self._unwrap(payload, schema)
        for step in self.casts:
            if step.applies_to(topic):
                for name, target in step.spec:
                    if name in row:
                        try:
                            row[name] = cast(row[name], target, fields_schema.get(name))
                        except Unconvertible as error:
                            raise Unconvertible(f"the sink's Cast of {name} to {target} fails: {error}") from None
        return {name: _kcbq(value) for name, value in row.items()}

    def _unwrap(self, payload: Mapping[str, Any], schema: Mapping[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
        unwrap = self.unwrap
        assert unwrap is not None
        op = payload.get("op")
        if not isinstance(op, str) or ("after" not in payload and "before" not in payload):
            raise Unconvertible("not a Debezium change event (no op / before / after)")
        after, before = payload.get("after"), payload.get("before")
        if after is None and before is None:
            raise Dropped(f"op {op!r} without a row (a truncate): the sink's unwrap drops it")
        deleted = after is None
        data = before if deleted else after
        if not isinstance(data, Mapping):
            raise Unconvertible(f"{'before' if deleted else 'after'} is not a row ({type(data).__name__})")
        rewrite = unwrap.delete_mode in ("rewrite", "rewrite-with-tombstone")
        if deleted and not rewrite:
            raise Dropped(f"a delete: the sink's unwrap ({unwrap.delete_mode}) does not write it")
        row = dict(data)
        if rewrite:
            row[DELETED] = "true" if deleted else "false"
        for reference in unwrap.add_fields:
            struct, name, new = _field_reference(reference, unwrap.prefix)
            holder = payload if struct is None else payload.get(struct)
            present = _has_field(schema, struct, name) if schema is not None else isinstance(holder, Mapping) and name in holder
            if present:
                row[new] = holder.get(name) if isinstance(holder, Mapping) else None
        return row, _row_fields(schema, "before" if deleted else "after")


def _document(value: bytes) -> tuple[Mapping[str, Any], Mapping[str, Any] | None]:
    """(payload, its Connect schema or None) of a JSON value, with or without the envelope."""
    try:
        document = json.loads(value)
    except (ValueError, UnicodeDecodeError) as error:
        raise Unconvertible(f"the value is not JSON ({error})") from None
    if not isinstance(document, Mapping):
        raise Unconvertible(f"the value is JSON {type(document).__name__}, not an object")
    if set(document) == {"schema", "payload"}:
        payload, schema = document["payload"], document["schema"]
        if not isinstance(payload, Mapping):
            raise Unconvertible("the envelope's payload is not an object")
        return payload, schema if isinstance(schema, Mapping) else None
    return document, None


def _field_reference(reference: str, prefix: str) -> tuple[str | None, str, str]:
    """Debezium's FieldReference: (struct or None, field, new field name), e.g. ``source.ts_ms`` -> ``__source_ts_ms``."""
    reference, _, renamed = reference.partition(":")
    head, dot, tail = reference.partition(".")
    if dot:
        return head, tail, prefix + (renamed or f"{head}_{tail}")
    struct = None if head in _TOP_LEVEL else ("transaction" if head in _TRANSACTION else "source")
    return struct, head, prefix + (renamed or head)


def _struct_fields(schema: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    items = schema.get("fields") if isinstance(schema, Mapping) else None
    return {str(f.get("field")): f for f in items or [] if isinstance(f, Mapping)}


def _has_field(schema: Mapping[str, Any], struct: str | None, name: str) -> bool:
    holder = schema if struct is None else _struct_fields(schema).get(struct)
    return name in _struct_fields(holder)


def _row_fields(schema: Mapping[str, Any] | None, side: str) -> dict[str, Any]:
    return dict(_struct_fields(_struct_fields(schema).get(side))) if schema is not None else {}


# --- Kafka's Cast, value by value --------------------------------------------------------


def cast(value: Any, target: str, schema: Mapping[str, Any] | None = None) -> Any:
    """``value`` (as the JSON converter decoded it; ``schema`` its Connect field schema, if known) cast to
    ``target`` with ``Cast$Value``'s semantics; :class:`Unconvertible` where Kafka's Cast throws."""
    if value is None:
        return None
    if isinstance(value, (list, dict)):
        raise Unconvertible(f"Cast does not support {type(value).__name__} values")
    if schema is not None and schema.get("name") == DECIMAL and isinstance(value, str):
        value = _decimal(value, schema)
    if target in _INT_BITS:
        return _to_int(value, _INT_BITS[target])
    if target in ("float32", "float64"):
        if isinstance(value, str):  # Float/Double.parseX: trimmed, NaN, Infinity, an f/d suffix
            if not _JAVA_FLOAT.fullmatch(value.strip()):
                raise Unconvertible(f"{value!r} is not a {target}")
            return float(value.strip().rstrip("fFdD").replace("Infinity", "inf"))
        return float(value)
    if target == "boolean":
        if isinstance(value, str):  # Boolean.parseBoolean
            return value.lower() == "true"
        return value if isinstance(value, bool) else int(value) != 0  # Number.longValue() != 0
    if target == "string":
        return java_string(value)
    raise Unconvertible(f"Cast to {target!r} is not a Connect primitive type")


def _decimal(value: str, schema: Mapping[str, Any]) -> Decimal:
    """A Connect ``Decimal``: base64 of the unscaled two's-complement integer, ``scale`` in its parameters."""
    try:
        unscaled = int.from_bytes(base64.b64decode(value, validate=True), "big", signed=True)
        scale = int((schema.get("parameters") or {}).get("scale", 0))
    except (ValueError, TypeError):
        raise Unconvertible(f"{value!r} is not a Connect Decimal (base64 bytes)") from None
    return Decimal(f"{unscaled}E{-scale}")


def _to_int(value: Any, bits: int) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str):  # Byte/Short/Integer/Long.parseX: strict, range-checked
        if not _JAVA_INT.fullmatch(value) or not -(2 ** (bits - 1)) <= int(value) < 2 ** (bits - 1):
            raise Unconvertible(f"{value!r} is not an int{bits}")
        return int(value)
    if isinstance(value, float):  # (long) d, or (byte/short)(int) d: saturate, then narrow
        if math.isnan(value):
            return 0
        whole = max(-(2**63), min(2**63 - 1, int(value))) if bits == 64 else max(-(2**31), min(2**31 - 1, int(value)))
        return _wrap(whole, bits)
    if isinstance(value, (int, Decimal)):
        return _wrap(int(value), bits)
    raise Unconvertible(f"unexpected {type(value).__name__} value")


def _wrap(number: int, bits: int) -> int:
    """Java's narrowing conversion: keep the low ``bits`` bits, two's complement."""
    number &= (1 << bits) - 1
    return number - (1 << bits) if number >= 1 << (bits - 1) else number


def java_string(value: Any) -> str:
    """``String.valueOf`` of what the JSON converter produced: Java's spelling of booleans, doubles, decimals."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _java_double(value)
    return str(value)  # int, str (bytes stay their base64), Decimal (BigDecimal.toString's scientific rules)


def _java_double(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    exact = Decimal(repr(value))  # the shortest digits, as Java 19+ prints them
    if 1e-3 <= abs(value) < 1e7:
        text = format(exact, "f")
        return text if "." in text else f"{text}.0"
    sign, digits, exponent = exact.as_tuple()
    assert isinstance(exponent, int)
    shown = "".join(map(str, digits)).rstrip("0") or "0"
    power = exponent + len(digits) - 1
    return f"{'-' if sign else ''}{shown[0]}.{shown[1:] or '0'}E{power}"


def _kcbq(value: Any) -> Any:
    """A value as KCBQ hands it to insertAll: arrays without NULL elements, decimals as exact text."""
    if isinstance(value, list):
        return [_kcbq(v) for v in value if v is not None]
    if isinstance(value, Decimal):
        return str(value)
    return value


# --- reading, writing, committing --------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What replay did with one dead-lettered record."""

    dlq_partition: int
    dlq_offset: int
    origin: str
    """``topic[partition]@offset`` the record had in the sink's input topic."""
    table: str | None
    status: str
    """``delivered``, ``dropped`` (the sink drops it too), ``failed``, or ``convertible`` (a dry run's would-deliver)."""
    detail: str = ""


@dataclass
class ReplayReport:
    sink: str
    dead_letter_topic: str
    group: str
    outcomes: list[Outcome] = field(default_factory=list)
    committed: dict[int, int] = field(default_factory=dict)
    """Dead-letter partition -> the offset the group now resumes from (only partitions it moved in)."""
    dry_run: bool = False

    def of(self, status: str) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == status]

    @property
    def failed(self) -> list[Outcome]:
        return self.of("failed")

    def to_dict(self) -> dict[str, Any]:
        return {
            "sink": self.sink, "dead_letter_topic": self.dead_letter_topic, "group": self.group, "dry_run": self.dry_run,
            "delivered": len(self.of("delivered")), "convertible": len(self.of("convertible")),
            "dropped": len(self.of("dropped")), "failed": len(self.failed),
            "committed": {str(k): v for k, v in self.committed.items()},
            "records": [o.__dict__ for o in self.outcomes],
        }  # fmt: skip


@dataclass(frozen=True)
class _Pending:
    outcome: Outcome
    row: dict[str, Any]
    insert_id: str


def _origin(message: Any) -> tuple[str, int, int]:
    headers = message.headers()
    topic = _header(headers, "__connect.errors.topic")
    partition, offset = _header(headers, "__connect.errors.partition"), _header(headers, "__connect.errors.offset")
    if not topic or not partition.lstrip("-").isdigit() or not offset.lstrip("-").isdigit():
        raise Unconvertible(
            "no __connect.errors.topic/partition/offset headers: the sink must set errors.deadletterqueue.context.headers.enable"
        )
    return topic, int(partition), int(offset)


def convert(
    message: Any, chain: SinkChain, tables: Mapping[str, SinkTable], dead_letter_topic: str, insert_time: float
) -> _Pending | Outcome:
    """One dead-lettered message -> the row to write (``_Pending``), or the outcome when there is none."""
    partition, offset = int(message.partition()), int(message.offset())
    origin, table = "?", None
    try:
        topic, source_partition, source_offset = _origin(message)
        origin = f"{topic}[{source_partition}]@{source_offset}"
        if topic not in tables:
            raise Unconvertible(f"topic {topic} is not one this sink writes ({', '.join(sorted(tables))})")
        table = tables[topic].table
        row = chain.row(topic, message.value())
    except Dropped as why:
        return Outcome(partition, offset, origin, table, "dropped", str(why))
    except Unconvertible as why:
        return Outcome(partition, offset, origin, table, "failed", str(why))
    if chain.kafka_field:
        row[chain.kafka_field] = {"topic": topic, "partition": source_partition, "offset": source_offset,
                                  "insertTime": insert_time}  # fmt: skip
    return _Pending(Outcome(partition, offset, origin, table, "delivered"), row, f"{dead_letter_topic}:{partition}:{offset}")


def resume_offsets(outcomes: Sequence[Outcome], starts: Mapping[int, int]) -> dict[int, int]:
    """Dead-letter partition -> where the next replay starts: past every record read, but never past the first
    one that failed (it is read again after the next fix). Only partitions that move are listed."""
    found = {}
    for partition, start in starts.items():
        mine = [o for o in outcomes if o.dlq_partition == partition]
        failed = [o.dlq_offset for o in mine if o.status == "failed"]
        resume = min(failed) if failed else max([o.dlq_offset + 1 for o in mine], default=start)
        if resume > start:
            found[partition] = resume
    return found


Insert = Callable[[str, Sequence[dict[str, Any]], Sequence[str]], Sequence[Mapping[str, Any]]]
"""``(table id, rows, insert ids) -> insertAll errors`` (``[{"index": i, "errors": [...]}]``)."""


def _write(insert: Insert, table_ref: str, pending: list[_Pending]) -> list[Outcome]:
    """Insert rows in batches; a batch with an error is retried row by row, so a bad row fails alone."""
    done: list[Outcome] = []
    for start in range(0, len(pending), BATCH):
        batch = pending[start : start + BATCH]
        errors = insert(table_ref, [p.row for p in batch], [p.insert_id for p in batch])
        if not errors:
            done += [p.outcome for p in batch]
            continue
        for item in batch:
            row_errors = insert(table_ref, [item.row], [item.insert_id]) if len(batch) > 1 else errors
            if row_errors:
                reasons = "; ".join(str(e.get("message", e)) for r in row_errors for e in r.get("errors", [])) or str(row_errors)
                done.append(replace(item.outcome, status="failed", detail=f"insertAll refused: {reasons}"))
            else:
                done.append(item.outcome)
    return done


def replay_dead_letters(
    kafka: KafkaEndpoint,
    login: Login | None,
    sink: Sink,
    sink_config: Mapping[str, str],
    insert: Insert,
    project: str,
    *,
    dry_run: bool = False,
    timeout_s: float = 30.0,
    now: Callable[[], float] = time.time,
) -> ReplayReport:
    """Replay every dead letter of ``sink`` not replayed yet (see the module docstring); the report says what happened."""
    if not sink.dead_letter_topic:
        raise ReplayError(f"sink {sink.name} has no dead-letter topic in its manifest: redeploy it with this datapipe-cdk")
    chain = SinkChain.from_config(sink_config)
    topic = sink.dead_letter_topic
    report = ReplayReport(sink.name, topic, group_of(sink.name), dry_run=dry_run)
    consumer = Consumer({**consumer_config(kafka, login), "group.id": report.group, "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "enable.partition.eof": True})  # fmt: skip
    try:
        partitions = _partitions(consumer, topic, timeout_s)
        try:
            committed = {
                tp.partition: tp.offset
                for tp in consumer.committed([TopicPartition(topic, p) for p, _, _ in partitions], timeout=timeout_s)
            }
        except KafkaException as error:
            raise StreamError(f"cannot read the offsets of group {report.group}: {error}; may the login Read it?") from error
        starts = {p: max(low, committed.get(p, -1)) for p, low, _ in partitions}
        ends = {p: high for p, _, high in partitions if high > starts[p]}
        if not ends:
            return report
        consumer.assign([TopicPartition(topic, p, starts[p]) for p in ends])
        messages = [m for m in _read_until(consumer, ends, time.monotonic() + timeout_s) if m.offset() < ends[m.partition()]]
        messages.sort(key=lambda m: (m.partition(), m.offset()))
        tables = {t.topic: t for t in sink.tables}
        insert_time = now()
        converted = [convert(m, chain, tables, topic, insert_time) for m in messages]
        outcomes = {(o.dlq_partition, o.dlq_offset): o for o in converted if isinstance(o, Outcome)}
        pending = [p for p in converted if isinstance(p, _Pending)]
        for table in sorted({p.outcome.table for p in pending if p.outcome.table}):
            rows = [p for p in pending if p.outcome.table == table]
            if dry_run:
                written = [replace(p.outcome, status="convertible") for p in rows]
            else:
                written = _write(insert, f"{project}.{sink.dataset}.{table}", rows)
            outcomes.update({(o.dlq_partition, o.dlq_offset): o for o in written})
        report.outcomes = [outcomes[(m.partition(), m.offset())] for m in messages]
        report.committed = resume_offsets(report.outcomes, {p: starts[p] for p in ends})
        if report.committed and not dry_run:
            consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in report.committed.items()], asynchronous=False)
        return report
    finally:
        consumer.close()


def bigquery_insert(client: Any) -> Insert:
    """:data:`Insert` through google-cloud-bigquery's ``insert_rows_json`` (tabledata.insertAll)."""

    def insert(table: str, rows: Sequence[dict[str, Any]], ids: Sequence[str]) -> Sequence[Mapping[str, Any]]:
        return list(client.insert_rows_json(table, list(rows), row_ids=list(ids), skip_invalid_rows=False))

    return insert
