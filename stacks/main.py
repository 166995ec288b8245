"""The example pipelines: WePay-shaped payments (MySQL/MariaDB) and a PostgreSQL ledger.

``cdktf synth`` (or ``python stacks/main.py``) writes both stacks under ``cdktf.out/``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cdktf import App, LocalBackend

from datapipe_cdk import (
    BigQuerySink,
    CdcSource,
    Classification,
    Column,
    ColumnType,
    DataPipelineStack,
    Engine,
    InfoType,
    MicroWarehouse,
    Principal,
    Table,
)
from datapipe_cdk.governance import DlpInspection
from datapipe_cdk.teamspec import compile_teams
from stacks.profiles import Profile, current

TEAMS = Path(__file__).resolve().parent / "teams"
"""Team microwarehouse files (Stage 5), validated against schemas/team.schema.json."""

ORDERS = Table(
    primary_key=["id"],
    columns=[
        Column("id", ColumnType.INT64, Classification.INTERNAL),
        Column("account_id", ColumnType.INT64, Classification.INTERNAL),
        Column("amount", ColumnType.NUMERIC, Classification.CONFIDENTIAL),
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
        Column("amount", ColumnType.NUMERIC, Classification.CONFIDENTIAL),
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
FRAUD_REVIEW_ENDS = datetime(2027, 3, 31, tzinfo=UTC)


def payments_stack(app: App, profile: Profile) -> DataPipelineStack:
    stack = DataPipelineStack(app, "payments", kafka=profile.kafka, connect=profile.connect, gcp=profile.gcp)
    payments = CdcSource(
        stack,
        "payments-db",
        engine=profile.mysql_engine,
        host=profile.mysql_host,
        port=profile.mysql_port,
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
        retention=timedelta(days=365),
        deletion_protection=profile.name == "production",
    )
    finance = MicroWarehouse(
        stack,
        "finance",
        owners=[FINANCE_ENG],
        readers=[FINANCE],
        retention=timedelta(days=3 * 365),
        deletion_protection=profile.name == "production",
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
        deletion_protection=profile.name == "production",
    )
    risk.expose(raw.table("orders"), columns=["id", "account_id", "amount", "currency", "status", "created_at"])
    risk.expose(raw.table("accounts"), columns=["id", "email", "country", "created_at"])
    risk.grant_query(Principal.user("auditor@acme.com"), until=FRAUD_REVIEW_ENDS)
    payments.topic("orders").grant_read(Principal.kafka_user("fraud-detector"), consumer_group_prefix="fraud-")
    payments.topic("refunds").grant_read(
        Principal.kafka_user("chargeback-audit"), consumer_group="chargeback-audit", until=FRAUD_REVIEW_ENDS
    )
    compile_teams(stack, TEAMS, deletion_protection=profile.name == "production")
    DlpInspection(stack, "dlp", owners=[DATA_ENG])
    return stack


def ledger_stack(app: App, profile: Profile) -> DataPipelineStack:
    # Both stacks run on one Connect worker: its own ACLs (internal topics, worker group) belong to
    # exactly one stack (payments), or destroying the other would lock the shared worker out.
    connect = replace(profile.connect, manage_acls=False)
    stack = DataPipelineStack(app, "ledger", kafka=profile.kafka, connect=connect, gcp=profile.gcp)
    ledger = CdcSource(
        stack,
        "ledger-db",
        engine=Engine.POSTGRESQL,
        host=profile.postgres_host,
        port=profile.postgres_port,
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
        deletion_protection=profile.name == "production",
    )
    finance = MicroWarehouse(
        stack,
        "ledger-finance",
        owners=[FINANCE_ENG],
        readers=[FINANCE],
        dataset="ledger_finance",
        deletion_protection=profile.name == "production",
    )
    for table in ("orders", "refunds", "accounts"):
        finance.expose(raw.table(table))
    ledger.topic("refunds").grant_read(Principal.kafka_user("analyst"), consumer_group="ledger-analyst")
    compile_teams(stack, TEAMS, deletion_protection=profile.name == "production")
    return stack


def build(outdir: str | None = None) -> App:
    """Both example stacks; ``outdir`` defaults to cdktf's choice (``cdktf synth --output`` or cdktf.out)."""
    app = App(outdir=outdir) if outdir else App()
    profile = current()
    for stack in (payments_stack(app, profile), ledger_stack(app, profile)):
        if profile.state_dir:
            LocalBackend(stack, path=str(Path(profile.state_dir) / f"{stack.node.id}.tfstate"))
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--outdir", help="where to write the synthesized stacks (default: cdktf.out)")
    build(parser.parse_args().outdir).synth()
