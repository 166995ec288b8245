"""The catalog manifest of the example stack: every dataset, table, view and topic, with its metadata."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from datapipe_cdk.catalog import catalog, to_json
from tests.governance.helpers import ACCOUNTS, ORDERS, OWNER, example_stacks, make_source, make_stack


@pytest.fixture(scope="module")
def entries() -> dict[tuple[str, str], dict]:
    doc = catalog(example_stacks()["payments"])
    assert doc["catalog_version"] == 1 and doc["stack"] == "payments"
    return {(e["kind"], e["name"]): e for e in doc["entries"]}


def test_catalog_lists_every_dataset_table_view_and_topic(entries):
    assert sorted(entries) == sorted(
        [
            ("topic", "payments.payments.orders"),
            ("topic", "payments.payments.refunds"),
            ("topic", "payments.payments.accounts"),
            ("topic", "_schema-history.payments"),
            ("topic", "__debezium-heartbeat.payments"),
            ("topic", "dlq.payments-raw"),
            ("dataset", "payments_raw"),
            ("dataset", "finance"),
            ("dataset", "risk"),
            ("dataset", "fraud_analytics"),
            ("dataset", "dlp_findings"),
            ("table", "payments_raw.payments_payments_orders"),
            ("table", "payments_raw.payments_payments_refunds"),
            ("table", "payments_raw.payments_payments_accounts"),
            ("view", "finance.orders"),
            ("view", "finance.refunds"),
            ("view", "finance.daily_revenue"),
            ("view", "risk.orders"),
            ("view", "risk.accounts"),
            ("view", "fraud_analytics.orders"),
            ("view", "fraud_analytics.accounts"),
            ("view", "fraud_analytics.large_orders_by_country"),
        ]
    )
    for entry in entries.values():
        assert set(entry) >= {"owners", "description", "schema", "classification", "retention", "location", "path"}
        assert entry["owners"], f"{entry['name']} has no owner"


def test_topic_entry_carries_owner_schema_classification_retention_and_location(entries):
    topic = entries[("topic", "payments.payments.accounts")]
    assert topic["location"] == "kafka://kafka-1.acme.internal:9093/payments.payments.accounts"
    assert topic["owners"] == ["group:data-eng@acme.com"]
    assert topic["retention"] == {"setting": "retention.ms", "ms": 604_800_000, "days": 7.0, "text": "7 days"}
    assert (topic["classification"], topic["unmasked_pii"]) == ("PII", True)  # accounts.name arrives hashed
    assert topic["info_types"] == ["EMAIL_ADDRESS", "PERSON_NAME", "PHONE_NUMBER"]
    assert {c["name"]: c["treatment"] for c in topic["schema"]} == {
        "id": None,
        "name": "hashed",
        "email": "masked",
        "phone": "masked",
        "country": None,
        "created_at": None,
    }


def test_dataset_table_and_view_entries(entries):
    raw = entries[("dataset", "payments_raw")]
    assert raw["location"] == "bigquery://acme-data/payments_raw" and raw["region"] == "US"
    assert raw["holds_pii"] is True and raw["unmasked_pii"] is True  # accounts.name arrives hashed
    assert raw["retention"]["days"] == 365.0 and raw["retention"]["setting"] == "default_partition_expiration_ms"
    table = entries[("table", "payments_raw.payments_payments_orders")]
    assert table["primary_key"] == ["id"] and table["upstream"] == "payments.payments.orders"
    assert table["classification"] == "CONFIDENTIAL"
    assert [c["name"] for c in table["schema"]] == [
        "id",
        "account_id",
        "amount",
        "currency",
        "status",
        "created_at",
        "updated_at",
    ]
    view = entries[("view", "risk.accounts")]
    assert [c["name"] for c in view["schema"]] == ["id", "email", "country", "created_at"]
    assert view["owners"] == ["group:risk-eng@acme.com"] and view["upstream"] == ["payments_raw.payments_payments_accounts"]
    team = entries[("view", "fraud_analytics.large_orders_by_country")]
    assert team["column_lineage"] == "upper bound (custom SQL)"
    assert team["upstream"] == ["fraud_analytics.orders", "fraud_analytics.accounts"]
    assert "accounts.email" in [c["name"] for c in team["schema"]]
    assert entries[("dataset", "fraud_analytics")]["description"] == "Orders and account geography for fraud pattern analysis"


def test_a_captured_tables_own_owner_wins_over_its_sources():
    stack = make_stack()
    make_source(stack, tables={"accounts": replace(ACCOUNTS, owner="group:accounts-team@acme.com"), "orders": ORDERS})
    topics = {e["name"]: e for e in catalog(stack)["entries"] if e["kind"] == "topic"}
    assert topics["payments.payments.accounts"]["owners"] == ["group:accounts-team@acme.com"]
    assert topics["payments.payments.orders"]["owners"] == [str(OWNER)]


def test_catalog_json_is_stable():
    stack = example_stacks()["ledger"]
    assert to_json(stack) == to_json(stack)
    assert json.loads(to_json(stack))["stack"] == "ledger"
