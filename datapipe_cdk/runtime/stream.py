"""Kafka as the probe sees it: a consumer placed at the end of a CDC topic, decoding Debezium envelopes.

The consumer is assigned partitions directly (no group membership, no commits), so it needs only
Read/Describe on the topic; with SASL it logs in with the credentials given.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from datapipe_cdk.runtime.credentials import Login
from datapipe_cdk.runtime.manifest import KafkaEndpoint


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

    def row(self) -> dict[str, Any]:
        """The row the event is about: ``after`` (insert/update/read) or ``before`` (delete)."""
        return (self.before if self.op == "d" else self.after) or {}


def consumer_config(kafka: KafkaEndpoint, login: Login | None) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap.servers": ",".join(kafka.bootstrap_servers),
        "group.id": f"datapipe-probe-{uuid.uuid4().hex[:12]}",
        "enable.auto.commit": False,
        "auto.offset.reset": "latest",
        "security.protocol": kafka.security_protocol,
        "client.id": "datapipe-latency-probe",
        "fetch.wait.max.ms": 50,
    }
    if kafka.security_protocol.startswith("SASL"):
        if login is None:
            raise StreamError(
                "Kafka needs a SASL login; start the local stack (python -m datapipe_cdk.local up) "
                "or set DATAPIPE_KAFKA_USERNAME and DATAPIPE_KAFKA_PASSWORD"
            )
        config.update({"sasl.mechanism": kafka.sasl_mechanism or "SCRAM-SHA-512",
                       "sasl.username": login.user, "sasl.password": login.password})
    return config


def decode(value: bytes | None, record_ts_ms: int | None, received_at: float) -> ChangeEvent | None:
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
    )


class TopicTail:
    """Reads a topic from its current end; ``poll`` returns the change events that arrived since."""

    def __init__(self, kafka: KafkaEndpoint, login: Login | None, topic: str, timeout_s: float = 20.0) -> None:
        self.topic = topic
        self._consumer = Consumer(consumer_config(kafka, login))
        try:
            metadata = self._consumer.list_topics(topic, timeout=timeout_s)
        except KafkaException as exc:
            raise StreamError(f"cannot read metadata of topic {topic!r}: {exc}; is Kafka up?") from exc
        info = metadata.topics.get(topic)
        if info is None or info.error is not None or not info.partitions:
            raise StreamError(f"topic {topic!r} not found ({info.error if info else 'absent'}); deploy the stack first")
        assignment = []
        for partition in info.partitions:
            _, high = self._consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout_s)
            assignment.append(TopicPartition(topic, partition, high))
        self._consumer.assign(assignment)

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
            ts_type, ts = message.timestamp()
            event = decode(message.value(), ts if ts_type else None, time.time())
            if event is not None:
                events.append(event)
        return events

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> TopicTail:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
