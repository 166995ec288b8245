"""Small stacks for governance tests: one source with an accounts table holding PII."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from datapipe_cdk import (
    BigQuerySink,
    CdcSource,
    Classification,
    Column,
    ColumnType,
    ConnectCluster,
    DataPipelineStack,
    GcpProject,
    InfoType,
    KafkaCluster,
    Principal,
    Table,
)
from datapipe_cdk._cdk import App, Testing
from datapipe_cdk.governance import Governance

OWNER = Principal.group("data-eng@acme.com")
ACCOUNTS = Table(
    primary_key=["id"],
    columns=[
        Column("id", ColumnType.INT64, Classification.INTERNAL),
        Column("email", ColumnType.STRING, Classification.PII, InfoType.EMAIL_ADDRESS),
        Column("phone", ColumnType.STRING, Classification.PII, InfoType.PHONE_NUMBER),
        Column("country", ColumnType.STRING, Classification.PUBLIC),
    ],
)
ORDERS = Table(
    primary_key=["id"],
    columns=[
        Column("id", ColumnType.INT64, Classification.INTERNAL),
        Column("account_id", ColumnType.INT64, Classification.INTERNAL),
        Column("amount", ColumnType.NUMERIC, Classification.CONFIDENTIAL),
    ],
)


def make_stack(*, manage_iam: bool = True, app: App | None = None) -> DataPipelineStack:
    return DataPipelineStack(
        app or App(),
        "test",
        kafka=KafkaCluster(bootstrap_servers=["broker-1:9092"], brokers=3, tls=False, sasl_username="admin"),
        connect=ConnectCluster(
            url="http://connect:8083", principal=Principal.kafka_user("connect"), basic_auth_username="terraform"
        ),
        gcp=GcpProject(project="acme-data", location="US", manage_iam=manage_iam, allowed_domains=["acme.com"]),
    )


def make_source(
    stack: DataPipelineStack,
    *,
    owner: Principal | None = OWNER,
    retention: timedelta | None = timedelta(days=7),
    tables: Mapping[str, Table] | None = None,
    **treatments: Any,
) -> CdcSource:
    return CdcSource(
        stack,
        "payments-db",
        engine="mysql",
        host="mysql",
        database="payments",
        topic_prefix="payments",
        tables=tables or {"accounts": ACCOUNTS, "orders": ORDERS},
        owner=owner,
        retention=retention,
        **treatments,
    )


def make_sink(stack: DataPipelineStack, source: CdcSource, **options: Any) -> BigQuerySink:
    options.setdefault("owners", [OWNER])
    return BigQuerySink(stack, "raw", source=source, dataset="payments_raw", **options)


def messages(stack: DataPipelineStack) -> list[str]:
    return [str(v) for v in Governance.of(stack).violations()]


def policies_failing(stack: DataPipelineStack) -> set[str]:
    return {v.policy for v in Governance.of(stack).violations()}


def synth(stack: DataPipelineStack) -> dict[str, Any]:
    """Synthesize with validations (policies) on, like ``cdktf synth``."""
    doc: dict[str, Any] = json.loads(Testing.synth(stack, run_validations=True))
    return doc


def example_stacks() -> dict[str, DataPipelineStack]:
    """The example stacks of ``stacks/main.py`` (production profile), built once per test module."""
    import os
    import tempfile

    from stacks.main import build

    old = os.environ.get("DATAPIPE_PROFILE")
    os.environ["DATAPIPE_PROFILE"] = "production"
    try:
        app = build(tempfile.mkdtemp(prefix="datapipe-governance-"))
    finally:
        if old is None:
            del os.environ["DATAPIPE_PROFILE"]
        else:
            os.environ["DATAPIPE_PROFILE"] = old
    return {s.node.id: s for s in app.node.children if isinstance(s, DataPipelineStack)}
