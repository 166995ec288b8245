"""How classification travels: source column -> topic -> changelog table -> latest-state view -> team views.

Everything here is derived from the construct tree; nothing is declared twice. A column keeps its
source classification and info type wherever it goes, plus the treatment the source connector
applied (masked or hashed columns still arrive, transformed; excluded ones never leave the source).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .._core import path_of
from ..schema import CapturedTable, Classification, ColumnType, InfoType, Treatment
from ..sink import ChangelogTable
from ..warehouse import MicroWarehouse, View

LEVELS: tuple[Classification, ...] = (
    Classification.PUBLIC,
    Classification.INTERNAL,
    Classification.CONFIDENTIAL,
    Classification.PII,
)
"""Classifications from least to most sensitive."""

SCANNED_INFO_TYPES: tuple[str, ...] = tuple(t.value for t in InfoType)
"""The info types DLP inspect templates (and the notebooks' local PII scan) look for."""


@dataclass(frozen=True)
class ClassifiedColumn:
    """One column as it arrives somewhere, with the classification it carries from its source."""

    name: str
    type: ColumnType
    classification: Classification | None
    info_type: InfoType | None
    treatment: Treatment | None
    source_path: str
    """Construct path of the source that captures the column (where a treatment is configured)."""
    source_table: str

    @property
    def is_pii(self) -> bool:
        return self.classification is Classification.PII

    @property
    def exposes_pii(self) -> bool:
        """PII that can be read where it arrives: as written, or hashed.

        Hashed PII counts: Debezium takes the salt from a config *key*, which Terraform's plan and state
        and Kafka Connect's REST API all show, so anyone who can read those can test guesses (e-mail
        addresses and phone numbers are few enough to try them all). Only masking (or exclusion) hides it.
        """
        return self.is_pii and self.treatment is not Treatment.MASKED

    @property
    def qualified(self) -> str:
        return f"{self.source_table}.{self.name}"

    @property
    def label(self) -> str:
        """``PII/EMAIL_ADDRESS (masked)``, ``INTERNAL`` or ``unclassified``."""
        text = self.classification.value if self.classification else "unclassified"
        if self.info_type is not None:
            text += f"/{self.info_type.value}"
        if self.treatment is not None:
            text += f" ({self.treatment.value})"
        return text

    def as_dict(self, *, qualified: bool = False) -> dict[str, Any]:
        """JSON-ready: name (``table.column`` if ``qualified``), type, classification, info type, treatment."""
        return {
            "name": self.qualified if qualified else self.name,
            "type": self.type.value,
            "classification": self.classification.value if self.classification else None,
            "info_type": self.info_type.value if self.info_type else None,
            "treatment": self.treatment.value if self.treatment else None,
        }


def source_columns(captured: CapturedTable, source_path: str) -> list[ClassifiedColumn]:
    """Every declared column of a captured table, as the database holds it (before any treatment)."""
    return [
        ClassifiedColumn(c.name, c.type, c.classification, c.info_type, None, source_path, captured.name)
        for c in captured.table.columns
    ]


def captured_columns(captured: CapturedTable, source_path: str) -> list[ClassifiedColumn]:
    """The columns of a captured table that reach Kafka (excluded ones are gone)."""
    return [
        ClassifiedColumn(
            c.name, c.type, c.classification, c.info_type, captured.treatments.get(c.name), source_path, captured.name
        )
        for c in captured.columns_reaching_kafka()
    ]


def changelog_columns(table: ChangelogTable) -> list[ClassifiedColumn]:
    return captured_columns(table.captured, path_of(table.sink.source))


def view_columns(warehouse: MicroWarehouse, view: View) -> list[ClassifiedColumn]:
    """A latest-state view carries its chosen columns; a custom view, everything its inputs carry.

    Custom SQL is not parsed, so its classification is the union of the views it reads (an upper bound).
    """
    if view.source is not None:
        columns = changelog_columns(view.source)
        return [c for c in columns if c.name in view.columns] if view.columns else columns
    seen: dict[tuple[str, str, str], ClassifiedColumn] = {}
    for name in view.depends_on:
        for column in view_columns(warehouse, warehouse.views[name]):
            seen.setdefault((column.source_path, column.source_table, column.name), column)
    return list(seen.values())


def highest(columns: Iterable[ClassifiedColumn]) -> Classification | None:
    """The most sensitive classification among ``columns`` (None when none is classified)."""
    found = [c.classification for c in columns if c.classification is not None]
    return max(found, key=LEVELS.index) if found else None


def info_types(columns: Sequence[ClassifiedColumn]) -> list[str]:
    return sorted({c.info_type.value for c in columns if c.info_type is not None})
