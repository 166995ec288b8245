"""Run the local-bigquery emulator with two fixes of ours (run by its venv's Python), then its own command line.

1. BigQuery's ``tabledata.insertAll`` takes a TIMESTAMP as text or as a number of seconds since the epoch.
   KCBQ writes the time it inserted each row (``_kafka.insertTime``) as such a number; local-bigquery 0.4.0
   stores NULL for it inside a RECORD. Compaction and the latest-state views select recent changes by that
   time, so numeric TIMESTAMP values (at any depth) become the RFC 3339 text BigQuery would store.
2. KCBQ 2.0.0-alpha asks ``tables.get`` before every single record it writes; the emulator answers from its
   catalog in tens to hundreds of milliseconds, which made it the local stack's bottleneck. Answers are kept
   for one second and dropped at once by any change to any table (so Terraform never reads a stale schema;
   ``numRows`` may lag a second, as BigQuery's lags its streaming buffer).

Usage (as ``datapipe local up`` starts it): ``<emulator venv>/bin/python bigquery_fidelity.py serve --host ...``
"""

from __future__ import annotations

import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _seconds_to_text(value: float) -> str:
    return (EPOCH + timedelta(microseconds=round(value * 1_000_000))).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _plain(value: Any) -> Any:
    """The request's value without the emulator's pydantic ``JsonValue`` wrappers."""
    value = getattr(value, "root", value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _convert(fields: Any, data: dict[str, Any]) -> None:
    """Numeric TIMESTAMP values of ``data`` (a plain row) to text, following ``fields`` into RECORDs."""
    by_name = {str(key).casefold(): key for key in data}
    for field in fields or ():
        key = by_name.get(str(field.name).casefold())
        if key is None:
            continue
        value = data[key]
        kind = str(field.type or "").upper()
        values = value if isinstance(value, list) else [value]
        if kind == "TIMESTAMP":
            converted = [_seconds_to_text(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v for v in values]
            data[key] = converted if isinstance(value, list) else converted[0]
        elif kind in ("RECORD", "STRUCT"):
            for item in values:
                if isinstance(item, dict):
                    _convert(field.fields, item)


def _patch() -> None:
    from local_bigquery.catalog import tabledata, tables

    original = tabledata.insert_all

    def insert_all(project_id: str, dataset_id: str, table_id: str, body: Any) -> dict[str, Any]:
        if not body.templateSuffix and body.rows:
            fields = tables.columns(project_id, dataset_id, table_id)
            for row in body.rows:
                if row.json_ is not None:
                    data = _plain(row.json_)
                    _convert(fields, data)
                    row.json_ = type(row.json_).model_validate(data)
        result: dict[str, Any] = original(project_id, dataset_id, table_id, body)
        return result

    tabledata.insert_all = insert_all


TABLE_ANSWER_TTL_S = 1.0
_MUTATIONS = ("record", "_store", "forget", "rename", "create", "update", "evolve", "write", "delete", "annotate", "refreshed")


def _cache_table_answers() -> None:
    from local_bigquery.catalog import tables

    answers: dict[tuple[Any, ...], tuple[float, Any]] = {}
    lock = threading.Lock()
    original_get = tables.get

    def get(*args: Any, **kwargs: Any) -> Any:
        key = (*args, *sorted(kwargs.items()))
        now = time.monotonic()
        with lock:
            hit = answers.get(key)
        if hit is not None and now - hit[0] < TABLE_ANSWER_TTL_S:
            return hit[1]
        value = original_get(*args, **kwargs)
        with lock:
            answers[key] = (now, value)
        return value

    def dropping(change: Any) -> Any:
        def changed(*args: Any, **kwargs: Any) -> Any:
            with lock:
                answers.clear()
            try:
                return change(*args, **kwargs)
            finally:
                with lock:
                    answers.clear()

        return changed

    tables.get = get
    for name in _MUTATIONS:
        if hasattr(tables, name):
            setattr(tables, name, dropping(getattr(tables, name)))


if __name__ == "__main__":
    _patch()
    _cache_table_answers()
    from local_bigquery.cli import main

    sys.exit(main(sys.argv[1:]))
