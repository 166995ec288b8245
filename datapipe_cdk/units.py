"""Units: every number a user sets carries its unit in its type; converted here, once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

FOREVER = timedelta.max
"""Retention that never expires (Kafka ``retention.ms=-1``)."""


def to_millis(duration: timedelta) -> int:
    """Milliseconds of a duration; ``FOREVER`` becomes Kafka's ``-1``."""
    if duration == FOREVER:
        return -1
    return int(duration.total_seconds() * 1000)


def to_rfc3339(moment: datetime) -> str:
    """UTC RFC 3339 timestamp for IAM condition expressions (naive times are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
