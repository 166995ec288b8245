"""Every resource we emit conforms to the real provider schemas; a broken attribute is caught by name."""

from __future__ import annotations

import pytest

from datapipe_cdk.providers.kafka import Topic

from .conftest import synth_stack
from .schema_conformance import conformance_errors
from .test_examples import _example_docs


@pytest.mark.parametrize("profile", ["production", "local"])
def test_example_stacks_conform_to_provider_schemas(profile):
    docs = _example_docs(profile)
    assert docs, "no example stacks synthesized"
    for name, doc in docs.items():
        assert conformance_errors(doc) == [], name


class MisspelledTopic(Topic):
    """A deliberately broken L1 class: the attribute is ``partitions``, not ``partition_count``."""

    def synthesized_attributes(self):
        attributes = dict(self.attributes)
        attributes["partition_count"] = attributes.pop("partitions")
        return attributes


def test_a_misspelled_attribute_fails_naming_resource_and_attribute(stack):
    MisspelledTopic(stack, "broken", name="t", partitions=1, replication_factor=1)
    stack.skip_conformance = True
    errors = conformance_errors(synth_stack(stack))
    assert "kafka_topic.broken.partition_count: the provider schema has no such attribute or block" in errors
    assert "kafka_topic.broken.partitions: required attribute missing" in errors


def test_wrong_types_blocks_and_computed_attributes_are_reported():
    doc = {
        "resource": {
            "kafka_topic": {"t": {"name": "t", "partitions": "three", "replication_factor": 1, "id": "x"}},
            "google_bigquery_table": {
                "v": {"dataset_id": "d", "table_id": "v", "view": "SELECT 1", "labels": [{"a": "b"}], "creation_time": 5}
            },
        }
    }
    errors = conformance_errors(doc)
    assert "kafka_topic.t.partitions: expected number, got str 'three'" in errors
    assert "google_bigquery_table.v.view: is a block, given as an attribute value 'SELECT 1'" in errors
    assert "google_bigquery_table.v.labels: expected a map, got list" in errors
    assert "google_bigquery_table.v.creation_time: computed-only attribute set by us" in errors
