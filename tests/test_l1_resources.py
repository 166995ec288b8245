"""The L1 base: attributes handed over in bulk, logical ids as cdktf names them, escape hatches intact."""

from __future__ import annotations

import pytest
from constructs import Construct

from datapipe_cdk import CdcSource, Column, ColumnType, DatapipeError, DataPipelineStack, StreamingTopic, Table
from datapipe_cdk._cdk import App, TerraformStack
from datapipe_cdk.governance import opt_out
from datapipe_cdk.providers._base import Resource, logical_id
from datapipe_cdk.providers.kafka import Topic

from .conftest import make_stack, resources, synth_stack


def _all_resources(stack) -> list[Resource]:
    return [c for c in stack.node.find_all() if isinstance(c, Resource)]


def test_logical_ids_computed_in_python_equal_cdktfs_for_every_resource():
    stack = make_stack()
    source = CdcSource(
        stack,
        "payments-db",
        engine="mysql",
        host="db",
        database="payments",
        tables={
            "orders": Table(["id"], [Column("id", ColumnType.INT64)]),
            "Resource": Table(["id"], [Column("id", ColumnType.INT64)]),
        },
    )
    holder = Construct(source, "Default")  # hidden from ids entirely
    Topic(holder, "Resource", name="hidden-component", partitions=1, replication_factor=1)  # hidden from the readable part
    Topic(stack, "top-level.id", name="top-level", partitions=1, replication_factor=1)  # one component: as is
    Topic(Construct(stack, "x" * 120), "y" * 128, name="long", partitions=1, replication_factor=1)  # readable part cut
    found = _all_resources(stack)
    assert len(found) > 10
    for resource in found:
        assert stack.resource_table.logical_id(resource) == resource.friendly_unique_id, resource.node.path


def test_logical_id_rules_match_cdktf_make_unique_id():
    assert logical_id(["top-level.id"]) == "top-levelid"
    assert logical_id(["db", "Default", "x"]) == logical_id(["db", "x"])
    readable, digest = logical_id(["orders", "orders-topic"]).rsplit("_", 1)
    assert readable == "orders_orders-topic"
    assert len(digest) == 8 and digest == digest.upper()
    assert logical_id(["orders-topic", "topic"]).rsplit("_", 1)[0] == "orders-topic"  # a suffix of its parent: dropped
    assert logical_id(["db", "Resource"]).rsplit("_", 1)[0] == "db"
    assert len(logical_id(["x" * 300, "y"])) == 240 + 1 + 8


def test_each_resource_is_written_once_with_its_attributes_and_meta_arguments(synth):
    stack = make_stack()
    first = StreamingTopic(stack, "first", name="first")
    Topic(stack, "second", name="second", partitions=2, replication_factor=1, depends_on=[first.resource])
    doc = synth(stack)
    second = doc["resource"]["kafka_topic"]["second"]
    assert second == {
        "name": "second",
        "partitions": 2,
        "replication_factor": 1,
        "depends_on": [f"kafka_topic.{first.resource.friendly_unique_id}"],
    }
    assert len(resources(doc, "kafka_topic")) == len([r for r in _all_resources(stack) if r.TYPE == "kafka_topic"])


def test_escape_hatch_overrides_win_over_synthesized_attributes(synth):
    stack = make_stack()
    topic = StreamingTopic(stack, "orders", name="orders", partitions=3)
    topic.resource.add_override("partitions", 12)
    topic.resource.add_override("config", {"segment.bytes": "1048576"})
    doc = synth(stack)
    written = doc["resource"]["kafka_topic"][topic.resource.friendly_unique_id]
    assert written["partitions"] == 12
    assert written["config"]["segment.bytes"] == "1048576"
    assert written["config"]["cleanup.policy"] == "delete"  # merged, not replaced


def test_an_overridden_logical_id_is_used_for_the_attributes_too(synth):
    stack = make_stack()
    topic = StreamingTopic(stack, "orders", name="orders")
    topic.resource.override_logical_id("orders_topic")
    written = synth(stack)["resource"]["kafka_topic"]
    assert written["orders_topic"]["name"] == "orders"
    assert not [key for key in written if key.startswith("orders_topic_")]


def test_an_override_cdktf_ignores_is_ignored_for_the_attributes_too(synth):
    """cdktf keeps a logical id once it has been read; the attributes must follow cdktf, not the request."""
    stack = make_stack()
    topic = StreamingTopic(stack, "orders", name="orders")
    default_id = topic.resource.friendly_unique_id
    topic.resource.override_logical_id("orders_topic")
    written = synth(stack)["resource"]["kafka_topic"]
    assert written[default_id]["name"] == "orders"
    assert "orders_topic" not in written


def test_a_stack_with_its_own_naming_scheme_is_asked_for_ids(synth):
    class PrefixedStack(DataPipelineStack):
        def _allocate_logical_id(self, tf_element):
            return "p_" + tf_element.node.id

    reference = make_stack()
    stack = PrefixedStack(App(), "prefixed", kafka=reference.kafka, connect=reference.connect, gcp=reference.gcp)
    opt_out(stack, "owner-required", "naming test")
    StreamingTopic(stack, "orders", name="orders")
    written = synth(stack)["resource"]["kafka_topic"]
    assert written["p_topic"]["name"] == "orders"
    assert all(key.startswith("p_") for key in written)


def test_resources_outside_a_pipeline_stack_are_refused_naming_the_path():
    app = App()
    plain = TerraformStack(app, "plain")
    holder = Construct(plain, "holder")
    with pytest.raises(DatapipeError) as error:
        Topic(holder, "t", name="t", partitions=1, replication_factor=1)
    assert "plain/holder" in str(error.value)
    assert "DataPipelineStack" in str(error.value)
    with pytest.raises(DatapipeError):
        Topic(app, "t", name="t", partitions=1, replication_factor=1)


def test_resources_inside_plain_constructs_of_a_pipeline_stack_are_synthesized():
    stack = make_stack()
    holder = Construct(stack, "holder")
    Topic(holder, "t", name="held", partitions=1, replication_factor=1)
    held = synth_stack(stack)["resource"]["kafka_topic"][logical_id(["holder", "t"])]
    assert held == {"name": "held", "partitions": 1, "replication_factor": 1}
