"""L1: Google Sensitive Data Protection (DLP) resources of the hashicorp/google provider."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from constructs import Construct

from .._cdk import ITerraformDependable
from ._base import Resource


class DataLossPreventionInspectTemplate(Resource):
    """What to look for: ``inspect_config`` holds the info types and the likelihood threshold."""

    TYPE = "google_data_loss_prevention_inspect_template"
    PROVIDER = "google"

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        parent: str,
        template_id: str | None = None,
        display_name: str | None = None,
        description: str | None = None,
        inspect_config: Mapping[str, Any] | None = None,
        depends_on: Sequence[ITerraformDependable] | None = None,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            {
                "parent": parent,
                "template_id": template_id,
                "display_name": display_name,
                "description": description,
                "inspect_config": [dict(inspect_config)] if inspect_config else None,
            },
            depends_on=depends_on,
        )


class DataLossPreventionJobTrigger(Resource):
    """When and where to look: ``triggers`` (a schedule) and ``inspect_job`` (storage + actions)."""

    TYPE = "google_data_loss_prevention_job_trigger"
    PROVIDER = "google"

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        parent: str,
        triggers: Sequence[Mapping[str, Any]],
        trigger_id: str | None = None,
        display_name: str | None = None,
        description: str | None = None,
        status: str | None = None,
        inspect_job: Mapping[str, Any] | None = None,
        depends_on: Sequence[ITerraformDependable] | None = None,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            {
                "parent": parent,
                "trigger_id": trigger_id,
                "display_name": display_name,
                "description": description,
                "status": status,
                "triggers": [dict(t) for t in triggers],
                "inspect_job": [dict(inspect_job)] if inspect_job else None,
            },
            depends_on=depends_on,
        )
