"""The library's one error type: every bad input a user can give ends here."""

from __future__ import annotations

import unicodedata


class DatapipeError(ValueError):
    """Bad input to a datapipe-cdk construct.

    The message always names where (the construct path), what (the bad value) and the rule,
    e.g. ``payments/orders-topic: partitions must be >= 1, got 0``.
    """

    def __init__(self, path: str, rule: str, value: object) -> None:
        self.path = path
        self.rule = rule
        self.value = value
        super().__init__(f"{path}: {rule}, got {value!r}")


def _unprintable(c: str) -> bool:
    return c not in "\n\t" and unicodedata.category(c) in ("Cc", "Cf")


def has_unprintable(text: str) -> bool:
    """True when ``text`` holds a control or format character other than newline and tab (terminal escape
    sequences, bidi overrides, zero-width characters)."""
    return any(_unprintable(c) for c in text)


def printable(text: str) -> str:
    """``text`` safe for a terminal: those characters shown escaped (``\\x1b``, ``\\u202e``), never sent."""
    return "".join(c.encode("unicode_escape").decode() if _unprintable(c) else c for c in text)
