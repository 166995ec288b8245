"""Run the local-bigquery emulator with the one insertAll behaviour of BigQuery it lacks (run by its venv's Python).

BigQuery's ``tabledata.insertAll`` takes a TIMESTAMP as text or as a number of seconds since the epoch.
KCBQ writes the time it inserted each row (``_kafka.insertTime``) as such a number; local-bigquery 0.4.0
stores NULL for it inside a RECORD. Compaction and the latest-state views select recent changes by that
time, so this converts numeric TIMESTAMP values (at any depth) to the RFC 3339 text BigQuery would store,
then starts the emulator's own command line unchanged. Nothing else is altered.

Usage (as ``datapipe local up`` starts it): ``<emulator venv>/bin/python bigquery_fidelity.py serve --host ...``
"""

from __future__ import annotations

import sys
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


if __name__ == "__main__":
    _patch()
    from local_bigquery.cli import main

    sys.exit(main(sys.argv[1:]))
