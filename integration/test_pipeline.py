"""The example pipelines deployed on the local stack with ``datapipe deploy --local``: what Terraform
declared exists, rows flow from MariaDB and PostgreSQL through Debezium, Kafka and KCBQ into BigQuery,
the latest-state views match the sources row by row, grants hold, secrets stay on the workers, and a
second plan is empty.
"""

from __future__ import annotations

import secrets
from decimal import Decimal
from typing import Any

import pytest

from datapipe_cdk.local import bigquery
from integration import flow
from integration.conftest import EXAMPLE_APP, STACKS, DeployedStack, datapipe

pytestmark = pytest.mark.integration

KAFKA_TIMEOUT_S = 60.0
WAREHOUSE_TIMEOUT_S = 120.0
"""KCBQ writes a batch per poll; a few seconds usually, bounded generously for a cold JVM."""


def _admin(stack: DeployedStack) -> Any:
    from confluent_kafka.admin import AdminClient

    return AdminClient(flow.kafka_config(stack.cfg, "admin"))


def _norm(value: object) -> str:
    """``DESCRIBE_CONFIGS``, ``DescribeConfigs`` and ``ResourceType.TOPIC`` all compare equal to their short form.

    librdkafka calls Kafka's ``Cluster`` resource type ``BROKER``.
    """
    short = str(getattr(value, "name", value)).replace("_", "").lower()
    return "cluster" if short == "broker" else short


@pytest.mark.parametrize("stack_name", STACKS)
def test_topics_have_declared_partitions_and_configs(deployed: DeployedStack, stack_name: str) -> None:
    from confluent_kafka.admin import ConfigResource, ResourceType

    admin = _admin(deployed)
    declared = deployed.resources(stack_name, "kafka_topic")
    assert declared, f"stack {stack_name} declares no topics"
    metadata = admin.list_topics(timeout=15).topics
    for topic in declared:
        name = topic["name"]
        assert name in metadata, f"topic {name} missing"
        assert len(metadata[name].partitions) == topic["partitions"], f"{name}: partition count"
        resource = ConfigResource(ResourceType.TOPIC, name)
        actual = admin.describe_configs([resource])[resource].result(timeout=15)
        for key, value in topic.get("config", {}).items():
            assert actual[key].value == str(value), f"{name}: {key} is {actual[key].value}, declared {value}"


@pytest.mark.parametrize("stack_name", STACKS)
def test_acls_exist_as_declared(deployed: DeployedStack, stack_name: str) -> None:
    from confluent_kafka.admin import (
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    anything = AclBindingFilter(
        ResourceType.ANY,
        None,
        ResourcePatternType.ANY,
        None,
        None,  # type: ignore[arg-type]
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    admin = _admin(deployed)  # keep the client alive until the future resolves
    bindings = admin.describe_acls(anything).result(timeout=15)
    actual = {
        (b.principal, _norm(b.restype), b.name, _norm(b.resource_pattern_type), _norm(b.operation), _norm(b.permission_type))
        for b in bindings
    }
    declared = {
        (
            acl["acl_principal"],
            _norm(acl["resource_type"]),
            acl["resource_name"],
            _norm(acl.get("resource_pattern_type_filter", "Literal")),
            _norm(acl["acl_operation"]),
            _norm(acl["acl_permission_type"]),
        )
        for acl in deployed.resources(stack_name, "kafka_acl")
    }
    assert declared, f"stack {stack_name} declares no ACLs"
    assert declared - actual == set(), "declared ACLs missing from the broker"


def test_connectors_and_tasks_running(deployed: DeployedStack) -> None:
    client = deployed.connect()
    for name in deployed.connector_names():
        state = client.status(name)
        assert state.running, f"{name}: {state.state} tasks {state.tasks} {state.trace[:500]}"


def test_connect_rest_api_requires_a_login_and_never_returns_a_secret(deployed: DeployedStack) -> None:
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{deployed.cfg.connect_url}/connectors", timeout=10)
    assert refused.value.code == 401
    client = deployed.connect()
    secrets_found = _run_dir_secrets(deployed)
    for name in deployed.connector_names():
        config = client.config(name)
        assert config, name
        text = repr(config)
        assert not [v for v in secrets_found if v in text], f"GET /connectors/{name}/config returns a secret value"
        for key, value in config.items():
            if "password" in key or "jaas" in key:
                assert value.startswith("${file:"), (name, key)


@pytest.mark.parametrize("pipe", flow.PIPES, ids=[pipe.engine for pipe in flow.PIPES])
def test_rows_flow_to_latest_state_view(deployed: DeployedStack, pipe: flow.Pipe) -> None:
    cfg = deployed.cfg
    tag = secrets.token_hex(3)
    kept = flow.insert_order(cfg, pipe.engine, 101, Decimal("12.34"), "EUR", f"new-{tag}")
    gone = flow.insert_order(cfg, pipe.engine, 102, Decimal("5.00"), "USD", f"new-{tag}")
    flow.update_status(cfg, pipe.engine, kept, f"paid-{tag}")
    flow.delete_order(cfg, pipe.engine, gone)
    in_one_commit = flow.insert_then_update_in_one_transaction(cfg, pipe.engine, [f"tx1-{tag}", f"tx2-{tag}", f"tx3-{tag}"])

    # Kafka: the raw Debezium envelopes, in source order.
    def seen_all(values: list[Any]) -> bool:
        return flow.envelope_ops(values, kept) == ["c", "u"] and flow.envelope_ops(values, gone) == ["c", "d"]

    consumed = flow.consume(cfg, "admin", pipe.topic, f"it-{tag}", timeout=KAFKA_TIMEOUT_S, until=seen_all)
    assert consumed.refused is None
    assert flow.envelope_ops(consumed.values, kept) == ["c", "u"], f"{pipe.topic}: events of order {kept}"
    assert flow.envelope_ops(consumed.values, gone) == ["c", "d"], f"{pipe.topic}: events of order {gone}"

    # Changelog table: every event, deletes kept as rewritten rows.
    client = bigquery.client(cfg)
    flow.wait_for(
        lambda: len(flow.changelog_events(client, pipe.changelog, gone)) >= 2,
        WAREHOUSE_TIMEOUT_S,
        f"the delete of order {gone} in {pipe.changelog}",
    )

    def updated() -> list[flow.Row]:
        events = flow.changelog_events(client, pipe.changelog, kept)
        return events if any(e["__op"] == "u" for e in events) else []

    events = flow.wait_for(updated, WAREHOUSE_TIMEOUT_S, f"the update of order {kept} in {pipe.changelog}")
    assert [(e["__op"], e["status"]) for e in events] == [("c", f"new-{tag}"), ("u", f"paid-{tag}")]
    assert [(e["__op"], e["__deleted"]) for e in flow.changelog_events(client, pipe.changelog, gone)] == [
        ("c", "false"),
        ("d", "true"),
    ]

    # Latest-state view: exactly the source's current rows.
    problems: list[str] = []

    def matches() -> bool:
        problems[:] = flow.diff(flow.source_orders(cfg, pipe.engine), flow.view_orders(client, pipe.view))
        return not problems

    try:
        flow.wait_for(matches, WAREHOUSE_TIMEOUT_S, f"{pipe.view} to equal the source")
    except flow.WaitTimeout:
        pytest.fail(f"{pipe.view} differs from {pipe.engine} payments.orders: " + "; ".join(problems[:10]))
    current = flow.view_orders(client, pipe.view)
    assert current[kept]["status"] == f"paid-{tag}" and gone not in current
    assert current[in_one_commit]["status"] == f"tx3-{tag}", "the last change of one transaction wins"


GRANTS = [
    # (user, granted topic, group that the grant allows, a topic not granted)
    pytest.param("fraud-detector", "payments.payments.orders", "fraud-it", "ledger.payments.refunds", id="fraud-detector"),
    pytest.param("analyst", "ledger.payments.refunds", "ledger-analyst", "payments.payments.orders", id="analyst"),
]


@pytest.mark.parametrize(("user", "topic", "group", "other_topic"), GRANTS)
def test_granted_principal_reads_its_topic_only(
    deployed: DeployedStack, user: str, topic: str, group: str, other_topic: str
) -> None:
    cfg = deployed.cfg
    if topic.startswith("ledger."):
        flow.insert_refund(cfg, "postgres", 1, Decimal("1.00"), "integration test")
    else:
        flow.insert_order(cfg, "mariadb", 103, Decimal("9.99"), "EUR", "new")
    group_id = group if not group.endswith("-it") else f"{group}-{secrets.token_hex(3)}"
    allowed = flow.consume(cfg, user, topic, group_id, timeout=KAFKA_TIMEOUT_S, until=bool)
    assert allowed.refused is None, f"{user} refused on {topic}: {allowed.refused}"
    assert allowed.values, f"{user} read nothing from {topic}"
    refused = flow.consume(cfg, user, other_topic, group_id, timeout=30.0)
    assert refused.refused == "TOPIC_AUTHORIZATION_FAILED", f"{user} on {other_topic}: {refused}"
    wrong_group = flow.consume(cfg, user, topic, f"not-granted-{secrets.token_hex(3)}", timeout=30.0)
    assert wrong_group.refused == "GROUP_AUTHORIZATION_FAILED", f"{user} with an ungranted group: {wrong_group}"


def test_connect_principal_is_refused_on_an_undeclared_topic_sharing_the_prefix(deployed: DeployedStack) -> None:
    """Literal ACLs: the worker may use exactly the declared topics, not everything named ``payments.*``."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    cfg = deployed.cfg
    undeclared = f"payments.payments.undeclared_{secrets.token_hex(3)}"
    admin = AdminClient(flow.kafka_config(cfg, "admin"))
    admin.create_topics([NewTopic(undeclared, num_partitions=1, replication_factor=1)])[undeclared].result(timeout=30)
    try:
        producer_errors: list[str] = []
        producer = Producer(flow.kafka_config(cfg, "connect", **{"message.timeout.ms": 15000}))
        producer.produce(undeclared, b"{}", on_delivery=lambda err, msg: producer_errors.append(err.name() if err else "OK"))
        producer.flush(30)
        assert producer_errors == ["TOPIC_AUTHORIZATION_FAILED"], f"connect wrote to {undeclared}: {producer_errors}"
        refused = flow.consume(cfg, "connect", undeclared, f"connect-payments-raw-{secrets.token_hex(2)}", timeout=30.0)
        assert refused.refused in ("TOPIC_AUTHORIZATION_FAILED", "GROUP_AUTHORIZATION_FAILED"), refused
    finally:
        admin.delete_topics([undeclared])[undeclared].result(timeout=30)
    # ... and the pipeline still flows under those ACLs
    kept = flow.insert_order(cfg, "mariadb", 104, Decimal("3.21"), "EUR", f"acl-{secrets.token_hex(2)}")
    client = bigquery.client(cfg)
    flow.wait_for(
        lambda: flow.changelog_events(client, "payments_raw.payments_payments_orders", kept) or None,
        WAREHOUSE_TIMEOUT_S,
        f"order {kept} in the changelog",
    )


def test_second_plan_is_empty(deployed: DeployedStack) -> None:
    import json

    done = datapipe("plan", "--local", "--app", str(EXAMPLE_APP), "--out", str(deployed.out), "--json", check=False)
    if done.returncode != 0:
        try:
            stacks = json.loads(done.stdout)["stacks"]
        except (ValueError, KeyError):
            raise AssertionError(
                f"datapipe plan failed (exit {done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            ) from None
        wanted = {
            s["stack"]: {
                "changes": [(c["path"], c["class"], c["reason"]) for c in s["changes"] if c["class"] not in ("no-op", "drift")],
                "connectors_not_running": s["connectors_not_running"],
            }
            for s in stacks
        }
        raise AssertionError(f"datapipe plan after deploy wants changes (exit {done.returncode}): {wanted}")


def _run_dir_secrets(deployed: DeployedStack) -> set[str]:
    """Every generated password and private key of the run dir (values long enough to be unambiguous).

    Not the PII hashing salts: Debezium spells them inside a config key, so the library treats them as
    deployment parameters that plan, state and Connect's REST API show (and the policies treat hashed
    PII as PII accordingly).
    """
    import json

    found: set[str] = set()

    def collect(value: object) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if not str(key).startswith("salt/"):  # by design a deployment parameter (CdcSource hashed=)
                    collect(item)
        elif isinstance(value, str) and len(value) >= 12:
            found.add(value)

    for path in (deployed.cfg.run_dir / "secrets").glob("*.json"):
        collect(json.loads(path.read_text()))
    keyfile = json.loads((deployed.cfg.run_dir / "gcp" / "service-account.json").read_text())
    found.add(keyfile["private_key"].splitlines()[1])  # a line of the PEM body
    return found - {"datapipe_admin", "postgres", "debezium"}


def test_no_secret_in_any_artifact_cli_output_or_rest_response(deployed: DeployedStack) -> None:
    """The secret scan: every generated password and key of the run, searched for in the synthesized JSON, the
    encrypted states, every log, the executed notebooks (when the notebook tests ran before), the CLI's outputs
    and Connect's REST responses."""
    import json

    values = _run_dir_secrets(deployed)
    assert values, "no generated secrets found in the run dir"
    run_dir = deployed.cfg.run_dir
    states = list((run_dir / "terraform").glob("*.tfstate"))
    assert states, "no Terraform state in the run dir"
    texts: dict[str, str] = {}
    for path in [
        *deployed.out.rglob("*.json"),
        *deployed.out.rglob("*.log"),
        *states,
        *(run_dir / "logs").glob("*.log"),
        *(run_dir / "manifests").glob("*.json"),
        *(p for p in (run_dir / "artifacts").rglob("*") if p.is_file() and p.suffix in (".ipynb", ".json", ".txt", ".html")),
    ]:
        texts[str(path)] = path.read_text(errors="replace")
    app = ["--app", str(EXAMPLE_APP)]
    for args in (
        ("access", "--out", str(deployed.out), "--json", "--all"),
        ("worker-secrets", "--out", str(deployed.out), "--json"),
        ("catalog", "--local", *app),
        ("lineage", "--local", *app),
        ("compact", "--local", *app, "--out", str(deployed.out), "--json"),
        ("local", "status", "--json"),
    ):
        done = datapipe(*args)
        texts[f"datapipe {' '.join(args)}"] = done.stdout + done.stderr
    client = deployed.connect()
    status, listed = client.call("GET", "/connectors?expand=info&expand=status")
    assert status == 200
    texts["GET /connectors?expand=info&expand=status"] = json.dumps(listed)
    for name in deployed.connector_names():
        for path in (f"/connectors/{name}", f"/connectors/{name}/config", f"/connectors/{name}/tasks"):
            status, body = client.call("GET", path)
            assert status == 200, (path, status)
            texts[f"GET {path}"] = json.dumps(body)
    assert any("artifacts" in where for where in texts) or not (run_dir / "artifacts").exists()
    for where, text in texts.items():
        leaked = [value[:4] + "…" for value in values if value in text]
        assert not leaked, f"{where} contains generated secrets ({len(leaked)}): {leaked}"
    for state in states:
        assert '"encrypted_data"' in state.read_text(), f"{state} is not encrypted"
