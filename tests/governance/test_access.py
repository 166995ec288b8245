"""Temporary access (BigQuery IAM conditions, Kafka expiry in the manifest) and the access review."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from datapipe_cdk import MicroWarehouse, Principal
from datapipe_cdk.access import expired_grants, format_table, review, who_can_read
from tests.governance.helpers import OWNER, make_sink, make_source, make_stack, synth

UNTIL = datetime(2030, 3, 31, tzinfo=UTC)


def _stack():
    stack = make_stack()
    source = make_source(stack, masked={"accounts": ["email", "phone"]})
    raw = make_sink(stack, source)
    team = MicroWarehouse(stack, "risk", owners=[OWNER], readers=[Principal.group("risk@acme.com")])
    team.expose(raw.table("orders"))
    return stack, source, team


def _resources(doc, kind):
    return list(doc["resource"].get(kind, {}).values())


@pytest.mark.parametrize(
    "until, stamp",
    [
        (UNTIL, "2030-03-31T00:00:00Z"),
        (datetime(2030, 3, 31, 2, 30, tzinfo=timezone(timedelta(hours=2))), "2030-03-31T00:30:00Z"),
    ],
)
def test_grant_query_until_compiles_to_an_iam_condition_on_request_time(until, stamp):
    stack, _, team = _stack()
    team.grant_query(Principal.user("auditor@acme.com"), until=until)
    doc = synth(stack)
    access = [a for a in _resources(doc, "google_bigquery_dataset_access") if a.get("user_by_email") == "auditor@acme.com"]
    assert access == [
        {
            **access[0],
            "role": "READER",
            "condition": [
                {
                    "title": f"expires_{stamp[:10].replace('-', '_')}",
                    "description": f"Temporary access, expires at {stamp}",
                    "expression": f'request.time < timestamp("{stamp}")',
                }
            ],
        }
    ]
    job_user = [m for m in _resources(doc, "google_project_iam_member") if m["member"] == "user:auditor@acme.com"]
    assert job_user[0]["role"] == "roles/bigquery.jobUser"
    assert job_user[0]["condition"][0]["expression"] == f'request.time < timestamp("{stamp}")'
    grants = doc["output"]["datapipe_manifest"]["value"]["governance"]["temporary_grants"]["bigquery"]
    assert grants == [
        {
            "principal": "user:auditor@acme.com",
            "until": stamp,
            "dataset": "risk",
            "path": "test/risk",
        }
    ]


def test_kafka_grant_until_records_the_expiry_and_its_acls_in_the_manifest():
    stack, source, _ = _stack()
    acls = source.topic("orders").grant_read(Principal.kafka_user("auditor"), consumer_group="audit", until=UNTIL)
    doc = synth(stack)
    kafka = doc["output"]["datapipe_manifest"]["value"]["governance"]["temporary_grants"]["kafka"]
    assert kafka == [
        {
            "principal": "User:auditor",
            "topic": "payments.payments.orders",
            "access": "read",
            "until": "2030-03-31T00:00:00Z",
            "acls": [list(a.key) for a in acls],
        }
    ]
    assert [a[3] for a in kafka[0]["acls"]] == ["Read", "Describe", "Read"]


def test_expired_kafka_grants_are_listed_only_after_expiry_and_while_present():
    stack, source, _ = _stack()
    source.topic("orders").grant_read(Principal.kafka_user("auditor"), consumer_group="audit", until=UNTIL)
    doc = synth(stack)
    assert expired_grants(doc, now=UNTIL - timedelta(seconds=1)) == []
    [grant] = expired_grants(doc, now=UNTIL + timedelta(days=1))
    assert (grant.principal, grant.resource, grant.until, grant.acls_present, grant.where) == (
        "User:auditor",
        "Topic:payments.payments.orders",
        "2030-03-31T00:00:00Z",
        3,
        "synthesized stack",
    )
    live_without = [("User:connect", "TOPIC", "x", "READ", "LITERAL", "ALLOW", "*")]
    assert expired_grants(doc, now=UNTIL + timedelta(days=1), live_acls=live_without) == []
    live_with = [("User:auditor", "TOPIC", "payments.payments.orders", "READ", "LITERAL", "ALLOW", "*")]
    [live] = expired_grants(doc, now=UNTIL + timedelta(days=1), live_acls=live_with)
    assert (live.acls_present, live.where) == (1, "live cluster")


def test_access_review_lists_who_can_read_what_across_kafka_and_bigquery():
    stack, source, team = _stack()
    source.topic("orders").grant_read(Principal.kafka_user("fraud-detector"), consumer_group_prefix="fraud-")
    team.grant_query(Principal.user("auditor@acme.com"), until=UNTIL)
    doc = synth(stack)
    readers = who_can_read(doc)
    assert [(e.system, e.resource, e.access) for e in readers["User:fraud-detector"]] == [
        ("kafka", "Topic:payments.payments.orders", "Read")
    ]
    assert [(e.resource, e.access, e.expires) for e in readers["user:auditor@acme.com"]] == [
        ("dataset:risk", "read", "2030-03-31T00:00:00Z")
    ]
    assert [(e.resource, e.access) for e in readers["group:risk@acme.com"]] == [("dataset:risk", "read")]
    assert [(e.resource, e.access) for e in readers["view:risk.orders"]] == [("dataset:payments_raw", "authorized view")]
    sink_account = "serviceAccount:raw-kcbq@acme-data.iam.gserviceaccount.com"
    assert [(e.resource, e.access) for e in readers[sink_account]] == [("dataset:payments_raw", "read, write")]
    everything = review(doc)
    assert ("User:fraud-detector", "Group:fraud- (prefixed)", "Read") in {(e.principal, e.resource, e.access) for e in everything}
    assert ("project:acme-data", "roles/bigquery.jobUser") in {
        (e.resource, e.access) for e in everything if e.principal == "user:auditor@acme.com"
    }
    table = format_table(readers["User:fraud-detector"])
    assert table == "User:fraud-detector\n  kafka    Read                   Topic:payments.payments.orders\n"
