"""Kafka as the notebooks see it: consumers on a CDC topic, decoding Debezium envelopes.

``TopicTail`` reads from the current end (the marker probe); ``read_recent`` reads records that are
already there (read-only latency); ``newest_record_ms`` is the time of a topic's newest record (Debezium
heartbeats). Consumers are assigned partitions directly (no group membership, no commits), so they need
only Read/Describe on the topic and write nothing; with SASL they log in with the credentials given.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from datapipe_cdk.manifest import KafkaEndpoint
from datapipe_cdk.runtime.credentials import Login

HEARTBEAT_TOPIC_PREFIX = "__debezium-heartbeat"
"""Debezium's ``topic.heartbeat.prefix`` (the default, which ``CdcSource`` keeps): ``<prefix>.<topic_prefix>``."""


class StreamError(RuntimeError):
    """Kafka cannot be read as asked; the message names the topic and what to check."""


@dataclass(frozen=True)
class ChangeEvent:
    """One Debezium change event: operation, key values, source commit time and Kafka's record time."""

    op: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    source_ts_ms: int | None
    record_ts_ms: int | None
    received_at: float
    """Wall-clock seconds when the consumer returned the record."""
    partition: int | None = None
    offset: int | None = None

    def row(self) -> dict[str, Any]:
        """The row the event is about: ``after`` (insert/update/read) or ``before`` (delete)."""
        return (self.before if self.op == "d" else self.after) or {}


_CLIENT_LOG = logging.getLogger("datapipe_cdk.kafka_client")
_CLIENT_LOG.addHandler(logging.NullHandler())


def consumer_config(kafka: KafkaEndpoint, login: Login | None) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap.servers": ",".join(kafka.bootstrap_servers),
        "group.id": f"datapipe-probe-{uuid.uuid4().hex[:12]}",
        "enable.auto.commit": False,
        "auto.offset.reset": "latest",
        "security.protocol": kafka.security_protocol,
        "client.id": "datapipe-latency-probe",
        "fetch.wait.max.ms": 50,
        # librdkafka's own log lines (e.g. a coordinator connection dropped while closing) go to this logger,
        # not to the terminal; failures that matter still raise
        "logger": _CLIENT_LOG,
    }
    if kafka.security_protocol.startswith("SASL"):
        if login is None:
            raise StreamError(
                "Kafka needs a SASL login; start the local stack (python -m datapipe_cdk.local up) "
                "or set DATAPIPE_KAFKA_USERNAME and DATAPIPE_KAFKA_PASSWORD"
            )
        config.update(
            {
                "sasl.mechanism": kafka.sasl_mechanism or "SCRAM-SHA-512",
                "sasl.username": login.user,
                "sasl.password": login.password,
            }
        )
    return config


def decode(
    value: bytes | None, record_ts_ms: int | None, received_at: float, *, partition: int | None = None, offset: int | None = None
) -> ChangeEvent | None:
    """A change event from a Debezium JSON value (with or without the ``schema``/``payload`` wrapper).

    Tombstones (no value) and records that are not change events (schema changes, heartbeats) give None.
    """
    if not value:
        return None
    try:
        document = json.loads(value)
    except ValueError:
        return None
    payload = document.get("payload", document) if isinstance(document, dict) else None
    if not isinstance(payload, dict) or "op" not in payload:
        return None
    source = payload.get("source") or {}
    return ChangeEvent(
        op=str(payload["op"]),
        before=payload.get("before"),
        after=payload.get("after"),
        source_ts_ms=source.get("ts_ms"),
        record_ts_ms=record_ts_ms,
        received_at=received_at,
        partition=partition,
        offset=offset,
    )


def _partitions(consumer: Consumer, topic: str, timeout_s: float) -> list[tuple[int, int, int]]:
    """(partition, low, high) watermarks of every partition of ``topic``."""
    try:
        metadata = consumer.list_topics(topic, timeout=timeout_s)
    except KafkaException as exc:
        raise StreamError(f"cannot read metadata of topic {topic!r}: {exc}; is Kafka up?") from exc
    info = metadata.topics.get(topic)
    if info is None or info.error is not None or not info.partitions:
        raise StreamError(f"topic {topic!r} not found ({info.error if info else 'absent'}); deploy the stack first")
    found = []
    for partition in sorted(info.partitions):
        try:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout_s)
        except KafkaException as exc:
            raise StreamError(f"cannot read offsets of {topic!r}[{partition}]: {exc}; may the login Describe it?") from exc
        found.append((partition, low, high))
    return found


def _record_time(message: Any) -> int | None:
    ts_type, ts = message.timestamp()
    return ts if ts_type else None


def _reader(kafka: KafkaEndpoint, login: Login | None) -> Consumer:
    """A consumer for records already in a topic: reports reaching the end of each partition."""
    return Consumer({**consumer_config(kafka, login), "auto.offset.reset": "earliest", "enable.partition.eof": True})


def _read_until(consumer: Consumer, ends: Mapping[int, int], deadline: float) -> list[Any]:
    """Messages until every partition reached its ``ends`` offset (or its end: transaction markers have
    offsets but no message) or ``deadline`` (monotonic) passes."""
    messages: list[Any] = []
    pending = {partition for partition, end in ends.items()}
    while pending and time.monotonic() < deadline:
        message = consumer.poll(min(1.0, max(0.0, deadline - time.monotonic())))
        if message is None:
            continue
        error, partition, offset = message.error(), message.partition(), message.offset()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                pending.discard(partition)
            continue
        if partition is not None and offset is not None and offset + 1 >= ends.get(partition, 0):
            pending.discard(partition)
        messages.append(message)
    return messages


def read_recent(
    kafka: KafkaEndpoint,
    login: Login | None,
    topic: str,
    *,
    last: int = 1000,
    since: Mapping[int, int] | None = None,
    timeout_s: float = 30.0,
) -> list[ChangeEvent]:
    """Change events already in ``topic``: per partition the newest ``last`` records (shared out), extended
    back to offset ``since[partition]`` when given (records another sample names), never more than
    ``last`` records back from the end per partition beyond that. Reads up to the end offsets seen at the
    start; stops at ``timeout_s``. Records past retention are simply absent."""
    consumer = _reader(kafka, login)
    try:
        partitions = [(p, low, high) for p, low, high in _partitions(consumer, topic, timeout_s) if high > low]
        if not partitions:
            return []
        share = max(1, -(-last // len(partitions)))
        assignment, ends = [], {}
        for partition, low, high in partitions:
            start = high - share
            if since and partition in since:
                start = min(start, since[partition])
            start = max(low, start, high - share - last)
            assignment.append(TopicPartition(topic, partition, start))
            ends[partition] = high
        consumer.assign(assignment)
        messages = _read_until(consumer, ends, time.monotonic() + timeout_s)
        events = []
        for message in messages:
            if message.offset() >= ends[message.partition()]:
                continue
            event = decode(
                message.value(), _record_time(message), time.time(), partition=message.partition(), offset=message.offset()
            )
            if event is not None:
                events.append(event)
        return events
    finally:
        consumer.close()


def newest_record_ms(kafka: KafkaEndpoint, login: Login | None, topic: str, timeout_s: float = 10.0) -> int | None:
    """Kafka's timestamp of the newest record in ``topic`` (any partition, among the last few of each);
    None when it has none."""
    consumer = _reader(kafka, login)
    try:
        partitions = [(p, low, high) for p, low, high in _partitions(consumer, topic, timeout_s) if high > low]
        if not partitions:
            return None
        consumer.assign([TopicPartition(topic, p, max(low, high - 5)) for p, low, high in partitions])
        messages = _read_until(consumer, {p: high for p, _, high in partitions}, time.monotonic() + timeout_s)
        times = [t for t in (_record_time(m) for m in messages) if t is not None]
        return max(times) if times else None
    finally:
        consumer.close()


def heartbeat_topic(topic_prefix: str) -> str:
    """The Debezium heartbeat topic of a connector (exists only when its ``CdcSource`` sets ``heartbeat``)."""
    return f"{HEARTBEAT_TOPIC_PREFIX}.{topic_prefix}"


class TopicTail:
    """Reads a topic from its current end; ``poll`` returns the change events that arrived since."""

    def __init__(self, kafka: KafkaEndpoint, login: Login | None, topic: str, timeout_s: float = 20.0) -> None:
        self.topic = topic
        self._consumer = Consumer(consumer_config(kafka, login))
        try:
            partitions = _partitions(self._consumer, topic, timeout_s)
        except StreamError:
            self._consumer.close()
            raise
        self._consumer.assign([TopicPartition(topic, partition, high) for partition, _, high in partitions])

    def poll(self, budget_s: float = 0.1, max_records: int = 500) -> list[ChangeEvent]:
        events: list[ChangeEvent] = []
        deadline = time.monotonic() + budget_s
        while len(events) < max_records:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            message = self._consumer.poll(remaining)
            if message is None:
                break
            if message.error():
                continue
            event = decode(
                message.value(), _record_time(message), time.time(), partition=message.partition(), offset=message.offset()
            )
            if event is not None:
                events.append(event)
        return events

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> TopicTail:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
