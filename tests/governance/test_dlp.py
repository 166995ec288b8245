"""DLP scans for datasets declared clean: real Google Cloud only, info types from the classification vocabulary."""

from __future__ import annotations

from datetime import timedelta

import pytest

from datapipe_cdk import DatapipeError, InfoType
from datapipe_cdk.governance import SCANNED_INFO_TYPES, DlpInspection
from tests.governance.helpers import OWNER, make_sink, make_source, make_stack, synth


def _resources(doc, kind):
    return list(doc["resource"].get(kind, {}).values())


def test_clean_datasets_get_an_inspect_template_and_one_scheduled_trigger_per_table():
    stack = make_stack()
    make_sink(stack, make_source(stack, masked={"accounts": ["email", "phone"]}))
    DlpInspection(stack, "dlp", owners=[OWNER], every=timedelta(days=7), rows_limit=500)
    doc = synth(stack)
    [template] = _resources(doc, "google_data_loss_prevention_inspect_template")
    assert template["parent"] == "projects/acme-data"
    assert [t["name"] for t in template["inspect_config"][0]["info_types"]] == [t.value for t in InfoType]
    assert list(SCANNED_INFO_TYPES) == [t.value for t in InfoType]
    assert template["inspect_config"][0]["include_quote"] is False
    triggers = _resources(doc, "google_data_loss_prevention_job_trigger")
    assert sorted(t["trigger_id"] for t in triggers) == [
        "payments_raw-payments_payments_accounts",
        "payments_raw-payments_payments_orders",
    ]
    trigger = triggers[0]
    assert trigger["triggers"] == [{"schedule": [{"recurrence_period_duration": "604800s"}]}]
    job = trigger["inspect_job"][0]
    assert job["inspect_template_name"].startswith("${google_data_loss_prevention_inspect_template.")
    options = job["storage_config"][0]["big_query_options"][0]
    assert options["rows_limit"] == 500 and options["table_reference"][0]["project_id"] == "acme-data"
    output = job["actions"][0]["save_findings"][0]["output_config"][0]["table"][0]
    assert output["table_id"] == "findings" and output["dataset_id"].startswith("${google_bigquery_dataset.")
    findings = [d for d in _resources(doc, "google_bigquery_dataset") if d["dataset_id"] == "dlp_findings"]
    assert findings[0]["default_partition_expiration_ms"] == 90 * 86_400_000


def test_no_dlp_without_real_google_cloud_or_for_pii_datasets():
    local = make_stack(manage_iam=False)
    make_sink(local, make_source(local, masked={"accounts": ["email", "phone"]}))
    assert DlpInspection(local, "dlp", owners=[OWNER]).enabled is False
    assert "google_data_loss_prevention_job_trigger" not in synth(local)["resource"]
    held = make_stack()
    sink = make_sink(held, make_source(held), holds_pii=True, retention=timedelta(days=30))
    assert DlpInspection(held, "dlp", owners=[OWNER]).tables == []
    with pytest.raises(DatapipeError, match="declared clean"):
        DlpInspection(held, "dlp2", owners=[OWNER], tables=[sink.table("accounts")])
    with pytest.raises(DatapipeError, match="at most 60 days"):
        DlpInspection(held, "dlp3", owners=[OWNER], every=timedelta(days=90))


@pytest.mark.parametrize(
    "findings_dataset, rule",
    [("dlp-findings", "must be a BigQuery dataset id"), ("payments_raw", "dataset is already used in this stack")],
)
def test_a_bad_findings_dataset_is_refused_before_anything_is_added(findings_dataset, rule):
    stack = make_stack()
    make_sink(stack, make_source(stack, masked={"accounts": ["email", "phone"]}))
    children, registered = len(stack.node.children), len(stack.registry.constructs)
    with pytest.raises(DatapipeError, match=rule):
        DlpInspection(stack, "dlp", owners=[OWNER], findings_dataset=findings_dataset)
    assert stack.node.try_find_child("dlp") is None, "nothing half-done is left behind"
    assert (len(stack.node.children), len(stack.registry.constructs)) == (children, registered)
    assert DlpInspection(stack, "dlp", owners=[OWNER]).findings is not None  # the id is still free
