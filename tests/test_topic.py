from __future__ import annotations

from datetime import timedelta

import pytest

from datapipe_cdk import FOREVER, CleanupPolicy, DatapipeError, Principal, StreamingTopic

from .conftest import make_stack, resources, synth_stack


def test_streaming_topic_synthesizes_partitions_replication_and_retention_in_ms(stack):
    StreamingTopic(
        stack,
        "orders",
        name="payments.orders",
        partitions=6,
        replication_factor=3,
        retention=timedelta(days=7),
        cleanup_policy=CleanupPolicy.COMPACT_DELETE,
        min_compaction_lag=timedelta(minutes=5),
        config={"max.message.bytes": "1048576"},
    )
    [topic] = resources(synth_stack(stack), "kafka_topic")
    assert topic["name"] == "payments.orders"
    assert topic["partitions"] == 6
    assert topic["replication_factor"] == 3
    assert topic["config"] == {
        "cleanup.policy": "compact,delete",
        "min.insync.replicas": "2",
        "retention.ms": str(7 * 24 * 3600 * 1000),
        "min.compaction.lag.ms": "300000",
        "max.message.bytes": "1048576",
    }


def test_forever_retention_is_minus_one(stack):
    StreamingTopic(stack, "history", name="history", retention=FOREVER)
    [topic] = resources(synth_stack(stack), "kafka_topic")
    assert topic["config"]["retention.ms"] == "-1"


def test_replication_factor_defaults_to_min_of_three_and_brokers():
    stack = make_stack(brokers=1)
    StreamingTopic(stack, "t", name="t")
    [topic] = resources(synth_stack(stack), "kafka_topic")
    assert topic["replication_factor"] == 1
    assert topic["config"]["min.insync.replicas"] == "1", "set on the topic, never the broker's default"


@pytest.mark.parametrize(("brokers", "replicas", "expected"), [(5, 5, "2"), (3, 3, "2"), (3, 2, "1"), (3, 1, "1")])
def test_min_in_sync_replicas_defaults_to_two_with_three_copies(brokers, replicas, expected):
    """An acks=all write must reach two copies when there are three, so losing its leader loses nothing."""
    stack = make_stack(brokers=brokers)
    StreamingTopic(stack, "t", name="t", replication_factor=replicas)
    [topic] = resources(synth_stack(stack), "kafka_topic")
    assert topic["config"]["min.insync.replicas"] == expected


def test_min_in_sync_replicas_equal_to_the_copies_warns_that_one_broker_down_stops_writes(stack):
    topic = StreamingTopic(stack, "t", name="t", replication_factor=3, min_in_sync_replicas=3)
    warnings = [m.data for m in topic.node.metadata if m.type == "@cdktf/warn"]
    assert any("writes stop whenever one broker" in str(w) for w in warnings), warnings
    [synthesized] = resources(synth_stack(stack), "kafka_topic")
    assert synthesized["config"]["min.insync.replicas"] == "3"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "bad name!"}, "test/t: topic name may hold only letters"),
        ({"name": "x" * 250}, "topic name must be at most 249 characters"),
        ({"name": ".."}, "topic name cannot be '.' or '..'"),
        ({"name": "t", "partitions": 0}, "test/t: partitions must be >= 1, got 0"),
        (
            {"name": "t", "replication_factor": 4},
            "test/t: replication_factor must be <= the cluster's broker count (3, KafkaCluster(brokers=...); on the "
            "local stack DATAPIPE_KAFKA_BROKERS, default 1)",
        ),
        ({"name": "t", "replication_factor": 0}, "replication_factor must be >= 1, got 0"),
        ({"name": "t", "retention": timedelta(0)}, "retention must be longer than 0:00:00"),
        ({"name": "t", "retention": timedelta(seconds=-5)}, "retention must be longer than"),
        (
            {"name": "t", "cleanup_policy": "compress"},
            "cleanup_policy must be one of 'delete', 'compact', 'compact,delete' (or the CleanupPolicy member), got 'compress'",
        ),
        ({"name": "t", "config": {"retention.ms": "5"}}, "config must not set 'retention.ms'"),
        (
            {"name": "t", "config": {"min.insync.replicas": "1"}},
            "config must not set 'min.insync.replicas': use the typed argument min_in_sync_replicas= instead",
        ),
        ({"name": "t", "min_in_sync_replicas": 0}, "min_in_sync_replicas must be >= 1: it counts the copies"),
        ({"name": "t", "config": {"min.insync.replicas ": "1"}}, "config keys are Kafka topic config names"),
        ({"name": "t", "config": {"MIN.INSYNC.REPLICAS": "1"}}, "config keys are Kafka topic config names"),
        ({"name": "t", "config": {"unclean.leader.election.enable": "true"}}, "must not enable unclean.leader"),
        ({"name": "t", "config": {"x.y": "${TfToken[TOKEN.0]}"}}, "must be plain text, without a Terraform reference"),
        (
            {"name": "t", "replication_factor": 2, "min_in_sync_replicas": 3},
            "test/t: min_in_sync_replicas must be <= replication_factor (2): no write could ever reach more copies",
        ),
        ({"name": "t", "partitions": "3"}, "partitions must be an integer, got '3'"),
    ],
)
def test_bad_topic_input_names_path_value_and_rule(stack, kwargs, message):
    with pytest.raises(DatapipeError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        StreamingTopic(stack, "t", **kwargs)
    assert stack.node.try_find_child("t") is None, "nothing half-done is left behind"


def test_duplicate_topic_names_in_one_stack_are_refused(stack):
    StreamingTopic(stack, "a", name="orders")
    with pytest.raises(DatapipeError, match="test/b: topic name is already used in this stack by test/a"):
        StreamingTopic(stack, "b", name="orders")


def test_topics_differing_only_by_dot_and_underscore_collide(stack):
    StreamingTopic(stack, "a", name="pay.orders")
    with pytest.raises(DatapipeError, match=r"collides with 'pay\.orders'"):
        StreamingTopic(stack, "b", name="pay_orders")


def _acl_rows(doc):
    return sorted(
        (a["acl_principal"], a["resource_type"], a["resource_name"], a["resource_pattern_type_filter"], a["acl_operation"])
        for a in resources(doc, "kafka_acl")
        if a["acl_principal"] != "User:connect"
    )


def test_grant_read_emits_read_describe_on_topic_and_read_on_group(stack):
    topic = StreamingTopic(stack, "orders", name="orders")
    topic.grant_read(Principal.kafka_user("fraud"), consumer_group_prefix="fraud-")
    assert _acl_rows(synth_stack(stack)) == [
        ("User:fraud", "Group", "fraud-", "Prefixed", "Read"),
        ("User:fraud", "Topic", "orders", "Literal", "Describe"),
        ("User:fraud", "Topic", "orders", "Literal", "Read"),
    ]


def test_grant_write_with_idempotence_and_transactions(stack):
    topic = StreamingTopic(stack, "orders", name="orders")
    topic.grant_write(Principal.kafka_user("app"), idempotent=True, transactional_id="app-tx")
    assert _acl_rows(synth_stack(stack)) == [
        ("User:app", "Cluster", "kafka-cluster", "Literal", "IdempotentWrite"),
        ("User:app", "Topic", "orders", "Literal", "Describe"),
        ("User:app", "Topic", "orders", "Literal", "Write"),
        ("User:app", "TransactionalID", "app-tx", "Literal", "Describe"),
        ("User:app", "TransactionalID", "app-tx", "Literal", "Write"),
    ]


def test_repeated_grants_do_not_duplicate_acls(stack):
    topic = StreamingTopic(stack, "orders", name="orders")
    topic.grant_read(Principal.kafka_user("a"), consumer_group="g")
    topic.grant_read(Principal.kafka_user("a"), consumer_group="g")
    assert len(_acl_rows(synth_stack(stack))) == 3


def test_imported_topic_is_not_created_but_can_be_granted(stack):
    legacy = StreamingTopic.from_name(stack, "legacy", "legacy.events")
    legacy.grant_read(Principal.kafka_user("reader"), consumer_group="reader")
    doc = synth_stack(stack)
    assert resources(doc, "kafka_topic") == []
    assert ("User:reader", "Topic", "legacy.events", "Literal", "Read") in _acl_rows(doc)


def test_grants_refuse_google_principals(stack):
    topic = StreamingTopic(stack, "orders", name="orders")
    with pytest.raises(DatapipeError, match="Kafka grants need a Kafka user"):
        topic.grant_read(Principal.group("g@acme.com"), consumer_group="g")


def test_grant_read_needs_exactly_one_group_form(stack):
    topic = StreamingTopic(stack, "orders", name="orders")
    with pytest.raises(DatapipeError, match="exactly one of consumer_group or consumer_group_prefix"):
        topic.grant_read(Principal.kafka_user("a"))


@pytest.mark.parametrize(("name", "warned"), [("pay.orders_v2", True), ("_schema-history.pay", False), ("pay_orders", False)])
def test_a_name_mixing_dot_and_underscore_is_warned_about_unless_the_underscore_only_leads(stack, name, warned):
    topic = StreamingTopic(stack, "t", name=name)
    warnings = [str(m.data) for m in topic.node.metadata if m.type == "@cdktf/warn"]
    assert any("mixes '.' and '_'" in w for w in warnings) is warned, warnings
