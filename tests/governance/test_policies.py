"""Every built-in policy, both ways: a stack that passes and a stack that fails with the expected message."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest

from datapipe_cdk import (
    AclOperation,
    BigQuerySink,
    DatapipeError,
    KafkaAcl,
    MicroWarehouse,
    Permission,
    Principal,
    ResourceType,
    StreamingTopic,
)
from datapipe_cdk._cdk import App
from datapipe_cdk.governance import Governance, PiiDatasetRetention, Policy, Violation, inventory, opt_out
from datapipe_cdk.providers.google import ProjectIamMember
from datapipe_cdk.stack import DataPipelineStack
from datapipe_cdk.units import FOREVER
from tests.governance.helpers import (
    ACCOUNTS,
    ORDERS,
    OWNER,
    make_sink,
    make_source,
    make_stack,
    messages,
    policies_failing,
    synth,
)


def _masked_pipeline() -> DataPipelineStack:
    stack = make_stack()
    source = make_source(stack, masked={"accounts": ["email"]}, excluded={"accounts": ["phone"]})
    raw = make_sink(stack, source, retention=timedelta(days=365))
    team = MicroWarehouse(stack, "finance", owners=[Principal.group("finance-eng@acme.com")])
    team.expose(raw.table("accounts"))
    return stack


def test_masked_and_excluded_pii_passes_every_policy():
    stack = _masked_pipeline()
    assert messages(stack) == []
    synth(stack)  # policies run at synth too


def test_hashed_pii_counts_as_pii_because_its_salt_is_not_secret():
    stack = make_stack()
    make_sink(stack, make_source(stack, masked={"accounts": ["email"]}, hashed={"accounts": ["phone"]}))
    assert messages(stack) == [
        "test/raw/changelog-accounts: PII column accounts.phone (PHONE_NUMBER) reaches dataset payments_raw hashed "
        "(its salt is visible in plan, state and Connect's REST API, so the hash can be reversed by guessing); "
        "mask or exclude it at test/payments-db or declare the dataset holds_pii=True"
    ]


# pii-in-clean-dataset


def test_unmasked_pii_reaching_a_clean_sink_dataset_is_refused_with_its_path():
    stack = make_stack()
    make_sink(stack, make_source(stack, masked={"accounts": ["email"]}))
    assert messages(stack) == [
        "test/raw/changelog-accounts: PII column accounts.phone (PHONE_NUMBER) reaches dataset payments_raw unmasked; "
        "mask or exclude it at test/payments-db or declare the dataset holds_pii=True"
    ]


def test_unmasked_pii_reaching_a_clean_warehouse_view_is_refused():
    stack = make_stack()
    raw = make_sink(stack, make_source(stack), holds_pii=True, retention=timedelta(days=30))
    finance = MicroWarehouse(stack, "finance", owners=[OWNER])
    finance.expose(raw.table("accounts"), columns=["id", "email", "country"])
    assert messages(stack) == [
        "test/finance/view-accounts: PII column accounts.email (EMAIL_ADDRESS) reaches dataset finance unmasked; "
        "mask or exclude it at test/payments-db or declare the dataset holds_pii=True"
    ]


def test_pii_left_out_of_a_view_or_excluded_at_the_source_passes():
    stack = make_stack()
    raw = make_sink(stack, make_source(stack, excluded={"accounts": ["phone"]}), holds_pii=True, retention=timedelta(days=30))
    finance = MicroWarehouse(stack, "finance", owners=[OWNER])
    finance.expose(raw.table("accounts"), columns=["id", "country"])
    assert messages(stack) == []


def test_a_dataset_declared_to_hold_pii_may_receive_it():
    stack = make_stack()
    make_sink(stack, make_source(stack), holds_pii=True, retention=timedelta(days=365))
    assert "pii-in-clean-dataset" not in policies_failing(stack)


def test_synth_refuses_a_policy_violation_with_the_policy_message():
    stack = make_stack()
    make_sink(stack, make_source(stack))
    with pytest.raises(RuntimeError, match=r"test/raw/changelog-accounts: PII column accounts\.email \(EMAIL_ADDRESS\)"):
        synth(stack)


# pii-dataset-retention


@pytest.mark.parametrize("retention", [None, FOREVER, timedelta(days=4 * 365)])
def test_a_pii_dataset_needs_a_retention_within_three_years(retention):
    stack = make_stack()
    make_sink(stack, make_source(stack), holds_pii=True, retention=retention)
    found = messages(stack)
    assert len(found) == 1
    assert found[0].startswith("test/raw: dataset payments_raw holds PII")
    assert found[0].endswith("at most 1095 days)" if retention in (None, FOREVER) else "set retention= at most 1095 days")


def test_a_pii_dataset_within_its_retention_passes_and_the_maximum_is_configurable():
    stack = make_stack()
    make_sink(stack, make_source(stack), holds_pii=True, retention=timedelta(days=3 * 365))
    assert messages(stack) == []
    Governance.of(stack).replace_policy(PiiDatasetRetention(maximum=timedelta(days=365)))
    assert messages(stack) == ["test/raw: dataset payments_raw holds PII for 1095 days; set retention= at most 365 days"]


# pii-topic-retention


@pytest.mark.parametrize("retention", [None, FOREVER, timedelta(days=90)])
def test_a_topic_carrying_unmasked_pii_needs_a_bounded_retention(retention):
    stack = make_stack()
    make_source(stack, retention=retention)
    now = {None: "has no retention.ms (broker default)", FOREVER: "keeps it forever"}.get(retention, "keeps it 90 days")
    assert messages(stack) == [
        f"test/payments-db/topic-accounts: topic payments.payments.accounts carries unmasked PII (accounts.email, "
        f"accounts.phone) and {now}; set retention= at most 30 days on test/payments-db"
    ]


def test_a_topic_with_masked_pii_or_a_bounded_retention_passes():
    stack = make_stack()
    make_source(stack, retention=None, masked={"accounts": ["email", "phone"]})
    assert messages(stack) == []
    other = make_stack()
    make_source(other, retention=timedelta(days=7))
    assert messages(other) == []


# no-public-principals


def test_a_public_grant_is_refused():
    stack = _masked_pipeline()
    team = next(c for c in stack.node.children if isinstance(c, MicroWarehouse))
    team.grant_query(Principal.all_authenticated_users(), allow_public=True)
    found = messages(stack)
    assert len(found) == 1
    assert found[0].startswith("test/finance/dataset/grant-reader-allAuthenticatedUsers")
    assert found[0].endswith("dataset finance grants READER to allAuthenticatedUsers (public); grant a group or user instead")


def test_a_grant_to_a_group_passes_the_public_policy():
    stack = _masked_pipeline()
    team = next(c for c in stack.node.children if isinstance(c, MicroWarehouse))
    team.grant_query(Principal.group("analysts@acme.com"))
    assert "no-public-principals" not in policies_failing(stack)


def test_an_allow_acl_on_every_kafka_resource_is_refused_a_deny_is_not():
    stack = _masked_pipeline()
    ops = Principal.kafka_user("ops")
    KafkaAcl(stack, "deny-all", principal=ops, resource_type=ResourceType.TOPIC, resource_name="*",
             operation=AclOperation.WRITE, permission=Permission.DENY)  # fmt: skip
    assert messages(stack) == []
    KafkaAcl(stack, "read-all", principal=ops, resource_type=ResourceType.TOPIC, resource_name="*",
             operation=AclOperation.READ, allow_public=True)  # fmt: skip
    assert messages(stack) == ["test/read-all: Kafka ACL allows User:ops Read on every Topic ('*'); name the resource instead"]


def test_a_project_role_granted_to_the_public_is_refused():
    stack = _masked_pipeline()
    ProjectIamMember(stack, "jobs", project="acme-data", role="roles/bigquery.jobUser", member="group:analysts@acme.com")
    assert messages(stack) == []
    ProjectIamMember(stack, "public-jobs", project="acme-data", role="roles/bigquery.jobUser", member="allUsers")
    assert messages(stack) == [
        "test/public-jobs: project role roles/bigquery.jobUser is granted to allUsers (public); grant a group or user instead"
    ]


@pytest.mark.parametrize("name", ["ANONYMOUS"])  # "*" is refused by Principal.kafka_user itself
def test_a_kafka_grant_to_every_client_is_refused(name):
    stack = _masked_pipeline()
    KafkaAcl(stack, "anon", principal=Principal.kafka_user(name), resource_type=ResourceType.TOPIC,
             resource_name="payments.payments.orders", operation=AclOperation.READ)  # fmt: skip
    [message] = [m for m in messages(stack) if m.startswith("test/anon:")]
    assert f"User:{name} is every client" in message


@pytest.mark.parametrize(
    "reader",
    [Principal.user("someone@gmail.com"), Principal.domain("co.uk"),
     Principal.service_account("x@other-proj.iam.gserviceaccount.com")],
)  # fmt: skip
def test_with_allowed_domains_no_grant_reaches_outside_them_pii_or_not(reader):
    stack = _masked_pipeline()
    team = next(c for c in stack.node.children if isinstance(c, MicroWarehouse))
    team.grant_query(reader)
    found = sorted(v.message for v in Governance.of(stack).violations() if v.policy == "allowed-domains")
    assert len(found) == 2, found  # the dataset grant and the project's jobUser role that comes with it
    address = str(reader).partition(":")[2]  # BigQuery grants a service account as user_by_email
    assert "dataset finance grants READER to " in found[0] and address in found[0]
    assert f"roles/bigquery.jobUser goes to {reader}" in found[1]
    assert all("is not one of GcpProject(allowed_domains=[acme.com])" in m for m in found)


def test_readers_of_the_allowed_domains_and_the_projects_own_accounts_pass():
    stack = _masked_pipeline()
    team = next(c for c in stack.node.children if isinstance(c, MicroWarehouse))
    team.grant_query(Principal.user("ana@eu.acme.com"))
    team.grant_query(Principal.service_account("job@acme-data.iam.gserviceaccount.com"))
    assert "allowed-domains" not in policies_failing(stack)


# owner-required


def test_every_topic_and_dataset_needs_an_owner():
    stack = make_stack()
    make_sink(stack, make_source(stack, owner=None, masked={"accounts": ["email", "phone"]}), owners=[])
    assert messages(stack) == [
        "test/raw: dataset payments_raw has no owner; pass owners=[Principal.group(...)] to test/raw",
        "test/payments-db/topic-accounts: topic payments.payments.accounts has no owner; "
        "pass owner=Principal.group(...) to test/payments-db",
        "test/payments-db/topic-orders: topic payments.payments.orders has no owner; "
        "pass owner=Principal.group(...) to test/payments-db",
        "test/payments-db/schema-history: topic _schema-history.payments has no owner; "
        "pass owner=Principal.group(...) to test/payments-db",
        "test/raw/dead-letter: topic dlq.raw has no owner; pass owners=[Principal.group(...)] to test/raw",
    ]


def test_owners_come_from_the_topic_the_source_or_the_sink_dataset():
    stack = make_stack()
    make_sink(stack, make_source(stack, masked={"accounts": ["email", "phone"]}))
    StreamingTopic(stack, "events", name="events", retention=timedelta(days=1), owner=Principal.group("events@acme.com"))
    assert messages(stack) == []
    orphan = make_stack()
    StreamingTopic(orphan, "events", name="events")
    assert messages(orphan) == ["test/events: topic events has no owner; pass owner=Principal.group(...) to test/events"]


def test_a_captured_tables_own_owner_wins_over_its_sources():
    stack = make_stack()
    accounts = replace(ACCOUNTS, owner="group:accounts-team@acme.com")
    source = make_source(stack, tables={"accounts": accounts, "orders": ORDERS}, masked={"accounts": ["email", "phone"]})
    assert source.owner == OWNER
    assert inventory.topic_owner(source.topic("accounts")) == "group:accounts-team@acme.com"
    assert inventory.topic_owner(source.topic("orders")) == str(OWNER)
    assert source.history_topic is not None and inventory.topic_owner(source.history_topic) == str(OWNER)
    assert messages(stack) == []


# opt-outs and custom policies


def test_opt_out_needs_a_written_reason_and_is_published_in_the_manifest():
    stack = make_stack()
    raw = make_sink(stack, make_source(stack))
    with pytest.raises(DatapipeError, match="needs a written reason"):
        opt_out(raw, "pii-in-clean-dataset", "because")
    with pytest.raises(DatapipeError, match="unknown policy"):
        opt_out(raw, "no-such-policy", "a perfectly good reason")
    opt_out(raw, "pii-in-clean-dataset", "Legal approved raw PII until the masking migration (LEGAL-142)")
    assert messages(stack) == []
    doc = synth(stack)
    governance = doc["output"]["datapipe_manifest"]["value"]["governance"]
    assert governance["opt_outs"] == [
        {
            "policy": "pii-in-clean-dataset",
            "path": "test/raw",
            "reason": "Legal approved raw PII until the masking migration (LEGAL-142)",
        }
    ]


def test_an_opt_out_covers_only_its_construct_and_policy():
    stack = make_stack()
    source = make_source(stack, retention=None)
    make_sink(stack, source)
    opt_out(source.topic("accounts"), "pii-topic-retention", "Compliance keeps this topic per ticket SEC-9")
    assert policies_failing(stack) == {"pii-in-clean-dataset"}


def test_an_opt_out_and_an_origin_do_not_reach_a_sibling_whose_path_starts_alike():
    stack = make_stack()
    source = make_source(stack)
    raw = make_sink(stack, source)
    BigQuerySink(stack, "raw2", source=source, dataset="payments_raw2", owners=[OWNER])
    governance = Governance.of(stack)
    governance.declare_origin("test/raw", "teams/raw.yaml:3")
    opt_out(raw, "pii-in-clean-dataset", "Legal approved raw PII until the masking migration (LEGAL-142)")
    opted_out = [v.path for v in governance.all_violations() if v.policy == "pii-in-clean-dataset"]
    assert "test/raw/changelog-accounts" in opted_out
    found = [v for v in governance.violations() if v.policy == "pii-in-clean-dataset"]
    assert {v.path for v in found} == {"test/raw2/changelog-accounts"}
    assert not any("requested in" in v.message for v in found)


class NoConfidentialTopics(Policy):
    """A platform team's own rule."""

    name = "no-confidential-topics"
    description = "Topics may not carry CONFIDENTIAL columns"

    def check(self, stack: DataPipelineStack) -> Iterator[Violation]:
        from datapipe_cdk.governance import inventory

        for topic in inventory.topics(stack):
            if any(c.classification and c.classification.value == "CONFIDENTIAL" for c in inventory.topic_columns(topic)):
                yield self.violation(topic.node.path, f"topic {topic.name} carries CONFIDENTIAL data")


def test_a_platform_team_adds_its_own_policy():
    stack = _masked_pipeline()
    Governance.of(stack).add_policy(NoConfidentialTopics())
    assert messages(stack) == [
        "test/payments-db/topic-orders: topic payments.payments.orders carries CONFIDENTIAL data",
        "test/raw/dead-letter: topic dlq.raw carries CONFIDENTIAL data",
    ]
    with pytest.raises(DatapipeError, match="already active"):
        Governance.of(stack).add_policy(NoConfidentialTopics())


# pii-readers


def _pii_warehouse(*readers: Principal, domains: tuple[str, ...] = ("acme.com",)):
    from datapipe_cdk import ConnectCluster, DataPipelineStack, GcpProject, KafkaCluster

    stack = DataPipelineStack(
        App(),
        "test",
        kafka=KafkaCluster(bootstrap_servers=["broker-1:9092"], brokers=3, tls=False, sasl_username="admin"),
        connect=ConnectCluster(url="http://connect:8083", principal=Principal.kafka_user("connect"), basic_auth_username="u"),
        gcp=GcpProject(project="acme-data", allowed_domains=list(domains)),
    )
    raw = make_sink(stack, make_source(stack), holds_pii=True, retention=timedelta(days=30))
    team = MicroWarehouse(stack, "finance", owners=[OWNER], readers=list(readers), holds_pii=True,
                          retention=timedelta(days=30))  # fmt: skip
    team.expose(raw.table("accounts"))
    return stack


def test_pii_readers_of_the_allowed_domains_pass():
    stack = _pii_warehouse(Principal.group("finance@acme.com"), Principal.user("ana@eu.acme.com"))
    assert "pii-readers" not in policies_failing(stack)


@pytest.mark.parametrize(
    ("reader", "problem"),
    [
        (Principal.domain("gmail.com"), "a whole domain; grant named groups instead"),
        (Principal.user("someone@gmail.com"), "gmail.com is not an allowed domain (acme.com); grant someone of an allowed "
                                              "domain or opt out"),
        (Principal.group("partners@acme.com.evil.example"), "acme.com.evil.example is not an allowed domain (acme.com); "
                                                             "grant someone of an allowed domain or opt out"),
    ],
)  # fmt: skip
def test_pii_readers_outside_the_allowed_domains_are_refused(reader, problem):
    stack = _pii_warehouse(reader)
    [violation] = [v for v in Governance.of(stack).violations() if v.policy == "pii-readers"]
    assert violation.message == f"dataset finance holds PII and grants READER to {reader}: {problem}"


def test_pii_readers_need_allowed_domains_and_can_be_opted_out_with_a_reason():
    stack = _pii_warehouse(Principal.group("finance@acme.com"), domains=())
    assert {v.message.split(": ", 1)[1] for v in Governance.of(stack).violations() if v.policy == "pii-readers"} == {
        "no allowed domains are set for PII readers; set GcpProject(allowed_domains=[...]) or opt out with a reason"
    }
    opt_out(stack.node.find_child("finance"), "pii-readers", "contractors approved by legal, ticket LEG-123")
    assert not [v for v in Governance.of(stack).violations() if v.policy == "pii-readers" and "finance/" in v.path]
