"""PII detectors: pure functions over strings, used to scan samples of datasets declared clean.

Each detector favours precision over recall: a clean dataset that fails the scan must really hold
PII, so numbers must be formatted like the thing they are (a phone number needs separators or a
``+``; an SSN its dashes) and card numbers must pass the Luhn check. Info type names follow
Cloud DLP's built-in detectors so a finding here names the same thing a DLP job would.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

EMAIL = "EMAIL_ADDRESS"
PHONE = "PHONE_NUMBER"
CARD = "CREDIT_CARD_NUMBER"
US_SSN = "US_SOCIAL_SECURITY_NUMBER"
UK_NINO = "UK_NATIONAL_INSURANCE_NUMBER"


@dataclass(frozen=True)
class Finding:
    """One match: the info type and a redacted form of the text (the value itself is never kept)."""

    info_type: str
    redacted: str


_EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}"
    r"[A-Za-z]{2,24}(?![\w-])"
)
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d[\d .-]{5,16}\d"
    r"|\(\d{3}\)[ .-]?\d{3}[ .-]\d{4}|\d{3}[ .-]\d{3}[ .-]\d{4})(?![\w])"
)
_CARD = re.compile(r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])")
_SSN = re.compile(r"(?<![\w-])(\d{3})([- ])(\d{2})\2(\d{4})(?![\w-])")
_NINO = re.compile(r"(?<![A-Za-z0-9])([A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]) ?\d{2} ?\d{2} ?\d{2} ?[A-D](?![A-Za-z0-9])")
_NINO_BAD_PREFIXES = frozenset({"BG", "GB", "NK", "KN", "TN", "NT", "ZZ"})


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def luhn_valid(number: str) -> bool:
    """True when ``number`` (digits only) passes the Luhn mod-10 check used by payment cards."""
    if not number.isdigit() or len(number) < 2:
        return False
    total = 0
    for index, char in enumerate(reversed(number)):
        digit = int(char)
        if index % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def _card_prefix_known(number: str) -> bool:
    """Issuer ranges of the major networks (Visa, Mastercard, Amex, Discover, JCB, Diners, UnionPay)."""
    if number[0] in "3456":
        return True
    return 2221 <= int(number[:4]) <= 2720  # Mastercard's 2-series


def redact(text: str, keep: int = 4) -> str:
    """Everything but the last ``keep`` alphanumerics replaced by ``*`` (``****-****-1111``)."""
    tail = 0
    out = []
    for char in reversed(text):
        if char.isalnum():
            out.append(char if tail < keep else "*")
            tail += 1
        else:
            out.append(char)
    return "".join(reversed(out))


def find_emails(text: str) -> list[Finding]:
    found = []
    for match in _EMAIL.finditer(text):
        local, domain = match.group().split("@", 1)
        found.append(Finding(EMAIL, f"{local[0]}***@{domain}"))
    return found


def find_phone_numbers(text: str) -> list[Finding]:
    found = []
    for match in _PHONE.finditer(text):
        raw = match.group()
        count = len(_digits(raw))
        if (raw.startswith("+") and 8 <= count <= 15) or (not raw.startswith("+") and count == 10):
            found.append(Finding(PHONE, redact(raw)))
    return found


def find_card_numbers(text: str) -> list[Finding]:
    found = []
    for match in _CARD.finditer(text):
        number = _digits(match.group())
        if 13 <= len(number) <= 19 and _card_prefix_known(number) and luhn_valid(number):
            if len(set(number)) > 1:
                found.append(Finding(CARD, redact(match.group())))
    return found


def find_us_ssns(text: str) -> list[Finding]:
    """US SSNs written ``AAA-GG-SSSS`` (or with spaces); numbers the SSA never issues are ignored."""
    found = []
    for match in _SSN.finditer(text):
        area, group, serial = match.group(1), match.group(3), match.group(4)
        if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
            continue
        found.append(Finding(US_SSN, redact(match.group())))
    return found


def find_uk_ninos(text: str) -> list[Finding]:
    """UK National Insurance numbers (``QQ 12 34 56 C``), upper case, with HMRC's invalid prefixes excluded."""
    return [
        Finding(UK_NINO, redact(match.group(), keep=1))
        for match in _NINO.finditer(text)
        if match.group(1) not in _NINO_BAD_PREFIXES
    ]


DETECTORS: tuple[Callable[[str], list[Finding]], ...] = (
    find_emails,
    find_card_numbers,
    find_us_ssns,
    find_phone_numbers,
    find_uk_ninos,
)


def scan_text(text: str) -> list[Finding]:
    """Every finding of every detector in ``text``."""
    return [finding for detector in DETECTORS for finding in detector(text)]


def scan_value(value: object) -> list[Finding]:
    """Findings in a cell: strings are scanned, dicts and lists (BigQuery RECORD/REPEATED) recursively.

    Numbers are not scanned: an INT64 column of millisecond timestamps would pass the Luhn check one
    time in ten and flood a clean dataset with false findings.
    """
    if isinstance(value, str):
        return scan_text(value)
    if isinstance(value, Mapping):
        return [f for item in value.values() for f in scan_value(item)]
    if isinstance(value, list | tuple):
        return [f for item in value for f in scan_value(item)]
    return []


@dataclass(frozen=True)
class ColumnFindings:
    """Findings of one info type in one column of a sample: how many cells, and one redacted example."""

    column: str
    info_type: str
    cells: int
    example: str


def scan_rows(rows: Iterable[Mapping[str, object]]) -> list[ColumnFindings]:
    """Scan sampled rows; one entry per (column, info type) with the number of cells that matched."""
    cells: Counter[tuple[str, str]] = Counter()
    examples: dict[tuple[str, str], str] = {}
    for row in rows:
        for column, value in row.items():
            for info_type in {f.info_type: f for f in scan_value(value)}.items():
                key = (column, info_type[0])
                cells[key] += 1
                examples.setdefault(key, info_type[1].redacted)
    return [
        ColumnFindings(column, info_type, count, examples[(column, info_type)])
        for (column, info_type), count in sorted(cells.items())
    ]
