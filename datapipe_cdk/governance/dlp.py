"""DLP: scheduled Sensitive Data Protection scans of the tables of datasets declared clean.

A dataset declared clean (``holds_pii=False``) should hold no PII; classification says so, DLP
checks it. One inspect template lists the info types of the classification vocabulary; one job
trigger per changelog table samples it on a schedule and saves findings to a findings table.
Only real Google Cloud serves DLP: with ``gcp.manage_iam=False`` (an emulator) nothing is emitted.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import timedelta

from constructs import Construct

from .. import _validate as check
from .._core import PipelineConstruct, path_of, pipeline_of
from ..dataset import Dataset
from ..errors import DatapipeError
from ..principal import Principal
from ..providers.dlp import DataLossPreventionInspectTemplate, DataLossPreventionJobTrigger
from ..sink import ChangelogTable
from . import inventory
from .classification import SCANNED_INFO_TYPES

LIKELIHOODS = ("VERY_UNLIKELY", "UNLIKELY", "POSSIBLE", "LIKELY", "VERY_LIKELY")
FINDINGS_TABLE = "findings"


class DlpInspection(PipelineConstruct):
    """Scan every changelog table of the stack's clean datasets (or ``tables``) every ``every``.

    ``findings_dataset`` is created here, owned by ``owners``, keeping findings ``findings_retention``.
    """

    def __init__(
        self,
        scope: Construct,
        inspection_id: str,
        *,
        owners: Sequence[Principal],
        tables: Sequence[ChangelogTable] | None = None,
        every: timedelta = timedelta(days=1),
        rows_limit: int = 10_000,
        min_likelihood: str = "POSSIBLE",
        findings_dataset: str = "dlp_findings",
        findings_retention: timedelta = timedelta(days=90),
    ) -> None:
        path = check.child_path(scope, inspection_id, "DlpInspection")
        stack = pipeline_of(scope, path)
        check.duration(path, "every", every, minimum=timedelta(days=1) - timedelta(microseconds=1))
        if every > timedelta(days=60):
            raise DatapipeError(path, "every must be at most 60 days (a DLP schedule limit)", every)
        check.integer(path, "rows_limit", rows_limit, minimum=1)
        if min_likelihood not in LIKELIHOODS:
            raise DatapipeError(path, f"min_likelihood must be one of {LIKELIHOODS}", min_likelihood)
        if not check.sequence(path, "owners", owners):
            raise DatapipeError(path, "DLP findings need at least one owner", owners)
        chosen = self._chosen(path, stack, tables)
        if stack.gcp.manage_iam:  # the findings dataset (created below), checked before anything joins the tree
            Dataset.check_arguments(path, stack, findings_dataset, None, None, False, findings_retention, owners, ())
        super().__init__(scope, inspection_id, pipeline=stack, path=path)
        self.tables = chosen
        self.enabled = stack.gcp.manage_iam
        self.template: DataLossPreventionInspectTemplate | None = None
        self.triggers: list[DataLossPreventionJobTrigger] = []
        self.findings: Dataset | None = None
        if not self.enabled:
            return
        project = stack.gcp.project
        parent = f"projects/{project}"
        self.findings = Dataset(
            self,
            "findings",
            dataset_id=findings_dataset,
            description=f"DLP findings of {path}",
            labels=None,
            holds_pii=False,
            retention=findings_retention,
            owners=owners,
            readers=(),
        )
        self.template = DataLossPreventionInspectTemplate(
            self,
            "template",
            parent=parent,
            template_id=_resource_id(f"{stack.node.id}-{inspection_id}"),
            display_name=f"datapipe-cdk {path}",
            description="Info types of the datapipe-cdk classification vocabulary",
            inspect_config={
                "info_types": [{"name": name} for name in SCANNED_INFO_TYPES],
                "min_likelihood": min_likelihood,
                "include_quote": False,
            },
        )
        for table in chosen:
            self.triggers.append(self._trigger(table, parent, project, every, rows_limit))

    @staticmethod
    def _chosen(path: str, stack: Construct, tables: Sequence[ChangelogTable] | None) -> list[ChangelogTable]:
        if tables is None:
            return [t for sink in inventory.sinks(stack) if not sink.dataset.holds_pii for t in sink.tables]
        chosen = [check.instance(path, "tables entry", t, ChangelogTable) for t in check.sequence(path, "tables", tables)]
        held = [t.table_id for t in chosen if t.dataset.holds_pii]
        if held:
            raise DatapipeError(path, "DLP scans datasets declared clean; these tables are in a holds_pii dataset", held)
        return chosen

    def _trigger(
        self, table: ChangelogTable, parent: str, project: str, every: timedelta, rows_limit: int
    ) -> DataLossPreventionJobTrigger:
        assert self.template is not None and self.findings is not None
        dataset = table.dataset.dataset_id
        return DataLossPreventionJobTrigger(
            self,
            f"scan-{dataset}-{table.table_id}",
            parent=parent,
            trigger_id=_resource_id(f"{dataset}-{table.table_id}"),
            display_name=f"Scan {dataset}.{table.table_id}",
            description=f"Looks for PII in {dataset}.{table.table_id}, declared clean by {path_of(table.sink)}",
            status="HEALTHY",
            triggers=[{"schedule": [{"recurrence_period_duration": f"{int(every.total_seconds())}s"}]}],
            inspect_job={
                "inspect_template_name": self.template.get_string_attribute("id"),
                "storage_config": [
                    {
                        "big_query_options": [
                            {
                                "table_reference": [
                                    {
                                        "project_id": project,
                                        "dataset_id": table.dataset.dataset_id_ref,
                                        "table_id": table.resource.get_string_attribute("table_id"),
                                    }
                                ],
                                "rows_limit": rows_limit,
                                "sample_method": "RANDOM_START",
                            }
                        ],
                    }
                ],
                "actions": [
                    {
                        "save_findings": [
                            {
                                "output_config": [
                                    {
                                        "table": [
                                            {
                                                "project_id": project,
                                                "dataset_id": self.findings.dataset_id_ref,
                                                "table_id": FINDINGS_TABLE,
                                            }
                                        ],
                                    }
                                ],
                            }
                        ],
                    }
                ],
            },
        )


def _resource_id(text: str) -> str:
    """A DLP template/trigger id: letters, digits, '-', '_', at most 100 characters."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", text)[:100]
