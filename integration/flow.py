"""Rows through the deployed example pipelines: write them in the source databases, read them back
from Kafka and from the warehouse's latest-state views. Shared by the integration tests and the demo.

The example writes ``payments.orders`` in MariaDB (stack ``payments``, view ``finance.orders``) and
in PostgreSQL (stack ``ledger``, view ``ledger_finance.orders``).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from datapipe_cdk.local import bigquery, databases, kafka
from datapipe_cdk.local.config import StackConfig

T = TypeVar("T")

ORDER_COLUMNS = ("id", "account_id", "amount", "currency", "status", "created_at", "updated_at")
"""The columns of ``payments.orders`` compared between a source and its latest-state view."""


@dataclass(frozen=True)
class Pipe:
    """One example pipeline seen end to end: its source engine, topic, changelog table and view."""

    stack: str
    engine: str
    topic: str
    changelog: str
    view: str
    table: str = "payments.orders"


PIPES: tuple[Pipe, ...] = (
    Pipe("payments", "mariadb", "payments.payments.orders", "payments_raw.payments_payments_orders", "finance.orders"),
    Pipe("ledger", "postgres", "ledger.payments.orders", "ledger_raw.ledger_payments_orders", "ledger_finance.orders"),
)

Row = dict[str, Any]


class WaitTimeout(AssertionError):
    """A bounded wait ran out; the message says what was awaited and the last value seen."""


def wait_for(probe: Callable[[], T | None], timeout: float, what: str, interval: float = 1.0) -> T:
    """Call ``probe`` until it returns something truthy, at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


# --- sources ------------------------------------------------------------------------------------


@contextmanager
def source_cursor(cfg: StackConfig, engine: str) -> Iterator[Any]:
    """An autocommit cursor on the example database as its admin (MariaDB or PostgreSQL)."""
    conn: Any = databases.mariadb_connect(cfg) if engine == "mariadb" else databases.postgres_connect(cfg, dbname="payments")
    try:
        with conn.cursor() as cursor:
            yield cursor
    finally:
        conn.close()


def insert_order(cfg: StackConfig, engine: str, account_id: int, amount: Decimal, currency: str, status: str) -> int:
    """Insert one order; its id."""
    with source_cursor(cfg, engine) as cur:
        sql = "INSERT INTO payments.orders (account_id, amount, currency, status) VALUES (%s, %s, %s, %s)"
        if engine == "postgres":
            cur.execute(sql + " RETURNING id", (account_id, amount, currency, status))
            return int(cur.fetchone()[0])
        cur.execute(sql, (account_id, amount, currency, status))
        return int(cur.lastrowid)


def update_status(cfg: StackConfig, engine: str, order_id: int, status: str) -> None:
    with source_cursor(cfg, engine) as cur:
        cur.execute("UPDATE payments.orders SET status = %s WHERE id = %s", (status, order_id))


def delete_order(cfg: StackConfig, engine: str, order_id: int) -> None:
    with source_cursor(cfg, engine) as cur:
        cur.execute("DELETE FROM payments.orders WHERE id = %s", (order_id,))


def insert_then_update_in_one_transaction(cfg: StackConfig, engine: str, statuses: list[str]) -> int:
    """Insert an order with ``statuses[0]`` and update it to each later status, all in one transaction.

    The changes share one commit: only their source positions tell the latest-state view their order.
    """
    conn: Any = databases.mariadb_connect(cfg) if engine == "mariadb" else databases.postgres_connect(cfg, dbname="payments")
    try:
        conn.autocommit = False
        with conn.cursor() as cur:
            sql = "INSERT INTO payments.orders (account_id, amount, currency, status) VALUES (104, 1.00, 'EUR', %s)"
            if engine == "postgres":
                cur.execute(sql + " RETURNING id", (statuses[0],))
                order_id = int(cur.fetchone()[0])
            else:
                cur.execute(sql, (statuses[0],))
                order_id = int(cur.lastrowid)
            for status in statuses[1:]:
                cur.execute("UPDATE payments.orders SET status = %s WHERE id = %s", (status, order_id))
        conn.commit()
        return order_id
    finally:
        conn.close()


def insert_refund(cfg: StackConfig, engine: str, order_id: int, amount: Decimal, reason: str) -> None:
    with source_cursor(cfg, engine) as cur:
        cur.execute("INSERT INTO payments.refunds (order_id, amount, reason) VALUES (%s, %s, %s)", (order_id, amount, reason))


def source_orders(cfg: StackConfig, engine: str) -> dict[int, Row]:
    """Every current row of ``payments.orders`` in the source, normalized, keyed by id."""
    with source_cursor(cfg, engine) as cur:
        cur.execute(f"SELECT {', '.join(ORDER_COLUMNS)} FROM payments.orders")
        return {int(row[0]): normalize(dict(zip(ORDER_COLUMNS, row, strict=True))) for row in cur.fetchall()}


def normalize(row: Row) -> Row:
    """Comparable values: UTC-aware timestamps (MariaDB gives naive UTC), numbers as Decimal, text stripped."""
    out: Row = {}
    for key, value in row.items():
        if isinstance(value, dt.datetime):
            value = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
        elif isinstance(value, (int, float)) and key == "amount":
            value = Decimal(str(value))
        elif isinstance(value, str):
            value = value.rstrip()
        out[key] = value
    return out


# --- warehouse ----------------------------------------------------------------------------------


def view_orders(client: Any, view: str) -> dict[int, Row]:
    """Every row of a latest-state orders view, normalized, keyed by id."""
    rows = client.query_and_wait(f"SELECT {', '.join(ORDER_COLUMNS)} FROM `{bigquery.PROJECT}.{view}`")
    return {int(row["id"]): normalize(dict(row.items())) for row in rows}


def changelog_events(client: Any, changelog: str, order_id: int) -> list[Row]:
    """The changelog rows of one order, oldest first (by Kafka offset)."""
    sql = (
        f"SELECT id, status, __op, __deleted, _kafka.offset AS kafka_offset FROM `{bigquery.PROJECT}.{changelog}` "
        f"WHERE id = {int(order_id)} ORDER BY _kafka.offset"
    )
    return [dict(row.items()) for row in client.query_and_wait(sql)]


def diff(expected: dict[int, Row], actual: dict[int, Row]) -> list[str]:
    """Row-by-row differences between the source and a view ([] when equal)."""
    problems = [f"id {key}: missing from the view" for key in sorted(expected.keys() - actual.keys())]
    problems += [f"id {key}: in the view but not in the source" for key in sorted(actual.keys() - expected.keys())]
    for key in sorted(expected.keys() & actual.keys()):
        if expected[key] != actual[key]:
            want, got = expected[key], actual[key]
            changed = {col: (want[col], got.get(col)) for col in want if want[col] != got.get(col)}
            problems.append(f"id {key}: source != view {changed}")
    return problems


# --- Kafka --------------------------------------------------------------------------------------


def kafka_config(cfg: StackConfig, user: str, **extra: Any) -> dict[str, Any]:
    """confluent-kafka settings for one of the stack's SCRAM users (password from the run dir)."""
    return {
        "bootstrap.servers": cfg.kafka_bootstrap,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": kafka.SCRAM,
        "sasl.username": user,
        "sasl.password": kafka.passwords(cfg)[user],
        "log_level": 4,  # warnings and errors; librdkafka logs client teardown at info
        **extra,
    }


@dataclass(frozen=True)
class Consumed:
    """What a consumer saw: decoded values (None for tombstones) and the refusal, if the broker refused."""

    values: list[Any]
    refused: str | None


def consume(
    cfg: StackConfig,
    user: str,
    topic: str,
    group: str,
    *,
    timeout: float = 30.0,
    until: Callable[[list[Any]], bool] | None = None,
) -> Consumed:
    """Read ``topic`` from the beginning as ``user`` in consumer group ``group``, without committing.

    Stops at the first authorization error, when ``until(values)`` holds, or after ``timeout`` seconds.
    """
    import json

    from confluent_kafka import Consumer, KafkaError

    refusals = {KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED}
    consumer = Consumer(
        kafka_config(
            cfg,
            user,
            **{"group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False, "enable.partition.eof": False},
        )
    )
    values: list[Any] = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() in refusals:
                    return Consumed(values, error.name())
                continue
            raw = message.value()
            values.append(None if raw is None else json.loads(raw))
            if until is not None and until(values):
                break
    finally:
        consumer.close()
    return Consumed(values, None)


def envelope_ops(values: list[Any], order_id: int) -> list[str]:
    """The Debezium ``op`` of every change event of one order in a topic's values, in order."""
    ops = []
    for value in values:
        payload = (value or {}).get("payload") or {}
        row = payload.get("after") or payload.get("before") or {}
        if row.get("id") == order_id:
            ops.append(str(payload.get("op")))
    return ops
