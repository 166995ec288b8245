"""The library's one error type: every bad input a user can give ends here."""

from __future__ import annotations


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
