"""A BigQuery dataset with its access entries: the piece sinks and warehouses share."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from constructs import Construct

from . import _validate as check
from ._core import PipelineConstruct, pipeline_of
from .errors import DatapipeError
from .principal import Principal, PrincipalKind
from .providers.google import BigqueryDataset, BigqueryDatasetAccess
from .units import to_millis, to_rfc3339

_DATASET_ID = r"[A-Za-z0-9_]{1,1024}"
_LABEL_KEY = r"[a-z][a-z0-9_-]{0,62}"
_LABEL_VALUE = r"[a-z0-9_-]{0,63}"
ROLES = ("READER", "WRITER", "OWNER")
INITIAL_ACCESS = {"role": "OWNER", "special_group": "projectOwners"}
"""The one entry a dataset is created with, instead of BigQuery's defaults (project readers and writers, the creator)."""


class Dataset(PipelineConstruct):
    """A dataset whose access list is exactly what the stack declares.

    Created without an access list, BigQuery would add project readers, project writers and the
    creator to every dataset, readers no policy sees. So the dataset is created with one entry,
    project owners (who administer the project anyway; ``datapipe access`` shows them), and Terraform
    leaves that list alone afterwards (``ignore_changes = [access]``). Every declared grant, for
    people, service accounts and authorized views alike, is then a ``google_bigquery_dataset_access``
    entry: dataset IAM members and access blocks would overwrite each other (and drop authorized
    views). Every entry's construct id says what it grants (role, member, expiry), so adding or
    reordering grants never renames another.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        dataset_id: str,
        description: str | None,
        labels: Mapping[str, str] | None,
        holds_pii: bool,
        retention: timedelta | None,
        owners: Sequence[Principal],
        readers: Sequence[Principal],
        writers: Sequence[Principal] = (),
        deletion_protection: bool = True,
    ) -> None:
        stack = pipeline_of(scope)
        path = f"{check.path_of(scope)}/{construct_id}"
        stack.registry.claim("dataset", dataset_id, path)
        stack.claim_in_app(("dataset", stack.gcp.project, dataset_id), path, f"dataset {stack.gcp.project}.{dataset_id}")
        super().__init__(scope, construct_id, pipeline=stack, path=path)
        self.dataset_id = dataset_id
        self.description = description
        self.holds_pii = holds_pii
        self.retention = retention
        self.owners = tuple(owners)
        self.readers = tuple(readers)
        self.writers = tuple(writers)
        self.labels = dict(labels or {})
        self.partition_expiration_ms = to_millis(retention) if retention is not None else None
        self.resource = BigqueryDataset(
            self,
            "dataset",
            dataset_id=dataset_id,
            location=stack.gcp.location,
            description=description,
            labels={**self.labels, "managed-by": "datapipe-cdk", "holds-pii": "true" if holds_pii else "false"},
            default_partition_expiration_ms=self.partition_expiration_ms,
            delete_contents_on_destroy=not deletion_protection,
            access=[INITIAL_ACCESS],
            ignore_changes=["access"],
        )
        self.grants: dict[str, BigqueryDatasetAccess] = {}
        self.legacy_children = 1
        """How many children versions before 2026-12 had created here (their ids counted them)."""
        self._legacy_grants = 0
        for role, principals in (("OWNER", owners), ("WRITER", writers), ("READER", readers)):
            for principal in principals:
                self.grant_role(role, principal)

    @staticmethod
    def check_arguments(
        path: str,
        stack: Any,
        dataset_id: object,
        description: object,
        labels: object,
        holds_pii: object,
        retention: object,
        owners: object,
        readers: object,
        writers: object = (),
    ) -> None:
        """Validate everything a dataset needs before any construct is created."""
        check.text(
            path,
            "dataset",
            dataset_id,
            pattern=_DATASET_ID,
            rule="must be a BigQuery dataset id (letters, digits, '_', at most 1024)",
        )
        if dataset_id in stack.registry.datasets:
            raise DatapipeError(
                path, f"dataset is already used in this stack by {stack.registry.datasets[dataset_id]}", dataset_id
            )
        other = stack.app_claims.get(("dataset", stack.gcp.project, dataset_id))
        if other is not None:
            raise DatapipeError(
                path,
                f"dataset {stack.gcp.project}.{dataset_id} is already created by {other} (another stack of this app); "
                "choose another dataset id",
                dataset_id,
            )
        if description is not None:
            check.plain(path, "description", check.text(path, "description", description, max_length=16384))
        for key, value in check.string_map(path, "labels", labels or {}).items():
            check.text(
                path,
                "label key",
                key,
                pattern=_LABEL_KEY,
                rule="must be lowercase letters, digits, '_', '-' starting with a letter",
                max_length=63,
            )
            if not re.fullmatch(_LABEL_VALUE, value):
                raise DatapipeError(path, f"label {key!r} value must be lowercase letters, digits, '_', '-' (at most 63)", value)
        check.flag(path, "holds_pii", holds_pii)
        if retention is not None:
            check.duration(path, "retention", retention, minimum=timedelta(hours=1) - timedelta(microseconds=1))
        for name, principals in (("owners", owners), ("readers", readers), ("writers", writers)):
            for principal in check.sequence(path, name, principals):
                principal = check.instance(path, f"{name} entry", principal, Principal)
                if principal.is_kafka:
                    raise DatapipeError(path, f"{name} must be Google identities, not Kafka users", str(principal))
                if principal.is_public:
                    raise DatapipeError(
                        path, f"{name} must not be public ({principal}); use grant_query(..., allow_public=True)", str(principal)
                    )

    @cached_property
    def dataset_id_ref(self) -> str:
        """The id as a Terraform reference, so the dataset exists before its tables and grants."""
        return self.resource.get_string_attribute("dataset_id")

    def grant_role(
        self,
        role: str,
        principal: Principal,
        *,
        until: datetime | None = None,
        allow_public: bool = False,
    ) -> BigqueryDatasetAccess:
        """One access entry: ``role`` (READER/WRITER/OWNER, any case) for ``principal``, optionally until a time.

        The same role, member and expiry asked twice is one entry.
        """
        path = check.path_of(self)
        role = check_role(path, role)
        principal = check.instance(path, "principal", principal, Principal)
        if principal.is_kafka:
            raise DatapipeError(path, "dataset access needs a Google identity, not a Kafka user", str(principal))
        if principal.is_public and not check.flag(path, "allow_public", allow_public):
            raise DatapipeError(path, "public principals need allow_public=True", str(principal))
        condition = None
        if until is not None:
            check.future_moment(path, "until", until)
            condition = expiry_condition(until)
        self._legacy_grants += 1
        self.legacy_children += 1
        grant_id = f"grant-{role.lower()}-{principal.kind.value}-{principal.name or 'all'}" + (
            f"-until-{to_rfc3339(until).replace(':', '').replace('-', '')}" if until is not None else ""
        )
        existing = self.grants.get(grant_id)
        if existing is not None:
            return existing
        entry = BigqueryDatasetAccess(
            self,
            grant_id,
            dataset_id=self.dataset_id_ref,
            role=role,
            condition=condition,
            **_member_fields(principal),
        )
        table = self.pipeline.resource_table
        table.add_moved(table.previous_logical_id(self, f"access-{self._legacy_grants}"), entry)
        self.grants[grant_id] = entry
        return entry

    def grant_service_account(self, role: str, email: str, grant_id: str) -> BigqueryDatasetAccess:
        """Access for a service account known only as a Terraform reference (created in this stack)."""
        role = check_role(check.path_of(self), role)
        self.legacy_children += 1
        return BigqueryDatasetAccess(self, grant_id, dataset_id=self.dataset_id_ref, role=role, user_by_email=email)

    def authorize_view(self, view_id: str, project: str, dataset_ref: str, table_ref: str) -> BigqueryDatasetAccess:
        """Let a view in another dataset read this one (an authorized view)."""
        self.legacy_children += 1
        return BigqueryDatasetAccess(
            self,
            f"authorize-{view_id}",
            dataset_id=self.dataset_id_ref,
            view={"project_id": project, "dataset_id": dataset_ref, "table_id": table_ref},
        )


def check_role(path: str, role: object) -> str:
    """``READER``, ``WRITER`` or ``OWNER``; any case accepted, anything else refused."""
    if isinstance(role, str) and role.strip().upper() in ROLES:
        return role.strip().upper()
    raise DatapipeError(path, f"role must be one of {', '.join(ROLES)} (any case)", role)


def expiry_condition(until: datetime) -> dict[str, str]:
    """An IAM condition that ends access at ``until`` (``request.time < timestamp(...)``)."""
    stamp = to_rfc3339(until)
    return {
        "title": f"expires_{stamp[:10].replace('-', '_')}",
        "description": f"Temporary access, expires at {stamp}",
        "expression": f'request.time < timestamp("{stamp}")',
    }


def _member_fields(principal: Principal) -> dict[str, Any]:
    kind = principal.kind
    if kind in (PrincipalKind.USER, PrincipalKind.SERVICE_ACCOUNT):
        return {"user_by_email": principal.name}
    if kind is PrincipalKind.GROUP:
        return {"group_by_email": principal.name}
    if kind is PrincipalKind.DOMAIN:
        return {"domain": principal.name}
    if kind is PrincipalKind.ALL_AUTHENTICATED_USERS:
        return {"special_group": "allAuthenticatedUsers"}
    return {"iam_member": "allUsers"}
