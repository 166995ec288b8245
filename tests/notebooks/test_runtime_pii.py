"""The PII detectors find what a clean dataset must not hold, and stay quiet on what pipelines write."""

from __future__ import annotations

import pytest

from datapipe_cdk.runtime import pii


@pytest.mark.parametrize(
    ("text", "info_type"),
    [
        ("contact: jane.doe+billing@example.co.uk", pii.EMAIL),
        ("card 4111 1111 1111 1111 on file", pii.CARD),
        ("amex 3782-822463-10005", pii.CARD),
        ("mc 5555555555554444", pii.CARD),
        ("ssn 123-45-6789", pii.US_SSN),
        ("call (415) 555-0123", pii.PHONE),
        ("call 415-555-0123", pii.PHONE),
        ("ring +44 20 7946 0958", pii.PHONE),
        ("e164 +14155550123", pii.PHONE),
        ("nino AB 12 34 56 C", pii.UK_NINO),
    ],
)
def test_detects_each_info_type(text: str, info_type: str) -> None:
    assert info_type in {f.info_type for f in pii.scan_text(text)}


@pytest.mark.parametrize(
    "text",
    [
        "4111 1111 1111 1112",  # Luhn fails
        "1234567890123456",  # no known issuer prefix
        "0000 0000 0000 0000",
        "666-45-6789",  # SSA never issues area 666
        "900-12-3456",  # nor 9xx
        "123-00-6789",
        "2026-11-24 12:07:05.123456",  # timestamps
        "1732449000123",  # epoch millis as text
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",  # a SHA-256 hash (hashed column)
        "*****",  # a masked column
        "lp1a2b3c4d",  # a probe row's tag
        "10.0.0.1",
        "order 12345 for 99.50 EUR",
        "user@localhost",  # no top-level domain
        "GB 12 34 56 A",  # invalid NINO prefix
    ],
)
def test_ignores_lookalikes(text: str) -> None:
    assert pii.scan_text(text) == []


def test_luhn_check() -> None:
    assert pii.luhn_valid("79927398713")
    assert not pii.luhn_valid("79927398710")
    assert not pii.luhn_valid("12a4")


def test_findings_are_redacted() -> None:
    findings = pii.scan_text("4111-1111-1111-1111 and 123-45-6789 and bob@example.com")
    redacted = " ".join(f.redacted for f in findings)
    assert "4111-1111" not in redacted and "123-45" not in redacted and "bob@" not in redacted
    assert "1111" in redacted and "6789" in redacted


def test_scan_value_walks_records_but_not_numbers() -> None:
    assert pii.scan_value({"kafka": {"topic": "t"}, "notes": ["mail a@b.io"]})[0].info_type == pii.EMAIL
    assert pii.scan_value(4111111111111111) == []
    assert pii.scan_value(None) == []


def test_scan_rows_counts_cells_per_column_and_type() -> None:
    rows = [
        {"id": 1, "email": "a@example.com", "note": "x"},
        {"id": 2, "email": "b@example.com", "note": "call 415-555-0123 or mail c@example.com"},
        {"id": 3, "email": "*****", "note": None},
    ]
    found = {(f.column, f.info_type): f.cells for f in pii.scan_rows(rows)}
    assert found == {("email", pii.EMAIL): 2, ("note", pii.EMAIL): 1, ("note", pii.PHONE): 1}
