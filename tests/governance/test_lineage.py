"""Lineage of the example stack from the construct tree alone: exact edges, columns, renderings."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from datapipe_cdk.lineage import LineageGraph
from tests.governance.helpers import example_stacks


@pytest.fixture(scope="module")
def graphs() -> dict[str, LineageGraph]:
    return {name: LineageGraph.of(stack) for name, stack in example_stacks().items()}


def test_payments_lineage_has_exactly_the_declared_edges(graphs):
    assert graphs["payments"].edge_pairs == [
        ("source:payments-db/payments.orders", "topic:payments.payments.orders"),
        ("source:payments-db/payments.refunds", "topic:payments.payments.refunds"),
        ("source:payments-db/payments.accounts", "topic:payments.payments.accounts"),
        ("topic:payments.payments.orders", "table:payments_raw.payments_payments_orders"),
        ("topic:payments.payments.refunds", "table:payments_raw.payments_payments_refunds"),
        ("topic:payments.payments.accounts", "table:payments_raw.payments_payments_accounts"),
        ("table:payments_raw.payments_payments_orders", "view:finance.orders"),
        ("table:payments_raw.payments_payments_refunds", "view:finance.refunds"),
        ("view:finance.orders", "view:finance.daily_revenue"),
        ("table:payments_raw.payments_payments_orders", "view:risk.orders"),
        ("table:payments_raw.payments_payments_accounts", "view:risk.accounts"),
        ("table:payments_raw.payments_payments_orders", "view:fraud_analytics.orders"),
        ("table:payments_raw.payments_payments_accounts", "view:fraud_analytics.accounts"),
        ("view:fraud_analytics.orders", "view:fraud_analytics.large_orders_by_country"),
        ("view:fraud_analytics.accounts", "view:fraud_analytics.large_orders_by_country"),
    ]


def test_ledger_lineage_has_exactly_the_declared_edges(graphs):
    assert graphs["ledger"].edge_pairs == [
        ("source:ledger-db/payments.orders", "topic:ledger.payments.orders"),
        ("source:ledger-db/payments.refunds", "topic:ledger.payments.refunds"),
        ("source:ledger-db/payments.accounts", "topic:ledger.payments.accounts"),
        ("topic:ledger.payments.orders", "table:ledger_raw.ledger_payments_orders"),
        ("topic:ledger.payments.refunds", "table:ledger_raw.ledger_payments_refunds"),
        ("topic:ledger.payments.accounts", "table:ledger_raw.ledger_payments_accounts"),
        ("table:ledger_raw.ledger_payments_orders", "view:ledger_finance.orders"),
        ("table:ledger_raw.ledger_payments_refunds", "view:ledger_finance.refunds"),
        ("table:ledger_raw.ledger_payments_accounts", "view:ledger_finance.accounts"),
    ]


def test_classification_travels_with_columns_and_treatments(graphs):
    graph = graphs["payments"]
    source = graph.nodes["source:payments-db/payments.accounts"]
    assert (source.namespace, source.name, source.classification) == (
        "mysql://payments-mysql.acme.internal:3306",
        "payments.accounts",
        "PII",
    )
    edge = next(e for e in graph.edges if e.target == "topic:payments.payments.accounts")
    assert {(c.source, c.transformation) for c in edge.columns or ()} == {
        ("id", "identity"),
        ("name", "hashed"),
        ("email", "masked"),
        ("phone", "masked"),
        ("country", "identity"),
        ("created_at", "identity"),
    }
    risk = graph.nodes["view:risk.accounts"]
    assert [(c.name, c.label) for c in risk.columns] == [
        ("id", "INTERNAL"),
        ("email", "PII/EMAIL_ADDRESS (masked)"),
        ("country", "PUBLIC"),
        ("created_at", "INTERNAL"),
    ]
    assert not risk.carries_unmasked_pii
    assert [c.name for c in graphs["ledger"].nodes["source:ledger-db/payments.accounts"].columns] == [
        "id",
        "name",
        "email",
        "phone",
        "country",
        "created_at",
    ]
    ledger = graphs["ledger"].nodes["table:ledger_raw.ledger_payments_accounts"]
    assert [c.name for c in ledger.columns] == ["id", "country", "created_at"]  # excluded at the source
    assert graphs["ledger"].nodes["source:ledger-db/payments.accounts"].name == "payments.payments.accounts"


def test_custom_sql_views_have_table_level_lineage_only(graphs):
    edge = next(e for e in graphs["payments"].edges if e.target == "view:finance.daily_revenue")
    assert edge.columns is None
    assert edge.sql is not None and "GROUP BY day, currency" in edge.sql


def test_openlineage_events_one_per_job_with_column_lineage(graphs):
    when = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    events = graphs["payments"].openlineage_events(when)
    assert [e["job"]["name"] for e in events] == [
        "payments-db",
        "payments-raw",
        "finance.orders",
        "finance.refunds",
        "finance.daily_revenue",
        "risk.orders",
        "risk.accounts",
        "fraud-analytics.orders",
        "fraud-analytics.accounts",
        "fraud-analytics.large_orders_by_country",
    ]
    source = events[0]
    assert source["eventType"] == "COMPLETE" and source["eventTime"] == "2026-11-24T12:00:00Z"
    assert source["job"] == {"namespace": "datapipe://payments", "name": "payments-db", "facets": source["job"]["facets"]}
    assert source["job"]["facets"]["jobType"]["processingType"] == "STREAMING"
    assert uuid.UUID(source["run"]["runId"]) == uuid.UUID(graphs["payments"].openlineage_events(when)[0]["run"]["runId"])
    assert [(d["namespace"], d["name"]) for d in source["inputs"]] == [
        ("mysql://payments-mysql.acme.internal:3306", f"payments.{t}") for t in ("orders", "refunds", "accounts")
    ]
    accounts = next(d for d in source["outputs"] if d["name"] == "payments.payments.accounts")
    assert accounts["namespace"] == "kafka://kafka-1.acme.internal:9093"
    assert accounts["facets"]["columnLineage"]["fields"]["email"]["inputFields"] == [
        {
            "namespace": "mysql://payments-mysql.acme.internal:3306",
            "name": "payments.accounts",
            "field": "email",
            "transformations": [{"type": "DIRECT", "subtype": "TRANSFORMATION", "description": "masked", "masking": True}],
        }
    ]
    assert accounts["facets"]["ownership"]["owners"] == [{"name": "group:data-eng@acme.com", "type": "OWNER"}]
    view = next(e for e in events if e["job"]["name"] == "finance.daily_revenue")
    assert view["job"]["facets"]["sql"]["query"].startswith("SELECT DATE(created_at)")
    assert [d["name"] for d in view["inputs"]] == ["acme-data.finance.orders"]


def test_mermaid_and_dot_render_every_node_and_edge(graphs):
    graph = graphs["payments"]
    mermaid = graph.mermaid()
    assert mermaid.startswith("flowchart LR\n")
    assert mermaid.count(" -->|") == len(graph.edges)
    assert 'n0[("source table<br/>payments.orders<br/>CONFIDENTIAL")]' in mermaid
    assert "class n4 pii" in mermaid  # the source table payments.accounts holds PII as written
    assert "class n5 pii" in mermaid  # its topic carries name hashed, which still counts as PII
    assert "class n13 masked" in mermaid  # a view exposing only the masked email
    dot = graph.dot()
    assert dot.startswith('digraph "payments" {')
    assert '"topic:payments.payments.orders" -> "table:payments_raw.payments_payments_orders" [label="payments-raw"];' in dot
    assert dot.count(" -> ") == len(graph.edges)
