"""Is a sink really moving? Dead-lettered records and consumer progress, read from Kafka itself.

Kafka Connect reports a sink RUNNING while its task rewinds on a write it can never make (the
commit fails, the records come again, forever). What Kafka shows cannot lie: the sink's consumer
group (``connect-<sink>``) commits no further while records wait behind it. And every record the
sink could not convert went to its dead-letter topic: its key names a row that is now stale in the
views.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from datapipe_cdk.manifest import KafkaEndpoint
from datapipe_cdk.runtime.credentials import Login
from datapipe_cdk.runtime.stream import StreamError, _partitions, _read_until, _reader, consumer_config


@dataclass(frozen=True)
class DeadLetter:
    """One record the sink set aside: where it came from, its key, and why."""

    topic: str
    partition: int
    offset: int
    key: dict[str, Any] | None
    reason: str


@dataclass(frozen=True)
class PartitionProgress:
    topic: str
    partition: int
    committed: int | None
    """The sink's committed offset (None: it never committed)."""
    end: int

    @property
    def lag(self) -> int:
        return self.end - (self.committed or 0)


@dataclass(frozen=True)
class Progress:
    """Two readings of a sink's committed offsets ``waited_s`` apart."""

    group: str
    before: tuple[PartitionProgress, ...]
    after: tuple[PartitionProgress, ...]
    waited_s: float

    @property
    def stalled(self) -> list[PartitionProgress]:
        """Partitions with records waiting whose committed offset did not move between the readings."""
        moved = {(p.topic, p.partition): p.committed for p in self.before}
        return [p for p in self.after if p.lag > 0 and moved.get((p.topic, p.partition)) == p.committed]

    @property
    def lag(self) -> int:
        return sum(p.lag for p in self.after)


def _header(headers: Sequence[tuple[str, bytes | None]] | None, name: str) -> str:
    for key, value in headers or ():
        if key == name and value is not None:
            return value.decode("utf-8", errors="replace")
    return ""


def _key(raw: bytes | None) -> dict[str, Any] | None:
    if not raw:
        return None
    try:
        document = json.loads(raw)
    except ValueError:
        return None
    payload = document.get("payload", document) if isinstance(document, dict) else None
    return payload if isinstance(payload, dict) else None


def dead_letters(kafka: KafkaEndpoint, login: Login | None, topic: str, timeout_s: float = 20.0) -> list[DeadLetter]:
    """Every record in the dead-letter topic (with Connect's error headers)."""
    consumer = _reader(kafka, login)
    try:
        partitions = [(p, low, high) for p, low, high in _partitions(consumer, topic, timeout_s) if high > low]
        if not partitions:
            return []
        consumer.assign([TopicPartition(topic, p, low) for p, low, _ in partitions])
        messages = _read_until(consumer, {p: high for p, _, high in partitions}, time.monotonic() + timeout_s)
        return [
            DeadLetter(
                topic=_header(m.headers(), "__connect.errors.topic") or "?",
                partition=int(_header(m.headers(), "__connect.errors.partition") or -1),
                offset=int(_header(m.headers(), "__connect.errors.offset") or -1),
                key=_key(m.key()),
                reason=_header(m.headers(), "__connect.errors.exception.message")
                or _header(m.headers(), "__connect.errors.exception.class.name"),
            )
            for m in messages
        ]
    finally:
        consumer.close()


def _reading(consumer: Consumer, group: str, topics: Sequence[str], timeout_s: float) -> tuple[PartitionProgress, ...]:
    found = []
    for topic in topics:
        ends = {p: high for p, _, high in _partitions(consumer, topic, timeout_s)}
        try:
            committed = consumer.committed([TopicPartition(topic, p) for p in ends], timeout=timeout_s)
        except KafkaException as exc:
            raise StreamError(f"cannot read the committed offsets of group {group}: {exc}; may the login Describe it?") from exc
        for tp in committed:
            found.append(PartitionProgress(topic, tp.partition, tp.offset if tp.offset >= 0 else None, ends[tp.partition]))
    return tuple(found)


def progress(
    kafka: KafkaEndpoint, login: Login | None, group: str, topics: Sequence[str], *, wait_s: float = 15.0, timeout_s: float = 20.0
) -> Progress:
    """The sink group's committed offsets against the topics' end offsets, read twice ``wait_s`` apart."""
    consumer = Consumer({**consumer_config(kafka, login), "group.id": group, "enable.auto.commit": False})
    try:
        before = _reading(consumer, group, topics, timeout_s)
        if not any(p.lag > 0 for p in before):
            return Progress(group, before, before, 0.0)
        time.sleep(wait_s)
        return Progress(group, before, _reading(consumer, group, topics, timeout_s), wait_s)
    finally:
        consumer.close()
