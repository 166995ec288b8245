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


def in_words(duration: timedelta) -> str:
    """``timedelta(hours=6)`` -> ``6 hours``; ``timedelta(minutes=90)`` -> ``90 minutes`` (for comments and messages)."""
    minutes = int(duration / timedelta(minutes=1))
    for size, unit in ((24 * 60, "day"), (60, "hour"), (1, "minute")):
        if minutes and minutes % size == 0:
            count = minutes // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return str(duration)
