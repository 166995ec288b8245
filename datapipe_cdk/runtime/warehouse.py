"""BigQuery as the notebooks see it: the official client pointed at the manifest's endpoint.

With an emulator endpoint the client uses ``AnonymousCredentials``; results stay on REST
(``query_and_wait``, no Storage Read API), so pyarrow is not needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from datapipe_cdk.manifest import BigQueryEndpoint
from datapipe_cdk.runtime._sql import render

Param = bigquery.ScalarQueryParameter | bigquery.ArrayQueryParameter
METADATA_PREFIXES = ("__", "_kafka")
"""Columns the pipeline adds (Debezium's ``__op`` etc., KCBQ's ``_kafka`` record)."""


def bigquery_client(endpoint: BigQueryEndpoint) -> bigquery.Client:
    """A client for ``endpoint``; an explicit endpoint (emulator) gets anonymous credentials."""
    if endpoint.endpoint:
        return bigquery.Client(
            project=endpoint.project,
            location=endpoint.location,
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=endpoint.endpoint),
        )
    return bigquery.Client(project=endpoint.project, location=endpoint.location)


def scalar(name: str, type_: str, value: str | int | float | bool | None) -> bigquery.ScalarQueryParameter:
    return bigquery.ScalarQueryParameter(name, type_, value)


def array(name: str, type_: str, values: Sequence[object]) -> bigquery.ArrayQueryParameter:
    return bigquery.ArrayQueryParameter(name, type_, list(values))


class WarehouseClient:
    """Queries against one project; tables are named by (dataset, table)."""

    def __init__(self, endpoint: BigQueryEndpoint, client: bigquery.Client | None = None) -> None:
        self.endpoint = endpoint
        self.client = client or bigquery_client(endpoint)

    def table_path(self, dataset: str, table: str) -> tuple[str, str, str]:
        return (self.endpoint.project, dataset, table)

    def sql(self, template: str, **context: object) -> str:
        return render("bigquery", f"bigquery/{template}", **context)

    def rows(self, sql: str, params: Sequence[Param] = (), timeout_s: float = 60.0) -> list[dict[str, Any]]:
        config = bigquery.QueryJobConfig(query_parameters=list(params))
        result = self.client.query_and_wait(sql, job_config=config, wait_timeout=timeout_s)
        return [dict(row.items()) for row in result]

    def columns(self, dataset: str, table: str) -> dict[str, str]:
        """Column name → BigQuery type, from the table's or view's metadata."""
        ref = ".".join(self.table_path(dataset, table))
        return {field.name: field.field_type for field in self.client.get_table(ref).schema}

    def count(self, dataset: str, table: str) -> int:
        rows = self.rows(self.sql("count", table=self.table_path(dataset, table)))
        return int(rows[0]["n"])

    def sample(self, dataset: str, table: str, limit: int) -> list[dict[str, Any]]:
        sql = self.sql("sample", table=self.table_path(dataset, table))
        return self.rows(sql, [scalar("limit", "INT64", limit)])

    def keys(self, dataset: str, table: str, key: str, limit: int) -> list[Any]:
        sql = self.sql("keys", table=self.table_path(dataset, table), key=key)
        return [row["k"] for row in self.rows(sql, [scalar("limit", "INT64", limit)])]


def is_metadata_column(name: str) -> bool:
    return name.startswith(METADATA_PREFIXES)
