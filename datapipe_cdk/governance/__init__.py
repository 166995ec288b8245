"""Governance (Stage 4): classification, policies checked at synth, opt-outs with reasons, DLP scans.

Standard library plus the construct library only: ``DataPipelineStack`` attaches it on creation.
"""

from .classification import SCANNED_INFO_TYPES, ClassifiedColumn, changelog_columns, highest, view_columns
from .dlp import DlpInspection
from .policy import (
    ColumnsDeclared,
    NoPublicPrincipals,
    OwnerRequired,
    PiiDatasetRetention,
    PiiOnlyInPiiDatasets,
    PiiReaders,
    PiiTopicRetention,
    Policy,
    Violation,
    default_policies,
)
from .state import Governance, OptOut, opt_out

__all__ = [
    "SCANNED_INFO_TYPES",
    "ClassifiedColumn",
    "ColumnsDeclared",
    "DlpInspection",
    "Governance",
    "NoPublicPrincipals",
    "OptOut",
    "OwnerRequired",
    "PiiDatasetRetention",
    "PiiOnlyInPiiDatasets",
    "PiiReaders",
    "PiiTopicRetention",
    "Policy",
    "Violation",
    "changelog_columns",
    "default_policies",
    "highest",
    "opt_out",
    "view_columns",
]
