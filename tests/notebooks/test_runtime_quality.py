"""Quality checks: a failing query fails its check only, and key examples never show PII."""

from __future__ import annotations

from google.api_core.exceptions import BadRequest

from datapipe_cdk.runtime.manifest import ColumnPolicy, SourceTable
from datapipe_cdk.runtime.quality import FAIL, QualityReport, _guarded, _redacted


def test_a_failing_query_fails_its_check_with_the_error() -> None:
    def broken() -> None:
        raise BadRequest('Table "refunds" must be qualified with a dataset')

    report = QualityReport()
    _guarded(report, "pii_in_clean_dataset", "finance.daily_revenue", broken)
    [result] = report.checks
    assert result.status == FAIL and "must be qualified" in result.detail and not report.passed


def test_key_examples_are_shown_for_plain_keys_and_redacted_for_pii_key_parts() -> None:
    table = SourceTable(
        "orders",
        ("email", "id"),
        "payments.payments.orders",
        (ColumnPolicy("id", classification="INTERNAL"), ColumnPolicy("email", classification="PII", info_type="EMAIL_ADDRESS")),
    )
    shown = _redacted(table, ("email", "id"), [("jane.doe@example.com", 17)])
    assert shown == [("****.***@******e.com", 17)]
    assert _redacted(table, ("id",), [(3,), (25,)]) == [(3,), (25,)]
