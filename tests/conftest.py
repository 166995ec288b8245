"""Shared fixtures: a pipeline stack with local-looking settings, and synth to a dict."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from datapipe_cdk import ConnectCluster, DataPipelineStack, GcpProject, KafkaCluster, Principal
from datapipe_cdk._cdk import App, Testing
from datapipe_cdk.governance import opt_out

from .schema_conformance import conformance_errors

Synth = Callable[[DataPipelineStack], dict[str, Any]]


def make_stack(
    *,
    brokers: int | None = 3,
    manage_iam: bool = True,
    stack_id: str = "test",
    app: App | None = None,
    manage_acls: bool = True,
) -> DataPipelineStack:
    stack = DataPipelineStack(
        app or App(),
        stack_id,
        kafka=KafkaCluster(bootstrap_servers=["broker-1:9092"], brokers=brokers, tls=False, sasl_username="admin"),
        connect=ConnectCluster(
            url="http://connect:8083",
            principal=Principal.kafka_user("connect"),
            basic_auth_username="terraform",
            manage_acls=manage_acls,
        ),
        gcp=GcpProject(project="acme-data", location="US", manage_iam=manage_iam, allowed_domains=["acme.com"]),
    )
    opt_out(stack, "owner-required", "construct unit tests; ownership is specified in tests/governance")
    return stack


@pytest.fixture
def stack() -> DataPipelineStack:
    return make_stack()


def synth_stack(stack: DataPipelineStack) -> dict[str, Any]:
    """Synthesize with validations (policies) and check every resource against the provider schemas."""
    doc: dict[str, Any] = json.loads(Testing.synth(stack, run_validations=True))
    if not getattr(stack, "skip_conformance", False):
        errors = conformance_errors(doc)
        assert not errors, "synthesized JSON breaks the provider schemas:\n" + "\n".join(errors)
    return doc


@pytest.fixture
def synth() -> Synth:
    return synth_stack


def resources(doc: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return list(doc.get("resource", {}).get(kind, {}).values())
