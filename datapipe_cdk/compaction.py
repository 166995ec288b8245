"""Compacted state: the newest event of every key, merged from a changelog, so views never depend on its history.

Each changelog table ``t`` gets a state table ``t__state`` (same columns, one row per key, clustered by the
key) and every sink dataset a log ``_datapipe_compaction`` of finished compactions. A compaction is three
statements, run in order (a BigQuery scheduled query in production, ``datapipe compact`` / the local
stack's compactor otherwise):

1. ``MERGE`` the newest event per key of the last ``recent_window`` into the state, where it is newer
   (higher Kafka offset) than what the state holds. Deletes stay as rows marked ``__deleted``, so an
   older event can never bring a deleted row back. Running it twice changes nothing. After an outage
   (no compaction for ``recent_window - 1 h``, or never) it reads the whole changelog instead: the
   first compaction after one catches up with everything still retained.
2. ``DELETE`` state rows deleted more than two windows ago (the state stays the size of the table).
3. ``INSERT`` the time of this compaction into the log.

A latest-state view reads the state plus the changelog's last ``recent_window`` and ranks both together,
so it is exact between compactions, costs O(table + recent changes), and does not care when changelog
partitions expire. Its freshness cost: none (the window is read live); the compaction's cost is the
state plus one window of changes, every ``compact_every``. If no compaction finished for
``recent_window - 1 h`` while older changes exist, the view fails with an error naming the table instead
of silently missing them.

Newest = highest Kafka offset. One key's events share a partition (Debezium keys every record by the
primary key and the topic's partition count never changes after creation), and a partition's offsets
follow the order Debezium read the log in: commit order for PostgreSQL (a transaction left open during
the snapshot streams after the snapshot rows, whatever its LSN) and binlog order for MySQL/MariaDB
(across binlog rotation, failover to another primary, or a GTID switch, where file/position
comparisons go wrong). Re-delivered events repeat a suffix in order, so the last one stays last.

Time windows use the changelog's ``_kafka.insertTime`` (when the sink wrote the row); in production the
ingestion-time partition (``_PARTITIONTIME``, NULL while rows sit in the streaming buffer) also prunes
what is scanned. The local BigQuery emulator has no ``_PARTITIONTIME``, so there it filters on
``insertTime`` alone (same rows, no partition pruning).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from . import _validate as check
from .errors import DatapipeError
from .sql import render_template
from .units import in_words

STATE_SUFFIX = "__state"
LOG_TABLE = "_datapipe_compaction"
SETTLE = timedelta(hours=1)
"""Margin for rows written late (sink retries, clock skew) between a compaction and the view's window."""
MIN_EVERY = timedelta(minutes=15)
"""BigQuery scheduled queries run at most every 15 minutes."""
INSERT_TIME = "`_kafka`.`insertTime`"


def state_table_id(changelog_table_id: str) -> str:
    return f"{changelog_table_id}{STATE_SUFFIX}"


@dataclass(frozen=True)
class CompactionPolicy:
    """How often a sink's changelogs are compacted and how much recent history views read live."""

    every: timedelta
    window: timedelta

    @classmethod
    def checked(cls, path: str, every: object, window: object) -> CompactionPolicy:
        every = check.duration(path, "compact_every", every, minimum=MIN_EVERY, at_least=True)
        window = check.duration(path, "recent_window", window, minimum=timedelta(hours=2), at_least=True)
        for name, value in (("compact_every", every), ("recent_window", window)):
            if value % timedelta(minutes=1):
                raise DatapipeError(path, f"{name} must be whole minutes", value)
        if window < 2 * every + SETTLE:
            raise DatapipeError(
                path,
                f"recent_window must be at least 2 x compact_every + 1 hour ({2 * every + SETTLE}): views read that "
                "window live, so one failed compaction must not make them miss changes",
                window,
            )
        return cls(every, window)

    @property
    def every_minutes(self) -> int:
        return int(self.every / timedelta(minutes=1))

    @property
    def window_minutes(self) -> int:
        return int(self.window / timedelta(minutes=1))

    @property
    def overdue_minutes(self) -> int:
        """Views fail when no compaction finished for this long (and older changes exist)."""
        return int((self.window - SETTLE) / timedelta(minutes=1))

    @property
    def schedule(self) -> str:
        """The scheduled query's schedule (``every 60 minutes``)."""
        return f"every {self.every_minutes} minutes"


@dataclass(frozen=True)
class Compaction:
    """The SQL that compacts one changelog table and the latest-state view reading it."""

    table_id: str
    changelog: str
    state: str
    log: str
    stored: tuple[str, ...]
    """Every changelog column (data, Debezium metadata, ``_kafka``), in order."""
    primary_key: tuple[str, ...]
    policy: CompactionPolicy
    partitioned_by_ingestion: bool
    """Production BigQuery (``_PARTITIONTIME`` exists); False on the local emulator."""

    def _since(self, minutes: int) -> str:
        return f"TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL {minutes} MINUTE)"

    @property
    def recent(self) -> str:
        """The changelog rows written in the last window (a superset is harmless: ranking decides)."""
        since = self._since(self.policy.window_minutes)
        written = f"({INSERT_TIME} IS NULL OR {INSERT_TIME} >= {since})"  # a row without the time is always read
        if self.partitioned_by_ingestion:
            return f"(_PARTITIONTIME IS NULL OR _PARTITIONTIME >= TIMESTAMP_TRUNC({since}, DAY)) AND {written}"
        return written

    @property
    def older(self) -> str:
        """Changelog rows older than the window (in production: whole older partitions, which scans nothing)."""
        since = self._since(self.policy.window_minutes)
        if self.partitioned_by_ingestion:
            return f"_PARTITIONTIME < TIMESTAMP_TRUNC({since}, DAY)"
        return f"{INSERT_TIME} < {since}"

    def statements(self) -> tuple[str, ...]:
        """Merge, purge old deletes, record: run in this order."""
        merge = render_template(
            "compact",
            changelog=self.changelog,
            state=self.state,
            stored=self.stored,
            primary_key=self.primary_key,
            recent=self.recent,
            window=in_words(self.policy.window),
            log=self.log,
            table_id=self.table_id,
            overdue_minutes=self.policy.overdue_minutes,
        )
        purge = (
            f"DELETE FROM {self.state}\n"
            f"WHERE `__deleted` = 'true' AND {INSERT_TIME} < {self._since(2 * self.policy.window_minutes)}\n"
        )
        record = (
            f"INSERT INTO {self.log} (`table_id`, `compacted_at`) VALUES ('{self.table_id}', CURRENT_TIMESTAMP());\n"
            f"DELETE FROM {self.log} WHERE `table_id` = '{self.table_id}' AND `compacted_at` < "
            f"TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 7 DAY)\n"
        )
        statements = [merge, purge, *(s.strip() + "\n" for s in record.split(";\n"))]
        return tuple(s.strip() + "\n" for s in statements)

    def latest_state(self, description: str, projections: list[str]) -> str:
        """A view of the current rows: state and recent changes ranked together, deletes removed."""
        return render_template(
            "latest_state",
            description=description,
            projections=projections,
            stored=self.stored,
            primary_key=self.primary_key,
            state=self.state,
            changelog=self.changelog,
            recent=self.recent,
            older=self.older,
            log=self.log,
            table_id=self.table_id,
            every=in_words(self.policy.every),
            window=in_words(self.policy.window),
            overdue_minutes=self.policy.overdue_minutes,
        )
