"""The latency probe: marker rows written at a steady rate and timed through every stage.

Each marker is one committed change (an insert of a new row, an update of a seeded row's marker
column, or a delete of a seeded row). Its clock starts when the source acknowledges the commit and
it is then seen (a) in the CDC topic (Kafka's record timestamp, plus Debezium's ``source.ts_ms``),
(b) in the changelog table and (c) in the latest-state view. Seed rows for updates and deletes are
written and waited for before timing starts. Warehouse times are the first poll that saw the change,
so their resolution is the poll interval plus one query. All loops are bounded by ``timeout_s``.

Writing markers needs permission (``writes.require_probe_writes``): by default only when the manifest's
``target`` is ``local``; against any other target only with ``write_probe_rows=True``. Without it,
``observe.observe_latency`` measures the changes that already flowed, read-only.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field

import pandas as pd
from google.api_core.exceptions import GoogleAPIError
from tqdm import tqdm

from datapipe_cdk.manifest import Manifest
from datapipe_cdk.runtime.credentials import Credentials
from datapipe_cdk.runtime.probe_rows import ProbeRows, WarehouseView, choose_pipe, warehouse_view
from datapipe_cdk.runtime.source import SourceDatabase
from datapipe_cdk.runtime.stats import END_TO_END, KAFKA_TO_WAREHOUSE, SOURCE_TO_KAFKA, latency_summary
from datapipe_cdk.runtime.stream import ChangeEvent, TopicTail
from datapipe_cdk.runtime.warehouse import WarehouseClient
from datapipe_cdk.runtime.writes import require_probe_writes

PROBE = "probe"
_KAFKA_OP = {"insert": "c", "update": "u", "delete": "d"}


class ProbeTimeout(RuntimeError):
    """The seed rows never reached the latest-state view; the pipeline is not flowing."""


@dataclass
class Marker:
    """One timed change and the wall-clock seconds at which each stage saw it (None: not yet)."""

    marker: int
    op: str
    key: object
    value: str | None
    committed_at: float
    source_ts_ms: int | None = None
    kafka_ts_ms: int | None = None
    kafka_seen_at: float | None = None
    changelog_at: float | None = None
    view_at: float | None = None

    @property
    def done(self) -> bool:
        return None not in (self.kafka_ts_ms, self.changelog_at, self.view_at)

    def matches(self, event: ChangeEvent, key_column: str, marker_column: str | None) -> bool:
        """Whether a Kafka change event is this marker's change (any update of the key without a marker column)."""
        row = event.row()
        marker = row.get(marker_column) if marker_column is not None else self.value
        return self.is_change(event.op, row.get(key_column), marker)

    def is_change(self, op: str, key: object, marker: object) -> bool:
        """Whether a change (Debezium op letter, key value, marker column value) is this marker's: same op and
        key, and for an update the marker value it wrote."""
        if op != _KAFKA_OP[self.op] or str(key) != str(self.key):
            return False
        return self.op != "update" or marker == self.value


@dataclass
class ProbeResult:
    """Per-marker timings (``markers``), the long table (``latencies``: marker, op, stage, latency_s).

    ``mode`` is ``probe`` (markers written and timed) or ``read_only`` (changes that already flowed,
    ``observe.observe_latency``; then ``markers`` holds one row per observed change); ``notes`` say what
    could not be measured and why.
    """

    table: str
    markers: pd.DataFrame
    latencies: pd.DataFrame
    settings: dict[str, object] = field(default_factory=dict)
    mode: str = PROBE
    notes: list[str] = field(default_factory=list)

    def summary(self) -> pd.DataFrame:
        return latency_summary(self.latencies)


def _unique_keys(markers: list[Marker]) -> list[object]:
    """The markers' keys, each once (compared as text, as the warehouse returns them)."""
    return list({str(m.key): m.key for m in markers}.values())


def _diff(end: float | None, start: float | None) -> float:
    return math.nan if end is None or start is None else end - start


def latency_table(markers: list[Marker]) -> pd.DataFrame:
    """One row per marker and stage (seconds); NaN where a stage never saw the marker."""
    rows = []
    for m in markers:
        kafka_at = m.kafka_ts_ms / 1000 if m.kafka_ts_ms is not None else None
        committed = pd.Timestamp(m.committed_at, unit="s", tz="UTC")
        for stage, value in (
            (SOURCE_TO_KAFKA, _diff(kafka_at, m.committed_at)),
            (KAFKA_TO_WAREHOUSE, _diff(m.changelog_at, kafka_at)),
            (END_TO_END, _diff(m.view_at, m.committed_at)),
        ):
            rows.append({"marker": m.marker, "op": m.op, "stage": stage, "latency_s": value, "committed_at": committed})
    return pd.DataFrame(rows, columns=["marker", "op", "stage", "latency_s", "committed_at"])


def marker_frame(markers: list[Marker]) -> pd.DataFrame:
    """One row per marker with every stage's time as a UTC timestamp (NaT: never seen)."""
    frame = pd.DataFrame([vars(m) for m in markers], columns=list(Marker.__dataclass_fields__))
    for column in ("committed_at", "kafka_seen_at", "changelog_at", "view_at"):
        frame[column] = pd.to_datetime(frame[column].astype(float), unit="s", utc=True)
    for column in ("source_ts_ms", "kafka_ts_ms"):
        frame[column] = pd.to_datetime(frame[column].astype(float), unit="ms", utc=True)
    return frame.rename(columns={"source_ts_ms": "source_ts", "kafka_ts_ms": "kafka_ts"})


def _plan(markers: int, can_update: bool) -> list[str]:
    cycle = ["insert", "update", "delete"] if can_update else ["insert", "delete"]
    return [cycle[i % len(cycle)] for i in range(markers)]


def _seed(
    rows: ProbeRows, view: WarehouseView, keys: list[object], count: int, timeout_s: float, progress: bool, connect_url: str
) -> None:
    """Insert ``count`` rows (their keys appended to ``keys`` at once, for cleanup) and wait until the
    latest-state view shows all of them."""
    for _ in range(count):
        keys.append(rows.insert()[0])
    deadline = time.monotonic() + timeout_s
    with tqdm(total=count, desc="seed rows visible", file=sys.stderr, disable=not progress) as bar:
        while True:
            seen = len(view.current_rows(keys)) if keys else 0
            bar.update(seen - bar.n)
            if seen == count:
                return
            if time.monotonic() > deadline:
                raise ProbeTimeout(
                    f"{rows.pipe.label}: only {seen}/{count} seed rows reached the latest-state view within "
                    f"{timeout_s:.0f}s; check the connectors: curl -s {connect_url}/connectors/"
                    f"{rows.pipe.source.connector}/status (and /connectors/{rows.pipe.sink.connector}/status)"
                )
            time.sleep(0.25)


def _kafka_time_ms(event: ChangeEvent, committed_at: float) -> int:
    """Kafka's record timestamp (the Connect producer's send time), or the consumer's receive time
    when the record carries none or one earlier than the commit (a producer that stamps the source
    time instead, with MySQL's one-second resolution)."""
    received_ms = int(event.received_at * 1000)
    if event.record_ts_ms is None or event.record_ts_ms < (committed_at - 1.0) * 1000:
        return received_ms
    return event.record_ts_ms


class _Observer:
    """Polls Kafka continuously and the warehouse every ``poll_interval_s`` for unfinished markers."""

    def __init__(self, tail: TopicTail, view: WarehouseView, poll_interval_s: float) -> None:
        self.tail = tail
        self.view = view
        self.poll_interval_s = poll_interval_s
        self._last_warehouse_poll = 0.0
        self.errors = 0

    def observe(self, pending: list[Marker]) -> None:
        for event in self.tail.poll(0.05):
            for marker in pending:
                if marker.kafka_ts_ms is None and marker.matches(event, self.view.key, self.view.marker_column):
                    marker.kafka_ts_ms = _kafka_time_ms(event, marker.committed_at)
                    marker.kafka_seen_at = event.received_at
                    marker.source_ts_ms = event.source_ts_ms
                    break
        if time.monotonic() - self._last_warehouse_poll >= self.poll_interval_s:
            self._last_warehouse_poll = time.monotonic()
            try:
                self._poll_changelog([m for m in pending if m.changelog_at is None])
                self._poll_view([m for m in pending if m.view_at is None])
            except GoogleAPIError:
                self.errors += 1  # a failed poll only delays first-seen times; counted in the settings
                if self.errors > 20:
                    raise
            for marker in pending:
                # The view reads the changelog: seeing a change there means the changelog had it.
                if marker.view_at is not None and (marker.changelog_at is None or marker.changelog_at > marker.view_at):
                    marker.changelog_at = marker.view_at

    def _poll_changelog(self, markers: list[Marker]) -> None:
        events = self.view.changelog_events(_unique_keys(markers))  # no query without keys
        now = time.time()
        for marker in markers:
            if any(marker.is_change(event["op"], event["k"], event.get("marker")) for event in events):
                marker.changelog_at = now

    def _poll_view(self, markers: list[Marker]) -> None:
        current = self.view.current_rows(_unique_keys(markers))  # no query without keys
        now = time.time()
        for marker in markers:
            key = str(marker.key)
            if marker.op == "insert" and key in current:
                marker.view_at = now
            elif marker.op == "update" and key in current and current[key] == marker.value:
                marker.view_at = now
            elif marker.op == "delete" and key not in current:
                marker.view_at = now


def run_probe(
    manifest: Manifest,
    credentials: Credentials,
    *,
    markers: int = 30,
    rate_per_s: float = 2.0,
    table: str | None = None,
    timeout_s: float = 120.0,
    poll_interval_s: float = 0.25,
    cleanup: bool = True,
    progress: bool = True,
    write_probe_rows: bool | None = None,
) -> ProbeResult:
    """Write ``markers`` changes at ``rate_per_s`` into ``table`` and time them through the pipeline.

    Waits at most ``timeout_s`` after the last write; markers never seen at a stage have NaN there.
    With ``cleanup`` the probe's remaining rows are deleted at the end (not timed). Refuses
    (``ReadOnlyError``, before connecting anywhere) unless the manifest's target is ``local`` or
    ``write_probe_rows`` is True; ``write_probe_rows=False`` always refuses.
    """
    if markers < 1 or rate_per_s <= 0:
        raise ValueError(f"markers must be >= 1 and rate_per_s > 0, got {markers} and {rate_per_s}")
    pipe = choose_pipe(manifest, table)
    require_probe_writes(manifest.target, write_probe_rows, where=f"source table {pipe.source_label} of stack {manifest.stack!r}")
    warehouse = WarehouseClient(manifest.bigquery)
    written: list[Marker] = []
    with SourceDatabase(pipe.source, credentials.database(pipe.source), writable=True) as db:
        rows = ProbeRows(db, pipe, target=manifest.target, write_probe_rows=write_probe_rows)
        view = warehouse_view(warehouse, rows)
        plan = _plan(markers, rows.marker_column is not None)
        seeds: list[object] = []
        try:
            _seed(rows, view, seeds, plan.count("update") + plan.count("delete"), timeout_s, progress, manifest.connect_url)
            update_seeds, delete_seeds = seeds[: plan.count("update")], seeds[plan.count("update") :]
            with TopicTail(manifest.kafka, credentials.kafka, pipe.source_table.topic) as tail:
                observer = _Observer(tail, view, poll_interval_s)
                began = time.monotonic()
                _timed_loop(rows, plan, observer, written, update_seeds, delete_seeds, rate_per_s, timeout_s, progress)
                elapsed = time.monotonic() - began
        finally:
            if cleanup:  # the probe's own rows only
                deleted = {str(m.key) for m in written if m.op == "delete"}
                left = [*seeds, *[m.key for m in written if m.op == "insert"]]
                rows.delete([key for key in left if str(key) not in deleted])
    return ProbeResult(
        table=pipe.label,
        markers=marker_frame(written),
        latencies=latency_table(written),
        settings={
            "markers": markers,
            "rate_per_s": rate_per_s,
            "poll_interval_s": poll_interval_s,
            "timeout_s": timeout_s,
            "marker_column": rows.marker_column,
            "warehouse_poll_errors": observer.errors,
            "run_s": round(elapsed, 1),
        },
    )


def _timed_loop(
    rows: ProbeRows,
    plan: list[str],
    observer: _Observer,
    written: list[Marker],
    update_seeds: list[object],
    delete_seeds: list[object],
    rate_per_s: float,
    timeout_s: float,
    progress: bool,
) -> None:
    """Write marker ``i`` at ``start + i / rate`` and observe until every marker is done or time is up."""
    start = time.monotonic()
    deadline = start + len(plan) / rate_per_s + timeout_s
    with tqdm(total=len(plan), desc="markers through the pipeline", file=sys.stderr, disable=not progress) as bar:
        while time.monotonic() < deadline:
            if len(written) < len(plan) and time.monotonic() >= start + len(written) / rate_per_s:
                written.append(_write(rows, len(written), plan[len(written)], update_seeds, delete_seeds))
            pending = [m for m in written if not m.done]
            if not pending and len(written) == len(plan):
                return
            observer.observe(pending)
            bar.update(sum(m.done for m in written) - bar.n)


def _write(rows: ProbeRows, index: int, op: str, update_seeds: list[object], delete_seeds: list[object]) -> Marker:
    if op == "insert":
        key, value = rows.insert()
        return Marker(index, op, key, value, time.time())
    if op == "update":
        key = update_seeds[(index // 3) % len(update_seeds)]
        value = rows.update(key)
        return Marker(index, op, key, value, time.time())
    key = delete_seeds.pop(0)
    rows.delete([key])
    return Marker(index, op, key, None, time.time())
