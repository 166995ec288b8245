"""Data-quality checks of a deployed pipeline: source vs latest-state view, freshness, keys, nulls,
schema drift and a PII scan of datasets declared clean.

Every check yields ``CheckResult(check, table, status, detail)`` with status ``pass``, ``fail``,
``warn`` (worth a look, not a failure) or ``skip`` (could not be checked, detail says why). Counts
and key sets are compared after letting in-flight changes settle (up to ``settle_s``), because a
pipeline a second behind is correct, not broken.

The checks only read: each source is opened in a read-only session. Only ``deletion_check`` writes (its
own probe rows), and only where probes may write (``writes.probe_writes_allowed``: the local stack, or
``write_probe_rows=True``); elsewhere it is skipped, and ``deleted_rows_visible`` covers deletes from
existing data.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from functools import partial

import pandas as pd
from confluent_kafka import KafkaException
from google.api_core.exceptions import GoogleAPIError
from tqdm import tqdm

from datapipe_cdk.manifest import Manifest, Pipe, Sink, Source, SourceTable
from datapipe_cdk.runtime.credentials import Credentials
from datapipe_cdk.runtime.drift import drift
from datapipe_cdk.runtime.pii import redact, scan_rows
from datapipe_cdk.runtime.probe_rows import ProbeRows, choose_pipe, warehouse_view
from datapipe_cdk.runtime.reconcile import ReconcileError, Reconciliation, reconcile
from datapipe_cdk.runtime.sink_health import dead_letters, progress
from datapipe_cdk.runtime.source import DATABASE_ERRORS, SourceColumn, SourceDatabase, SourceError
from datapipe_cdk.runtime.stream import StreamError
from datapipe_cdk.runtime.warehouse import WarehouseClient, is_metadata_column
from datapipe_cdk.runtime.writes import probe_writes_allowed, read_only_reason

PASS, FAIL, WARN, SKIP = "pass", "fail", "warn", "skip"
QUERY_ERRORS: tuple[type[Exception], ...] = (GoogleAPIError, KafkaException, StreamError, *DATABASE_ERRORS)
RECONCILIATION_CHECKS = ("row_count", "deleted_rows_visible", "missing_rows", "values_match", "duplicate_keys")


@dataclass(frozen=True)
class CheckResult:
    check: str
    table: str
    status: str
    detail: str


@dataclass
class QualityReport:
    """Summary plus the tables behind it (one DataFrame each, ready to plot)."""

    checks: list[CheckResult] = field(default_factory=list)
    counts: list[dict[str, object]] = field(default_factory=list)
    freshness: list[dict[str, object]] = field(default_factory=list)
    null_rates: list[dict[str, object]] = field(default_factory=list)
    pii_findings: list[dict[str, object]] = field(default_factory=list)

    def summary(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(c) for c in self.checks], columns=["check", "table", "status", "detail"])

    def frame(self, name: str) -> pd.DataFrame:
        return pd.DataFrame(getattr(self, name))

    @property
    def passed(self) -> bool:
        return all(c.status != FAIL for c in self.checks)

    def add(self, check: str, table: str, status: str, detail: str) -> None:
        self.checks.append(CheckResult(check, table, status, detail))


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text[:300]}"


def _guarded(report: QualityReport, check: str, table: str, run: Callable[[], None]) -> None:
    """Run one check; a query that fails (broken view, missing table, source down) fails the check."""
    try:
        run()
    except QUERY_ERRORS as error:
        report.add(check, table, FAIL, f"could not run: {_one_line(error)}")


def _settle(measure: Callable[[], tuple[int, int]], settle_s: float) -> tuple[int, int, float]:
    """Repeat ``measure`` until both numbers agree or ``settle_s`` passes; returns them and the wait."""
    start = time.monotonic()
    while True:
        left, right = measure()
        waited = time.monotonic() - start
        if left == right or waited >= settle_s:
            return left, right, waited
        time.sleep(1.0)


class _Sources:
    """Read-only source connections (one per source) and source column lists (one per table) shared by the
    pipes of one ``run_quality`` call. Failures are not kept: the next pipe tries again."""

    def __init__(self, credentials: Credentials) -> None:
        self._credentials = credentials
        self._databases: dict[str, SourceDatabase] = {}
        self._columns: dict[tuple[str, str], list[SourceColumn]] = {}

    def database(self, source: Source) -> SourceDatabase:
        if source.name not in self._databases:
            self._databases[source.name] = SourceDatabase(source, self._credentials.database(source), writable=False)
        return self._databases[source.name]

    def columns(self, db: SourceDatabase, table: str) -> list[SourceColumn]:
        key = (db.source.name, table)
        if key not in self._columns:
            self._columns[key] = db.columns(table)
        return self._columns[key]

    def close(self) -> None:
        for db in self._databases.values():
            db.close()
        self._databases.clear()


def _view_table(pipe: Pipe) -> tuple[str, str]:
    assert pipe.warehouse is not None and pipe.view is not None
    return pipe.warehouse.dataset, pipe.view.name


def _check_counts(
    report: QualityReport, db: SourceDatabase, wh: WarehouseClient, pipe: Pipe, settle_s: float
) -> tuple[int, bool]:
    """Row counts of source and view; the source's count and whether they agree (then key sets are worth
    waiting for too)."""
    dataset, view = _view_table(pipe)
    source_rows, view_rows, waited = _settle(lambda: (db.count(pipe.source_table.name), wh.count(dataset, view)), settle_s)
    report.counts.append({"table": pipe.label, "source": pipe.source_label, "source_rows": source_rows, "view_rows": view_rows})
    status = PASS if source_rows == view_rows else FAIL
    report.add(
        "row_count",
        pipe.label,
        status,
        f"source {source_rows} rows, view {dataset}.{view} {view_rows} rows (settled {waited:.0f}s)",
    )
    return source_rows, status == PASS


def _redacted(table: SourceTable, key_columns: tuple[str, ...], keys: list[tuple[object, ...]]) -> list[object]:
    """Keys shown in a detail, each part redacted where the manifest classifies that key column as PII."""
    pii = [(p := table.policy(k)) is not None and p.classification == "PII" for k in key_columns]
    return [tuple(redact(str(v)) if secret else v for v, secret in zip(key, pii, strict=True)) for key in keys]


def _check_values(
    report: QualityReport,
    db: SourceDatabase,
    wh: WarehouseClient,
    pipe: Pipe,
    source_columns: list[SourceColumn],
    settle_s: float,
    row_limit: int,
) -> Reconciliation | None:
    """Every row, every declared column: missing rows, deleted rows still shown, differing values."""
    found: list[Reconciliation] = []

    def measure() -> tuple[int, int]:
        found[:] = [reconcile(db, wh, pipe, source_columns, row_limit=row_limit)]
        return (0, 0) if found[0].ok else (0, 1)

    try:
        _, _, waited = _settle(measure, settle_s)
    except ReconcileError as error:
        for check in ("missing_rows", "deleted_rows_visible", "values_match"):
            report.add(check, pipe.label, SKIP, str(error))
        return None
    result = found[0]
    key = pipe.source_table.primary_key
    report.add(
        "missing_rows",
        pipe.label,
        FAIL if result.missing else PASS,
        f"{len(result.missing)} source keys not in the view"
        + (f", e.g. {_redacted(pipe.source_table, key, result.missing[:3])}" if result.missing else ""),
    )
    report.add(
        "deleted_rows_visible",
        pipe.label,
        FAIL if result.extra else PASS,
        f"{len(result.extra)} keys in the view are gone from the source"
        + (
            f" (deleted without a delete event the pipeline saw, e.g. TRUNCATE: re-snapshot the table), e.g. "
            f"{_redacted(pipe.source_table, key, result.extra[:3])}"
            if result.extra
            else ""
        ),
    )
    pii = {c.name for c in pipe.source_table.columns if c.classification == "PII"}
    shown = [
        f"{_redacted(pipe.source_table, key, [d.key])[0]} {d.column}: "
        + ("values differ (PII, not shown)" if d.column in pii else f"source {d.source!r}, view {d.view!r}")
        for d in result.differences[:3]
    ]
    columns = ", ".join(f"{c} ({n} rows)" for c, n in sorted(result.differing_columns.items()))
    skipped = ", ".join(f"{c} ({w})" for c, w in result.skipped_columns.items())
    report.add(
        "values_match",
        pipe.label,
        FAIL if result.differences or result.duplicated else PASS,
        (f"{len(result.differences)} cells differ in {columns}, e.g. {'; '.join(shown)}" if result.differences else
         f"{result.source_rows} rows x {len(result.compared_columns)} columns equal (settled {waited:.0f}s)")
        + (f"; {len(result.duplicated)} keys shown twice" if result.duplicated else "")
        + (f"; not compared: {skipped}" if skipped else ""),
    )  # fmt: skip
    return result


def _check_duplicates(report: QualityReport, wh: WarehouseClient, pipe: Pipe) -> None:
    dataset, view = _view_table(pipe)
    row = wh.rows(wh.sql("duplicate_keys", table=wh.table_path(dataset, view), key=list(pipe.source_table.primary_key)))[0]
    duplicated = int(row["duplicated_keys"] or 0)
    report.add(
        "duplicate_keys",
        pipe.label,
        FAIL if duplicated else PASS,
        f"{duplicated} primary keys appear more than once ({int(row['extra_rows'] or 0)} extra rows)",
    )


def _check_freshness(report: QualityReport, wh: WarehouseClient, pipe: Pipe, freshness_max: timedelta) -> None:
    table = wh.table_path(pipe.sink.dataset, pipe.sink_table.table)
    row = wh.rows(wh.sql("freshness", table=table))[0]
    events = int(row["events"] or 0)
    newest = row["newest_ms"]
    if not events or newest is None:
        report.freshness.append({"table": pipe.changelog_label, "events": events, "newest_event": None, "age_s": None})
        report.add("freshness", pipe.changelog_label, WARN, "changelog table has no events yet")
        return
    age_s = time.time() - int(newest) / 1000
    report.freshness.append(
        {
            "table": pipe.changelog_label,
            "events": events,
            "newest_event": pd.Timestamp(int(newest), unit="ms", tz="UTC"),
            "age_s": age_s,
        }
    )
    status = PASS if age_s <= freshness_max.total_seconds() else FAIL
    report.add(
        "freshness",
        pipe.changelog_label,
        status,
        f"newest source commit {age_s:.0f}s ago (limit {freshness_max.total_seconds():.0f}s), {events} events",
    )


def _view_columns(wh: WarehouseClient, pipe: Pipe) -> list[str]:
    """The view's columns in order, without the pipeline's metadata columns."""
    return [c for c in wh.columns(*_view_table(pipe)) if not is_metadata_column(c)]


def _check_nulls(
    report: QualityReport, wh: WarehouseClient, pipe: Pipe, source_columns: list[SourceColumn], columns: list[str]
) -> None:
    """Null counts of the view's ``columns``; a NOT NULL source column that is NULL in the view fails."""
    dataset, view = _view_table(pipe)
    row = wh.rows(wh.sql("null_counts", table=wh.table_path(dataset, view), columns=columns))[0]
    total = int(row["row_count"] or 0)
    required = {c.name for c in source_columns if not c.nullable}
    bad = []
    for index, column in enumerate(columns):
        nulls = int(row[f"c{index}"] or 0)
        report.null_rates.append(
            {"table": pipe.label, "column": column, "rows": total, "nulls": nulls, "null_rate": nulls / total if total else 0.0}
        )
        policy = pipe.source_table.policy(column)
        if nulls and column in required and not (policy and policy.treatment):
            bad.append(f"{column} ({nulls})")
    detail = f"NOT NULL at the source but NULL in the view: {', '.join(bad)}" if bad else f"{len(columns)} columns, {total} rows"
    report.add("nulls_in_required_columns", pipe.label, FAIL if bad else PASS, detail)


def _check_drift(report: QualityReport, db: SourceDatabase, wh: WarehouseClient, pipe: Pipe, columns: list[SourceColumn]) -> None:
    """The source against its declaration (undeclared, gone or misfit columns; PostgreSQL replica identity), and
    the changelog table against the declared columns (no column the declaration lacks ever reaches it)."""
    found = drift(pipe.source_table, columns, db.replica_identity(pipe.source_table.name))
    report.add(
        "schema_drift",
        pipe.source_label,
        FAIL if found.problems else WARN if found.undeclared else PASS,
        found.describe() or f"{len(columns)} source columns, all declared and fitting their types",
    )
    expected = {c.name for c in pipe.sink_table.columns}
    if not expected:
        return
    actual = {c for c in wh.columns(pipe.sink.dataset, pipe.sink_table.table) if not is_metadata_column(c)}
    missing, extra = sorted(expected - actual), sorted(actual - expected)
    problems = [f"declared but missing: {missing} (deploy the stack)"] * bool(missing)
    problems += [f"columns nobody declared: {extra}"] * bool(extra)
    report.add(
        "changelog_columns",
        pipe.changelog_label,
        FAIL if problems else PASS,
        "; ".join(problems) or f"{len(actual)} columns, exactly the declared ones",
    )


def _check_view_columns(report: QualityReport, pipe: Pipe, source_columns: list[SourceColumn], view_columns: list[str]) -> None:
    """A latest-state view shows only source columns, never excluded ones, and every column it declares.
    A view may expose a subset (``expose(..., columns=[...])``); without the list in the manifest, a subset
    is reported, not failed."""
    excluded = pipe.source_table.excluded
    known = {c.name for c in source_columns} - excluded
    actual = set(view_columns)
    declared = set(pipe.view.columns) if pipe.view is not None else set()
    unknown = actual - known - excluded
    problems = [f"not in source: {sorted(unknown)}"] * bool(unknown)
    problems += [f"excluded columns present: {sorted(excluded & actual)}"] * bool(excluded & actual)
    problems += [f"declared but missing: {sorted(declared - actual)}"] * bool(declared - actual)
    hidden = sorted(known - actual)
    detail = "; ".join(problems) or (
        f"exposes {len(actual)} of {len(known)} source columns" + (f" (not {', '.join(hidden)})" if hidden else "")
    )
    report.add("view_columns", pipe.label, FAIL if problems else PASS, detail)


def _check_sink(report: QualityReport, manifest: Manifest, credentials: Credentials, sink: Sink, wait_s: float) -> None:
    """Records the sink set aside (their keys are stale in the views), and whether it really moves: Connect
    shows RUNNING while a task rewinds on a write it can never make; its committed offsets do not lie."""
    label = f"{sink.dataset} ({sink.name})"
    if sink.dead_letter_topic:
        letters = dead_letters(manifest.kafka, credentials.kafka, sink.dead_letter_topic)
        by_topic: dict[str, list[object]] = {}
        for letter in letters:
            by_topic.setdefault(letter.topic, []).append(letter.key)
        stale = "; ".join(f"{topic}: {len(keys)} records, keys e.g. {keys[:3]}" for topic, keys in by_topic.items())
        reasons = sorted({letter.reason for letter in letters if letter.reason})[:2]
        report.add(
            "dead_letters",
            label,
            FAIL if letters else PASS,
            f"{len(letters)} records in {sink.dead_letter_topic}; rows of these keys are stale in the views: {stale}"
            + (f" (why: {reasons})" if reasons else "")
            if letters
            else f"{sink.dead_letter_topic} is empty",
        )
    topics = [t.topic for t in sink.tables]
    moving = progress(manifest.kafka, credentials.kafka, f"connect-{sink.connector}", topics, wait_s=wait_s)
    stalled = moving.stalled
    report.add(
        "sink_progress",
        label,
        FAIL if stalled else PASS,
        f"{len(stalled)} partitions with {sum(p.lag for p in stalled)} records waiting made no progress in "
        f"{moving.waited_s:.0f}s (the sink rewinds or is stopped; see its task's log): "
        + ", ".join(f"{p.topic}[{p.partition}] at {p.committed} of {p.end}" for p in stalled[:5])
        if stalled
        else f"lag {moving.lag} records" + (f", moving ({moving.waited_s:.0f}s apart)" if moving.waited_s else ""),
    )


def _scan(report: QualityReport, wh: WarehouseClient, dataset: str, table: str, sample_rows: int) -> None:
    label = f"{dataset}.{table}"
    findings = scan_rows(wh.sample(dataset, table, sample_rows))
    for f in findings:
        report.pii_findings.append({"table": label, **asdict(f)})
    detail = ", ".join(f"{f.column}: {f.info_type} in {f.cells} cells (e.g. {f.example})" for f in findings)
    report.add("pii_in_clean_dataset", label, FAIL if findings else PASS, detail or f"no PII in {sample_rows} sampled rows")


def _pii_targets(manifest: Manifest) -> list[tuple[str, str]]:
    """(dataset, table) of every changelog table and view in a dataset declared clean."""
    targets = [(s.dataset, t.table) for s in manifest.sinks if not s.holds_pii for t in s.tables]
    targets += [(w.dataset, v.name) for w in manifest.warehouses if not w.holds_pii for v in w.views]
    return targets


def run_quality(
    manifest: Manifest,
    credentials: Credentials,
    *,
    settle_s: float = 60.0,
    freshness_max: timedelta = timedelta(hours=24),
    sample_rows: int = 500,
    key_limit: int = 100_000,
    progress_bar: bool = True,
    progress_wait_s: float = 15.0,
) -> QualityReport:
    """Run every check on every exposed table of the stack, each sink's health, then the PII scan of clean datasets.

    ``key_limit``: tables with more rows are not reconciled value by value (the check says so);
    ``progress_wait_s``: how long to watch a sink with records waiting before calling it stalled."""
    report = QualityReport()
    wh = WarehouseClient(manifest.bigquery)
    sources = _Sources(credentials)
    changelogs_seen: set[str] = set()
    try:
        for pipe in tqdm(manifest.pipes(), desc="quality checks", file=sys.stderr, disable=not progress_bar):
            first = pipe.changelog_label not in changelogs_seen
            changelogs_seen.add(pipe.changelog_label)
            if first:
                _guarded(report, "freshness", pipe.changelog_label, partial(_check_freshness, report, wh, pipe, freshness_max))
            if pipe.view is None:
                report.add("row_count", pipe.label, SKIP, "no latest-state view exposes this table")
                continue
            _check_pipe(report, wh, sources, pipe, settle_s, key_limit, first)
    finally:
        sources.close()
    for sink in manifest.sinks:
        check_sink = partial(_check_sink, report, manifest, credentials, sink, progress_wait_s)
        _guarded(report, "sink_progress", sink.dataset, check_sink)
    for dataset, table in tqdm(_pii_targets(manifest), desc="PII scan", file=sys.stderr, disable=not progress_bar):
        _guarded(report, "pii_in_clean_dataset", f"{dataset}.{table}", partial(_scan, report, wh, dataset, table, sample_rows))
    return report


def _check_pipe(
    report: QualityReport,
    wh: WarehouseClient,
    sources: _Sources,
    pipe: Pipe,
    settle_s: float,
    key_limit: int,
    changelog_first_seen: bool,
) -> None:
    """Every view check of one pipe; a failing query fails that check only."""
    label = pipe.label
    try:
        db = sources.database(pipe.source)
    except DATABASE_ERRORS as error:
        report.add("row_count", label, FAIL, f"could not reach source {pipe.source.name}: {_one_line(error)}")
        return
    columns: list[SourceColumn] = []
    counted: list[tuple[int, bool]] = []  # (source rows, counts agree) once the row count check ran

    def values() -> None:
        agreed = counted[0][1] if counted else False
        _check_values(report, db, wh, pipe, columns, settle_s if agreed else 0.0, key_limit)

    _guarded(report, "schema_drift", label, lambda: columns.extend(sources.columns(db, pipe.source_table.name)))
    _guarded(report, "row_count", label, lambda: counted.append(_check_counts(report, db, wh, pipe, settle_s)))
    if columns:
        _guarded(report, "values_match", label, values)
    _guarded(report, "duplicate_keys", label, lambda: _check_duplicates(report, wh, pipe))
    if columns:
        try:
            view_columns = _view_columns(wh, pipe)
        except QUERY_ERRORS as error:
            for check in ("nulls_in_required_columns", "view_columns"):
                report.add(check, label, FAIL, f"could not run: {_one_line(error)}")
        else:
            _guarded(report, "nulls_in_required_columns", label, lambda: _check_nulls(report, wh, pipe, columns, view_columns))
            _check_view_columns(report, pipe, columns, view_columns)
        if changelog_first_seen:
            _guarded(report, "schema_drift", pipe.source_label, lambda: _check_drift(report, db, wh, pipe, columns))


def deletion_check(
    manifest: Manifest,
    credentials: Credentials,
    *,
    table: str | None = None,
    rows: int = 5,
    timeout_s: float = 60.0,
    write_probe_rows: bool | None = None,
) -> tuple[pd.DataFrame, CheckResult]:
    """Insert ``rows`` probe rows, wait until the view shows them, delete them at the source and time
    how long each takes to disappear from the latest-state view. Only the probe's own rows are deleted;
    a query that fails makes the check fail with the error as its detail.

    Writes only where probes may (the manifest's target is ``local``, or ``write_probe_rows=True``);
    otherwise the check is skipped (status ``skip``) without connecting to the source."""
    if not probe_writes_allowed(manifest.target, write_probe_rows):
        try:
            label = choose_pipe(manifest, table, for_markers=False).label
        except SourceError:
            label = manifest.stack
        return pd.DataFrame(), CheckResult(
            "deletes_propagate",
            label,
            SKIP,
            f"{read_only_reason(manifest.target, write_probe_rows)}: no probe rows written; "
            "deleted_rows_visible compares the source's keys with the view's instead (write_probe_rows=True to opt in)",
        )
    pipe = choose_pipe(manifest, table)
    try:
        return _deletion_check(manifest, credentials, pipe, rows, timeout_s, write_probe_rows)
    except QUERY_ERRORS as error:
        return pd.DataFrame(), CheckResult("deletes_propagate", pipe.label, FAIL, f"could not run: {_one_line(error)}")


def _deletion_check(
    manifest: Manifest, credentials: Credentials, pipe: Pipe, rows: int, timeout_s: float, write_probe_rows: bool | None
) -> tuple[pd.DataFrame, CheckResult]:
    wh = WarehouseClient(manifest.bigquery)
    with SourceDatabase(pipe.source, credentials.database(pipe.source), writable=True) as db:
        probe = ProbeRows(db, pipe, target=manifest.target, write_probe_rows=write_probe_rows)
        view = warehouse_view(wh, probe)
        keys: list[object] = []
        visible_at: dict[str, float] = {}
        gone_at: dict[str, float] = {}
        deleted = False
        inserted_at = time.time()
        try:
            for _ in range(rows):
                keys.append(probe.insert()[0])
            deadline = time.monotonic() + timeout_s
            while len(visible_at) < rows and time.monotonic() < deadline:
                shown = view.current_rows(keys)
                now = time.time()
                for shown_key in shown:
                    visible_at.setdefault(shown_key, now)
                time.sleep(0.2)
            probe.delete(keys)
            deleted = True
            deleted_at = time.time()
            deadline = time.monotonic() + timeout_s
            while len(gone_at) < rows and time.monotonic() < deadline:
                shown = view.current_rows(keys)
                now = time.time()
                for gone in keys:
                    if str(gone) not in shown:
                        gone_at.setdefault(str(gone), now)
                time.sleep(0.2)
        finally:
            if not deleted:
                probe.delete(keys)
    frame = pd.DataFrame(
        [
            {
                "key": str(k),
                "visible_after_insert_s": visible_at[str(k)] - inserted_at if str(k) in visible_at else None,
                "visible_before_delete": str(k) in visible_at,
                "gone_after_delete_s": gone_at[str(k)] - deleted_at if str(k) in gone_at else None,
            }
            for k in keys
        ]
    )
    ok = len(visible_at) == rows and len(gone_at) == rows
    detail = (
        f"{len(visible_at)}/{rows} probe rows became visible, {len(gone_at)}/{rows} disappeared "
        f"from {pipe.warehouse.dataset if pipe.warehouse else '?'}.{pipe.view.name if pipe.view else '?'} "
        f"within {timeout_s:.0f}s of the delete"
    )
    return frame, CheckResult("deletes_propagate", pipe.label, PASS if ok else FAIL, detail)
