"""Arbitrary strings and numbers at every public argument: only DatapipeError (or success) comes out."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datapipe_cdk import (
    BigQuerySink,
    CdcSource,
    Column,
    ColumnType,
    DatapipeError,
    KafkaAcl,
    MicroWarehouse,
    Principal,
    StreamingTopic,
    Table,
)

from .conftest import make_stack

KEYED = Table(["id"], [Column("id", ColumnType.INT64)])

junk = st.one_of(
    st.text(max_size=40),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=True),
    st.none(),
    st.booleans(),
    st.lists(st.text(max_size=8), max_size=3),
    st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=2),
    st.timedeltas(min_value=timedelta(days=-10), max_value=timedelta(days=1000)),
)
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _only_our_error(build: Any) -> None:
    try:
        build()
    except DatapipeError:
        pass


TOPIC_ARGS = ["name", "partitions", "replication_factor", "retention", "cleanup_policy", "min_compaction_lag", "config"]


@FUZZ
@given(arg=st.sampled_from(TOPIC_ARGS), value=junk)
def test_streaming_topic_arguments(arg, value):
    stack = make_stack()
    kwargs: dict[str, Any] = {"name": "t", arg: value}
    _only_our_error(lambda: StreamingTopic(stack, "t", **kwargs))


SOURCE_ARGS = [
    "engine",
    "host",
    "database",
    "tables",
    "port",
    "schema",
    "username",
    "topic_prefix",
    "snapshot_mode",
    "heartbeat",
    "masked",
    "hashed",
    "excluded",
    "partitions",
    "retention",
    "server_id",
    "extra_config",
]


@FUZZ
@given(arg=st.sampled_from(SOURCE_ARGS), value=junk)
def test_cdc_source_arguments(arg, value):
    stack = make_stack()
    kwargs: dict[str, Any] = {"engine": "mysql", "host": "db", "database": "d", "tables": {"t": KEYED}, arg: value}
    _only_our_error(lambda: CdcSource(stack, "s", **kwargs))


@FUZZ
@given(
    arg=st.sampled_from(
        [
            "dataset",
            "tables",
            "description",
            "labels",
            "holds_pii",
            "retention",
            "owners",
            "readers",
            "deletion_protection",
            "source",
        ]
    ),
    value=junk,
)
def test_sink_arguments(arg, value):
    stack = make_stack()
    source = CdcSource(stack, "s", engine="mysql", host="db", database="d", tables={"t": KEYED})
    kwargs: dict[str, Any] = {"source": source, "dataset": "raw", arg: value}
    _only_our_error(lambda: BigQuerySink(stack, "k", **kwargs))


@FUZZ
@given(
    arg=st.sampled_from(
        ["owners", "readers", "writers", "dataset", "description", "labels", "retention", "holds_pii", "deletion_protection"]
    ),
    value=junk,
)
def test_warehouse_arguments(arg, value):
    stack = make_stack()
    kwargs: dict[str, Any] = {"owners": [Principal.group("o@acme.com")], arg: value}
    _only_our_error(lambda: MicroWarehouse(stack, "w", **kwargs))


@FUZZ
@given(
    arg=st.sampled_from(
        ["principal", "resource_type", "resource_name", "operation", "pattern", "permission", "host", "allow_public"]
    ),
    value=junk,
)
def test_kafka_acl_arguments(arg, value):
    stack = make_stack()
    kwargs: dict[str, Any] = {
        "principal": Principal.kafka_user("u"),
        "resource_type": "Topic",
        "resource_name": "t",
        "operation": "Read",
        arg: value,
    }
    _only_our_error(lambda: KafkaAcl(stack, "a", **kwargs))


@FUZZ
@given(
    maker=st.sampled_from(["kafka_user", "user", "group", "service_account", "domain", "parse_iam_member", "parse_kafka"]),
    value=junk,
)
def test_principal_constructors(maker, value):
    _only_our_error(lambda: getattr(Principal, maker)(value))


@FUZZ
@given(construct_id=junk)
def test_construct_ids(construct_id):
    stack = make_stack()
    _only_our_error(lambda: StreamingTopic(stack, construct_id, name="t"))


@FUZZ
@given(value=junk, method=st.sampled_from(["grant_read", "grant_write"]))
def test_grant_arguments(value, method):
    stack = make_stack()
    topic = StreamingTopic(stack, "t", name="t")
    kwargs = {"consumer_group": value} if method == "grant_read" else {"transactional_id": value}
    _only_our_error(lambda: getattr(topic, method)(Principal.kafka_user("u"), **kwargs))
