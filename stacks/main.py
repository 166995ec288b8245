"""The example pipelines: WePay-shaped payments (MySQL) and a PostgreSQL ledger.

``datapipe synth`` (or ``cdktf synth``, or ``python stacks/main.py``) writes both stacks under
``cdktf.out/``. They declare production settings; ``datapipe deploy --local`` deploys the very same
app onto the local stack (MySQL becomes the local MariaDB), as it would any user's app.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from datapipe_cdk import (
    App,
    BigQuerySink,
    CdcSource,
    Classification,
    Column,
    ColumnType,
    ConnectCluster,
    DataPipelineStack,
    Engine,
    GcpProject,
    InfoType,
    KafkaCluster,
    MicroWarehouse,
    Principal,
    Table,
)
from datapipe_cdk.governance import DlpInspection
from datapipe_cdk.teamspec import compile_teams

TEAMS = Path(__file__).resolve().parent / "teams"
"""Team microwarehouse files (Stage 5), validated against schemas/team.schema.json."""

ORDERS = Table(
    primary_key=["id"],
    columns=[
        Column("id", ColumnType.INT64, Classification.INTERNAL),
        Column("account_id", ColumnType.INT64, Classification.INTERNAL),
        Column("amount", ColumnType.NUMERIC, Classification.CONFIDENTIAL, precision=12, scale=2),
        Column("currency", ColumnType.STRING, Classification.PUBLIC),
        Column("status", ColumnType.STRING, Classification.INTERNAL),
        Column("created_at", ColumnType.TIMESTAMP, Classification.INTERNAL),
        Column("updated_at", ColumnType.TIMESTAMP, Classification.INTERNAL),
    ],
    description="One row per payment order",
)
REFUNDS = Table(
    primary_key=["id"],
    columns=[
        Column("id", ColumnType.INT64, Classification.INTERNAL),
        Column("order_id", ColumnType.INT64, Classification.INTERNAL),
        Column("amount", ColumnType.NUMERIC, Classification.CONFIDENTIAL, precision=12, scale=2),
        Column("reason", ColumnType.STRING, Classification.INTERNAL),
        Column("created_at", ColumnType.TIMESTAMP, Classification.INTERNAL),
    ],
)
ACCOUNTS = Table(
    primary_key=["id"],
    columns=[
        Column("id", ColumnType.INT64, Classification.INTERNAL),
        Column("name", ColumnType.STRING, Classification.PII, InfoType.PERSON_NAME),
        Column("email", ColumnType.STRING, Classification.PII, InfoType.EMAIL_ADDRESS),
        Column("phone", ColumnType.STRING, Classification.PII, InfoType.PHONE_NUMBER),
        Column("country", ColumnType.STRING, Classification.PUBLIC),
        Column("created_at", ColumnType.TIMESTAMP, Classification.INTERNAL),
    ],
)
DATA_ENG = Principal.group("data-eng@acme.com")
FINANCE_ENG = Principal.group("finance-eng@acme.com")
FINANCE = Principal.group("finance@acme.com")
FRAUD_REVIEW_ENDS = datetime(2030, 3, 31, tzinfo=UTC)

KAFKA = KafkaCluster(
    bootstrap_servers=["kafka-1.acme.internal:9093", "kafka-2.acme.internal:9093", "kafka-3.acme.internal:9093"],
    brokers=3,
    tls=True,
    sasl_username="terraform",
)
CONNECT = ConnectCluster(
    url="https://connect.acme.internal:8083", principal=Principal.kafka_user("connect"), basic_auth_username="terraform"
)
GCP = GcpProject(project="acme-data", location="US", allowed_domains=["acme.com"])


def payments_stack(app: App) -> DataPipelineStack:
    stack = DataPipelineStack(app, "payments", kafka=KAFKA, connect=CONNECT, gcp=GCP)
    payments = CdcSource(
        stack,
        "payments-db",
        engine=Engine.MYSQL,
        host="payments-mysql.acme.internal",
        database="payments",
        topic_prefix="payments",
        tables={"orders": ORDERS, "refunds": REFUNDS, "accounts": ACCOUNTS},
        masked={"accounts": ["email", "phone"]},
        hashed={"accounts": ["name"]},
        heartbeat=timedelta(seconds=10),
        retention=timedelta(days=7),
        owner=DATA_ENG,
    )
    raw = BigQuerySink(
        stack,
        "payments-raw",
        source=payments,
        dataset="payments_raw",
        owners=[DATA_ENG],
        # accounts.name arrives hashed: its salt is visible in plan, state and Connect's REST API, so the
        # raw dataset declares the pseudonymized PII it holds (and keeps it a year at most).
        holds_pii=True,
        retention=timedelta(days=365),
    )
    finance = MicroWarehouse(
        stack,
        "finance",
        owners=[FINANCE_ENG],
        readers=[FINANCE],
        retention=timedelta(days=3 * 365),
    )
    finance.expose(raw.table("orders"))
    finance.expose(raw.table("refunds"))
    finance.add_view(
        "daily_revenue",
        "SELECT DATE(created_at) AS day, currency, SUM(amount) AS revenue\n"
        "FROM {{ ref('orders') }}\nWHERE status = 'paid'\nGROUP BY day, currency",
    )
    risk = MicroWarehouse(
        stack,
        "risk",
        owners=[Principal.group("risk-eng@acme.com")],
        readers=[Principal.group("risk@acme.com")],
        retention=timedelta(days=365),
    )
    risk.expose(raw.table("orders"), columns=["id", "account_id", "amount", "currency", "status", "created_at"])
    risk.expose(raw.table("accounts"), columns=["id", "email", "country", "created_at"])
    risk.grant_query(Principal.user("auditor@acme.com"), until=FRAUD_REVIEW_ENDS)
    payments.topic("orders").grant_read(Principal.kafka_user("fraud-detector"), consumer_group_prefix="fraud-")
    payments.topic("refunds").grant_read(
        Principal.kafka_user("chargeback-audit"), consumer_group="chargeback-audit", until=FRAUD_REVIEW_ENDS
    )
    compile_teams(stack, TEAMS)
    DlpInspection(stack, "dlp", owners=[DATA_ENG])
    return stack


def ledger_stack(app: App) -> DataPipelineStack:
    # Both stacks run on one Connect worker: its own ACLs (internal topics, worker group) belong to
    # exactly one stack (payments), or destroying the other would lock the shared worker out.
    stack = DataPipelineStack(app, "ledger", kafka=KAFKA, connect=replace(CONNECT, manage_acls=False), gcp=GCP)
    ledger = CdcSource(
        stack,
        "ledger-db",
        engine=Engine.POSTGRESQL,
        host="ledger-pg.acme.internal",
        database="payments",
        schema="payments",
        topic_prefix="ledger",
        tables={"orders": ORDERS, "refunds": REFUNDS, "accounts": ACCOUNTS},
        excluded={"accounts": ["name", "email", "phone"]},
        owner=DATA_ENG,
    )
    raw = BigQuerySink(
        stack,
        "ledger-raw",
        source=ledger,
        dataset="ledger_raw",
        owners=[DATA_ENG],
        retention=timedelta(days=365),
    )
    finance = MicroWarehouse(
        stack,
        "ledger-finance",
        owners=[FINANCE_ENG],
        readers=[FINANCE],
        dataset="ledger_finance",
    )
    for table in ("orders", "refunds", "accounts"):
        finance.expose(raw.table(table))
    ledger.topic("refunds").grant_read(Principal.kafka_user("analyst"), consumer_group="ledger-analyst")
    compile_teams(stack, TEAMS)
    return stack


def build(outdir: str | None = None) -> App:
    """Both example stacks; ``outdir`` defaults to cdktf's choice (``cdktf synth --output`` or cdktf.out)."""
    if outdir:
        Path(outdir).mkdir(parents=True, exist_ok=True)  # cdktf creates only the last level
    app = App(outdir=outdir) if outdir else App()
    payments_stack(app)
    ledger_stack(app)
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--outdir", help="where to write the synthesized stacks (default: cdktf.out)")
    build(parser.parse_args().outdir).synth()
