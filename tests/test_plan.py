"""The plan classifier: hand-built ``tofu show -json`` plans of the real payments stack (tests/golden/payments.json),
mutated one consequence at a time. Each change follows the JSON plan format (format 1.x) as OpenTofu 1.12 writes it."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from datapipe_cdk import plan
from datapipe_cdk.plan import classify, classify_drift, exit_status, parse_allow, render_table

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = json.loads((ROOT / "tests" / "golden" / "payments.json").read_text())
PROVIDERS = {
    "kafka": "registry.opentofu.org/mongey/kafka",
    "kafka-connect": "registry.opentofu.org/mongey/kafka-connect",
    "google": "registry.opentofu.org/hashicorp/google",
}
SALT = "s3cret-salt-0123456789"

# Logical ids used below and their construct paths, from a real `cdktf synth` (the golden files are
# written by Testing.synth, which drops the "//" metadata the classifier reads from cdk.tf.json).
TOPIC_ORDERS = "payments-db_topic-orders_topic_C51840B0"
TOPIC_DLQ = "payments-raw_dead-letter_topic_F04A0BE2"
HISTORY = "payments-db_schema-history_topic_C7226B25"
SOURCE = "payments-db_connector_434DD9E0"
SINK = "payments-raw_connector_F19CBA5B"
CHANGELOG = "payments-raw_changelog-orders_35331ACE"
VIEW = "finance_view-orders_F975AA8D"
CUSTOM_VIEW = "finance_view-daily_revenue_6A184EFB"
RAW_DATASET = "payments-raw_dataset_3741EE93"
READER = "finance_dataset_grant-reader-group-financeacmecom_F884BB9F"
AUTHORIZE = "payments-raw_dataset_authorize-finance-orders_B8852CCD"
JOB_USER = "risk_job-user-user-auditoracmecom-until-20300331T000000Z_AEF57320"
FRAUD_READ = "acl-fraud-detector-Read-Topic-paymentspaymentsorders-efe98250_acl_8583C0D8"
PATHS = {
    TOPIC_ORDERS: "payments/payments-db/topic-orders/topic",
    TOPIC_DLQ: "payments/payments-raw/dead-letter/topic",
    HISTORY: "payments/payments-db/schema-history/topic",
    SOURCE: "payments/payments-db/connector",
    SINK: "payments/payments-raw/connector",
    CHANGELOG: "payments/payments-raw/changelog-orders",
    VIEW: "payments/finance/view-orders",
    CUSTOM_VIEW: "payments/finance/view-daily_revenue",
    RAW_DATASET: "payments/payments-raw/dataset/dataset",
    READER: "payments/finance/dataset/grant-reader-group-finance@acme.com",
    AUTHORIZE: "payments/payments-raw/dataset/authorize-finance-orders",
    JOB_USER: "payments/risk/job-user-user-auditor@acme.com-until-20300331T000000Z",
    FRAUD_READ: "payments/acl-fraud-detector-Read-Topic-payments.payments.orders-efe98250/acl",
}


def synthesized() -> dict[str, Any]:
    """The golden payments stack with the construct-path metadata a real cdk.tf.json carries."""
    doc = copy.deepcopy(GOLDEN)
    for resources in doc["resource"].values():
        for logical_id, resource in resources.items():
            if logical_id in PATHS:
                resource["//"] = {"metadata": {"path": PATHS[logical_id], "uniqueId": logical_id}}
    return doc


def _type_of(logical_id: str) -> str:
    return next(t for t, resources in GOLDEN["resource"].items() if logical_id in resources)


def _resolve(value: Any) -> Any:
    """Golden attributes as a plan shows them: references and variables resolved, ``$${`` unescaped."""
    if isinstance(value, dict):
        return {_resolve(k): _resolve(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v) for v in value]
    if not isinstance(value, str):
        return value

    def reference(match: re.Match[str]) -> str:
        parts = match.group(1).split(".")
        if parts[0] == "var":
            return SALT
        kind, logical_id, attribute = parts
        return str(_resolve(GOLDEN["resource"][kind][logical_id][attribute]))

    return re.sub(r"(?<!\$)\$\{([A-Za-z0-9_.-]+)\}", reference, value).replace("$${", "${")


def values(logical_id: str, **changes: Any) -> dict[str, Any]:
    """A golden resource's attributes in plan form, with ``changes`` applied (``None`` removes a key)."""
    raw = GOLDEN["resource"][_type_of(logical_id)][logical_id]
    found = {k: _resolve(v) for k, v in raw.items() if k not in ("//", "depends_on", "lifecycle", "provider")}
    for key, value in changes.items():
        if value is None:
            found.pop(key, None)
        else:
            found[key] = value
    return found


def config(**changes: Any) -> dict[str, Any]:
    """The source connector's config with ``changes`` (``snapshot_mode`` for ``snapshot.mode``)."""
    found = values(SOURCE)["config"]
    found.update({key.replace("__", ".").replace("_", "."): value for key, value in changes.items()})
    return {key: value for key, value in found.items() if value is not None}


def change(
    logical_id: str,
    actions: list[str],
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    *,
    replace_paths: list[list[Any]] | None = None,
    action_reason: str | None = None,
    after_unknown: dict[str, Any] | None = None,
    address_id: str | None = None,
) -> dict[str, Any]:
    """One ``resource_changes`` entry, shaped as ``tofu show -json`` writes it."""
    type_ = _type_of(logical_id)
    name = address_id or logical_id
    provider = PROVIDERS["google" if type_.startswith("google") else "kafka-connect" if "connect" in type_ else "kafka"]
    body: dict[str, Any] = {
        "actions": actions,
        "before": before,
        "after": after,
        "after_unknown": after_unknown if after_unknown is not None else ({"id": True} if "create" in actions else {}),
        "before_sensitive": {} if before is not None else False,
        "after_sensitive": {} if after is not None else False,
    }
    if type_ == "kafka-connect_connector":
        for side in ("before", "after"):
            if body[side] is not None:
                body[side] = {"config_sensitive": None, **body[side]}
                body[f"{side}_sensitive"] = {"config": {}, "config_sensitive": True}
    if replace_paths:
        body["replace_paths"] = replace_paths
    entry = {
        "address": f"{type_}.{name}",
        "mode": "managed",
        "type": type_,
        "name": name,
        "provider_name": provider,
        "change": body,
    }
    if action_reason:
        entry["action_reason"] = action_reason
    return entry


def update(logical_id: str, before: dict[str, Any] | None = None, **after_changes: Any) -> dict[str, Any]:
    before = before or values(logical_id)
    return change(logical_id, ["update"], before, {**before, **after_changes})


def no_op(logical_id: str) -> dict[str, Any]:
    return change(logical_id, ["no-op"], values(logical_id), values(logical_id))


def make_plan(*changes: dict[str, Any], drift: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
    """A plan document around ``changes``; the configuration lists what is configured (no metadata there)."""
    configured = [
        {
            "address": c["address"],
            "mode": "managed",
            "type": c["type"],
            "name": c["name"],
            "provider_config_key": c["type"].split("_")[0],
            "expressions": {k: {"constant_value": v} for k, v in (c["change"]["after"] or {}).items()},
            "schema_version": 0,
        }
        for c in changes
        if c["change"]["after"] is not None
    ]
    return {
        "format_version": "1.2",
        "terraform_version": "1.12.6",
        "planned_values": {"root_module": {}},
        "resource_changes": list(changes),
        "resource_drift": list(drift),
        "configuration": {"root_module": {"resources": configured}},
        "timestamp": "2026-12-01T12:00:00Z",
        "errored": False,
    }


def only(plan_json: dict[str, Any]) -> plan.ClassifiedChange:
    found = [c for c in classify(plan_json, synthesized()) if c.is_change]
    assert len(found) == 1, found
    return found[0]


# ---------------------------------------------------------------------------------------------- paths


def test_every_change_is_classified_with_the_construct_path_from_cdk_tf_json():
    deleted = change(TOPIC_ORDERS, ["delete"], values(TOPIC_ORDERS), None, address_id="payments-db_topic-old_topic_0D0D0D0D")
    found = classify(make_plan(no_op(SOURCE), no_op(VIEW), update(TOPIC_DLQ, partitions=2), deleted), synthesized())
    assert {c.address: (c.path, c.cls) for c in found} == {
        f"kafka-connect_connector.{SOURCE}": ("payments/payments-db/connector", "no-op"),
        f"google_bigquery_table.{VIEW}": ("payments/finance/view-orders", "no-op"),
        f"kafka_topic.{TOPIC_DLQ}": ("payments/payments-raw/dead-letter/topic", "in-place"),
        # no longer in the synthesized stack: the address stands in for the path
        "kafka_topic.payments-db_topic-old_topic_0D0D0D0D": ("", "data-loss"),
    }
    assert found[0].where == "kafka_topic.payments-db_topic-old_topic_0D0D0D0D"
    assert all(c.path == "" for c in classify(make_plan(no_op(SOURCE)), None))


# ---------------------------------------------------------------------------------------------- data loss


def test_partition_decrease_replaces_the_topic_and_loses_its_data():
    before = values(TOPIC_ORDERS, partitions=6)
    replaced = change(TOPIC_ORDERS, ["delete", "create"], before, {**before, "partitions": 3},
                      replace_paths=[["partitions"]], action_reason="replace_because_cannot_update")  # fmt: skip
    found = only(make_plan(replaced))
    assert (found.cls, found.action, found.path) == ("data-loss", "-/+ replace", "payments/payments-db/topic-orders/topic")
    assert found.reason == (
        "partitions 6 -> 3 forces replacement: topic payments.payments.orders (payments.orders) and its data are deleted"
    )


def test_deleted_topic_changelog_table_and_dataset_are_data_loss():
    found = classify(
        make_plan(
            change(HISTORY, ["delete"], values(HISTORY), None, action_reason="delete_because_no_resource_config"),
            change(CHANGELOG, ["delete"], values(CHANGELOG), None),
            change(RAW_DATASET, ["delete"], values(RAW_DATASET), None),
        ),
        synthesized(),
    )
    assert [c.cls for c in found] == ["data-loss"] * 3
    reasons = " | ".join(c.reason for c in sorted(found, key=lambda c: c.type))
    assert reasons == (
        "dataset payments_raw is deleted with its tables (delete_contents_on_destroy=false: apply fails while it holds tables)"
        " | changelog table payments_raw.payments_payments_orders is deleted with every change event it holds"
        " (deletion_protection is on: apply fails until it is turned off)"
        " | topic _schema-history.payments is deleted with its data; it is a schema history topic: the source cannot "
        "restart without snapshot.mode=recovery"
    )


def test_changelog_schema_change_forcing_replacement_is_data_loss_and_an_added_column_is_reader_visible():
    before = values(CHANGELOG)
    fields = json.loads(before["schema"])
    retyped = json.dumps([{**f, "type": "NUMERIC"} if f["name"] == "amount" else f for f in fields])
    widened = json.dumps([*fields, {"name": "region", "type": "STRING", "mode": "NULLABLE"}])
    replaced = change(CHANGELOG, ["delete", "create"], before, {**before, "schema": retyped}, replace_paths=[["schema"]])
    assert only(make_plan(replaced)).cls == "data-loss"
    assert only(make_plan(replaced)).reason.startswith("schema (amount STRING NULLABLE -> NUMERIC NULLABLE) forces replacement")
    added = only(make_plan(update(CHANGELOG, schema=widened)))
    assert (added.cls, added.reason) == (
        "reader-visible",
        "changelog table payments_raw.payments_payments_orders: schema adds region",
    )


def test_a_topic_deleted_and_created_again_under_a_new_construct_id_still_loses_its_data():
    moved = change(TOPIC_ORDERS, ["create"], None, values(TOPIC_ORDERS), address_id="payments-db_orders_topic_1A2B3C4D")
    old = change(TOPIC_ORDERS, ["delete"], values(TOPIC_ORDERS), None)
    found = {c.address: c for c in classify(make_plan(moved, old), synthesized())}
    assert found[old["address"]].cls == "data-loss"
    assert "created again, empty, at kafka_topic.payments-db_orders_topic_1A2B3C4D" in found[old["address"]].reason
    assert found[moved["address"]].cls == "create"


# ---------------------------------------------------------------------------------------------- sources


def test_a_brand_new_source_is_a_create_not_a_risk():
    found = only(make_plan(change(SOURCE, ["create"], None, values(SOURCE))))
    assert found.cls == "create"
    assert found.reason == (
        "new Debezium source payments-db: its first start snapshots payments.orders, payments.refunds, payments.accounts "
        "(snapshot.mode initial); nothing existing is re-read"
    )


def test_renaming_a_source_re_snapshots_it():
    before = values(SOURCE)
    after = values(SOURCE, name="payments-db-v2", config=config(name="payments-db-v2"))
    replaced = change(SOURCE, ["delete", "create"], before, after, replace_paths=[["name"]],
                      action_reason="replace_because_cannot_update")  # fmt: skip
    found = only(make_plan(replaced))
    assert (found.cls, found.path) == ("re-snapshot", "payments/payments-db/connector")
    assert found.reason == (
        "source payments-db-v2: name payments-db -> payments-db-v2 forces replacement: new name = new offsets = "
        "full snapshot of every table"
    )


def test_a_source_deleted_and_another_created_for_the_same_database_is_a_rename():
    new_id = "payments-db-v2_connector_5E5E5E5E"
    created = change(SOURCE, ["create"], None, values(SOURCE, name="payments-db-v2", config=config(name="payments-db-v2")),
                     address_id=new_id)  # fmt: skip
    deleted = change(SOURCE, ["delete"], values(SOURCE), None)
    found = {c.address: c for c in classify(make_plan(created, deleted), synthesized())}
    assert found[created["address"]].cls == "re-snapshot"
    assert "replaces source payments-db" in found[created["address"]].reason
    assert found[deleted["address"]].cls == "delete"


def test_a_source_replaced_under_the_same_name_keeps_its_offsets():
    tainted = change(SOURCE, ["delete", "create"], values(SOURCE), values(SOURCE), action_reason="replace_because_tainted")
    found = only(make_plan(tainted))
    assert found.cls == "connector-restart"
    assert "re-created under the same name (a tainted object): Connect keeps its offsets" in found.reason


@pytest.mark.parametrize(
    "changes, cls, reason",
    [
        (
            {"snapshot_mode": "always"},
            "re-snapshot",
            "snapshot.mode initial -> always: the connector re-reads every table on each start",
        ),
        ({"snapshot_mode": "no_data"}, "connector-restart", "snapshot.mode initial -> no_data: never snapshots table data"),
        (
            {"topic_prefix": "payments2"},
            "re-snapshot",
            "topic.prefix payments -> payments2: offsets and topic names are keyed by it, every table is snapshotted "
            "again into new topics",
        ),
        (
            {"database__server__id": "4242"},
            "connector-restart",
            "database.server.id 3172182 -> 4242 (the replication client id only: offsets kept)",
        ),
        (
            {"table__include__list": "payments\\.orders,payments\\.refunds,payments\\.accounts,payments\\.chargebacks"},
            "new-table-needs-snapshot",
            "table.include.list adds payments.chargebacks: Debezium streams its new changes; datapipe deploy then requests "
            "an incremental snapshot of it only (execute-snapshot signal in payments.debezium_signal), the other tables "
            "are not re-read",
        ),
        (
            {
                "table__include__list": "payments\\.orders,payments\\.refunds,payments\\.accounts,payments\\.chargebacks",
                "signal__data__collection": None,
            },  # a source without a signal channel
            "new-table-needs-snapshot",
            "table.include.list adds payments.chargebacks: Debezium streams its new changes but does not snapshot its "
            "existing rows; send an incremental snapshot (execute-snapshot signal) for it; restarts, resuming from its "
            "offsets (signal.data.collection change)",
        ),
        (
            {"message__key__columns": "payments.orders:id,account_id;payments.refunds:id;payments.accounts:id"},
            "re-keying",
            "message.key.columns changes the key of payments.orders (id -> id,account_id): new events land on other partitions",
        ),
        (
            {"heartbeat__interval__ms": "5000"},
            "connector-restart",
            "restarts, resuming from its offsets (heartbeat.interval.ms change)",
        ),
    ],
)
def test_source_config_updates(changes, cls, reason):
    found = only(make_plan(update(SOURCE, config=config(**changes))))
    assert (found.cls, found.reason) == (cls, f"source payments-db: {reason}")


def test_one_update_with_two_risky_consequences_reports_both():
    found = only(
        make_plan(update(SOURCE, config=config(snapshot_mode="always", message__key__columns="payments.orders:id,account_id")))
    )
    assert (found.cls, found.also) == ("re-snapshot", ("re-keying",))
    assert exit_status([found], "re-snapshot") == plan.RISKY_CHANGES
    assert exit_status([found], "re-snapshot,re-keying") == plan.CHANGES


def test_any_restart_of_a_source_in_snapshot_mode_always_re_snapshots():
    before = values(SOURCE, config=config(snapshot_mode="always"))
    found = only(make_plan(update(SOURCE, before, config=config(snapshot_mode="always", heartbeat__interval__ms="5000"))))
    assert found.cls == "re-snapshot"
    assert found.reason.endswith("snapshot.mode is always: this restart re-reads every table")


def test_sink_config_change_restarts_it():
    before = values(SINK)
    topics = before["config"]["topics"] + ",payments.payments.chargebacks"
    found = only(make_plan(update(SINK, config={**before["config"], "topics": topics})))
    assert (found.cls, found.path) == ("connector-restart", "payments/payments-raw/connector")
    assert (
        found.reason
        == "sink connector payments-raw restarts: topics: reads payments.payments.chargebacks from its earliest retained offset"
    )


# ---------------------------------------------------------------------------------------------- re-keying, readers


def test_more_partitions_re_key_a_cdc_topic_but_not_the_dead_letter_topic():
    cdc = only(make_plan(update(TOPIC_ORDERS, partitions=6)))
    assert (cdc.cls, cdc.reason) == (
        "re-keying",
        "topic payments.payments.orders (payments.orders): partitions 1 -> 6: keys of payments.orders move to other "
        "partitions, where their offsets restart lower; latest-state views order a key's events by offset, so its newer "
        "events would lose to older ones (keep the count, or recreate the topic, sink tables and state with a new snapshot)",
    )
    assert only(make_plan(update(TOPIC_DLQ, partitions=3))).cls == "in-place"


def test_views_query_change_is_reader_visible_and_a_latest_state_key_change_is_re_keying():
    custom = values(CUSTOM_VIEW)
    changed = [{**custom["view"][0], "query": custom["view"][0]["query"].replace("'paid'", "'settled'")}]
    found = only(make_plan(update(CUSTOM_VIEW, view=changed)))
    assert (found.cls, found.reason) == ("reader-visible", "view finance.daily_revenue: query changes")

    latest = values(VIEW)
    rekeyed = [
        {**latest["view"][0], "query": latest["view"][0]["query"].replace("PARTITION BY `id`", "PARTITION BY `id`, `account_id`")}
    ]
    found = only(make_plan(update(VIEW, view=rekeyed)))
    assert (found.cls, found.reason) == (
        "re-keying",
        "latest-state view finance.orders: primary key id -> id, account_id (the newest row per key changes meaning)",
    )
    deleted = only(make_plan(change(VIEW, ["delete"], latest, None)))
    assert (deleted.cls, deleted.reason) == (
        "reader-visible",
        "latest-state view finance.orders is deleted: queries of its readers fail",
    )


# ---------------------------------------------------------------------------------------------- access


def test_access_created_deleted_and_replaced():
    acl = only(make_plan(change(FRAUD_READ, ["create"], None, values(FRAUD_READ))))
    assert (acl.cls, acl.reason) == ("access-widened", "User:fraud-detector gains Read on Topic payments.payments.orders")

    reader = only(make_plan(change(READER, ["delete"], values(READER), None)))
    assert (reader.cls, reader.path, reader.reason) == (
        "access-narrowed",
        "payments/finance/dataset/grant-reader-group-finance@acme.com",
        "group:finance@acme.com loses READER on dataset finance",
    )

    view_grant = only(make_plan(change(AUTHORIZE, ["delete"], values(AUTHORIZE), None)))
    assert view_grant.reason == (
        "view acme-data.finance.orders loses access (authorized view) on dataset payments_raw: "
        "queries of that view's readers fail"
    )

    before = values(JOB_USER)
    later = [{**before["condition"][0], "expression": 'request.time < timestamp("2031-03-31T00:00:00Z")'}]
    extended = change(JOB_USER, ["delete", "create"], before, {**before, "condition": later},
                      replace_paths=[["condition", 0, "expression"]], action_reason="replace_because_cannot_update")  # fmt: skip
    found = only(make_plan(extended))
    assert found.cls == "access-replaced"
    assert found.reason == (
        "condition until 2030-03-31T00:00:00Z -> until 2031-03-31T00:00:00Z forces replacement of user:auditor@acme.com: "
        "roles/bigquery.jobUser on project acme-data until 2031-03-31T00:00:00Z; deleted before it is created again: "
        "access is missing in between"
    )


# ---------------------------------------------------------------------------------------------- drift, exit status, output


def test_drift_of_attributes_the_stack_does_not_set_is_not_reported():
    """Row counts, etags and the like move on their own; only configured attributes changed outside are drift."""
    before = values(CHANGELOG)
    counted = change(CHANGELOG, ["update"], before, {**before, "num_rows": 42, "etag": "new"})
    assert classify_drift(make_plan(no_op(CHANGELOG), drift=(counted,)), synthesized()) == []
    described = change(CHANGELOG, ["update"], before, {**before, "num_rows": 42, "description": "edited by hand"})
    [found] = classify_drift(make_plan(no_op(CHANGELOG), drift=(described,)), synthesized())
    assert "description" in found.reason and "num_rows" not in found.reason


def test_drift_is_reported_separately_and_does_not_change_the_exit_status():
    drifted = update(TOPIC_ORDERS, config={"cleanup.policy": "delete", "min.insync.replicas": "2", "retention.ms": "86400000"})
    plan_json = make_plan(no_op(TOPIC_ORDERS), drift=(drifted,))
    assert exit_status(classify(plan_json, synthesized())) == plan.NO_CHANGES
    (found,) = classify_drift(plan_json, synthesized())
    assert (found.cls, found.path, found.reason) == (
        "drift",
        "payments/payments-db/topic-orders/topic",
        "changed outside Terraform: config retention.ms 604800000 -> 86400000",
    )


def test_exit_status_follows_detailed_exitcode_with_3_for_risky_changes():
    risky = classify(make_plan(update(TOPIC_ORDERS, partitions=6), update(TOPIC_DLQ, partitions=3)), synthesized())
    harmless = classify(make_plan(update(TOPIC_DLQ, partitions=3), no_op(SOURCE)), synthesized())
    assert exit_status(classify(make_plan(no_op(SOURCE)), synthesized())) == plan.NO_CHANGES == 0
    assert exit_status(harmless) == plan.CHANGES == 2
    assert exit_status(risky) == plan.RISKY_CHANGES == 3
    assert exit_status(risky, "re-keying") == exit_status(risky, ["data-loss, re-keying"]) == 2
    assert parse_allow("topic-recreation,re-snapshot") == {"data-loss", "re-snapshot"}
    with pytest.raises(plan.PlanError, match="unknown everything"):
        parse_allow("everything")


def test_output_changes_count_as_changes():
    plan_json = make_plan(no_op(SOURCE))
    manifest = GOLDEN["output"]["datapipe_manifest"]["value"]
    plan_json["output_changes"] = {  # as OpenTofu 1.12 writes it: the change itself, no "change" wrapper
        "datapipe_manifest": {"actions": ["update"], "before": manifest, "after": {**manifest, "target": "local"}}
    }
    (output,) = [c for c in classify(plan_json, synthesized()) if c.is_change]
    assert (output.address, output.cls) == ("output.datapipe_manifest", "in-place")
    assert exit_status([output]) == plan.CHANGES


@pytest.mark.parametrize(
    "document, message",
    [
        ({"format_version": "1.0", "values": {}}, "this is a state, not a plan"),
        ({"format_version": "2.0", "resource_changes": []}, "format_version 2.0 is not supported"),
        ({**make_plan(), "errored": True}, "the plan errored"),
        ({"resource_changes": []}, "no format_version"),
    ],
)
def test_unusable_input_is_a_plan_error(document, message):
    with pytest.raises(plan.PlanError, match=message):
        classify(document, None)


# ---------------------------------------------------------------------------------------------- rendering


def test_render_table_and_json_report():
    before = values(TOPIC_ORDERS, partitions=6)
    plan_json = make_plan(
        change(TOPIC_ORDERS, ["delete", "create"], before, {**before, "partitions": 3}, replace_paths=[["partitions"]]),
        change(FRAUD_READ, ["create"], None, values(FRAUD_READ)),
        no_op(SOURCE),
        drift=(update(TOPIC_DLQ, partitions=2),),
    )
    changes, drift = classify(plan_json, synthesized()), classify_drift(plan_json, synthesized())
    width = len(PATHS[FRAUD_READ])  # the PATH column is as wide as its longest entry
    assert render_table(changes, drift) == "\n".join(
        [
            f"  CLASS           ACTION       {'PATH':<{width}}  REASON",
            f"! data-loss       -/+ replace  {'payments/payments-db/topic-orders/topic':<{width}}  partitions 6 -> 3 forces "
            "replacement: topic payments.payments.orders (payments.orders) and its data are deleted",
            f"  access-widened  + create     {PATHS[FRAUD_READ]}  "
            "User:fraud-detector gains Read on Topic payments.payments.orders",
            "",
            "2 change(s): 1 data-loss, 1 access-widened; 1 unchanged.",
            "Risky, not allowed (!): data-loss. Review them; accept with --allow data-loss.",
            "",
            "Changed outside Terraform (drift, does not change the exit status):",
            "  CLASS  ACTION    PATH                                     REASON",
            "  drift  ~ update  payments/payments-raw/dead-letter/topic  changed outside Terraform: partitions 1 -> 2",
            "",
        ]
    )
    assert "!" not in render_table(changes, allow="data-loss")
    report = json.loads(json.dumps(plan.report(changes, drift, allow=None)))
    assert report["exit_status"] == 3
    assert report["blocking"] == [f"kafka_topic.{TOPIC_ORDERS}"]
    assert report["changes"][0] == {
        "address": f"kafka_topic.{TOPIC_ORDERS}",
        "type": "kafka_topic",
        "path": "payments/payments-db/topic-orders/topic",
        "actions": ["delete", "create"],
        "class": "data-loss",
        "also": [],
        "risky": ["data-loss"],
        "reason": "partitions 6 -> 3 forces replacement: topic payments.payments.orders (payments.orders) "
        "and its data are deleted",
    }
    assert [d["class"] for d in report["drift"]] == ["drift"]
    assert render_table(classify(make_plan(no_op(SOURCE)), None)) == "No changes (1 unchanged).\n"


def test_importable_without_cdktf():
    heavy = "('cdktf', 'jsii', 'constructs', 'jinja2')"
    code = f"import sys, datapipe_cdk.plan; print(sorted(m for m in sys.modules if m.split('.')[0] in {heavy}))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert result.stdout.strip() == "[]"


def test_a_replaced_changelog_names_the_source_table_deploy_reads_again():
    """`deploy --allow data-loss` replacing a changelog table then snapshots that table alone (see cli._deploy)."""
    from datapipe_cdk.cli import rewritten_tables
    from datapipe_cdk.manifest import Manifest

    manifest = Manifest.from_dict(GOLDEN["output"]["datapipe_manifest"]["value"])
    before = values(CHANGELOG)
    replaced = change(CHANGELOG, ["delete", "create"], before, before)
    assert rewritten_tables(make_plan(replaced), manifest) == {"payments-db": ["orders"]}
    assert rewritten_tables(make_plan(update(CHANGELOG, description="edited")), manifest) == {}
