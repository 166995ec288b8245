"""L1: the hashicorp/google provider (BigQuery, IAM, service accounts)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from constructs import Construct

from .._cdk import ITerraformDependable
from ._base import Provider, Resource


class GoogleProvider(Provider):
    TYPE = "google"
    SOURCE = "hashicorp/google"
    VERSION = "8.0.0"

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        project: str,
        region: str | None = None,
        access_token: str | None = None,
        big_query_custom_endpoint: str | None = None,
        add_terraform_attribution_label: bool | None = None,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            {
                "project": project,
                "region": region,
                "access_token": access_token,
                "big_query_custom_endpoint": big_query_custom_endpoint,
                "add_terraform_attribution_label": add_terraform_attribution_label,
            },
        )


class BigqueryDataset(Resource):
    TYPE = "google_bigquery_dataset"
    PROVIDER = "google"

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        dataset_id: str,
        location: str,
        project: str | None = None,
        friendly_name: str | None = None,
        description: str | None = None,
        labels: Mapping[str, str] | None = None,
        default_table_expiration_ms: int | None = None,
        default_partition_expiration_ms: int | None = None,
        delete_contents_on_destroy: bool | None = None,
        access: Sequence[Mapping[str, Any]] | None = None,
        depends_on: Sequence[ITerraformDependable] | None = None,
        ignore_changes: Sequence[str] | None = None,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            {
                "dataset_id": dataset_id,
                "location": location,
                "access": [dict(entry) for entry in access] if access else None,
                "project": project,
                "friendly_name": friendly_name,
                "description": description,
                "labels": dict(labels) if labels else None,
                "default_table_expiration_ms": default_table_expiration_ms,
                "default_partition_expiration_ms": default_partition_expiration_ms,
                "delete_contents_on_destroy": delete_contents_on_destroy,
            },
            depends_on=depends_on,
            ignore_changes=ignore_changes,
        )


class BigqueryDatasetAccess(Resource):
    """One access entry; used for every dataset grant so grants never fight authorized views."""

    TYPE = "google_bigquery_dataset_access"
    PROVIDER = "google"

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        dataset_id: str,
        project: str | None = None,
        role: str | None = None,
        user_by_email: str | None = None,
        group_by_email: str | None = None,
        domain: str | None = None,
        special_group: str | None = None,
        iam_member: str | None = None,
        view: Mapping[str, str] | None = None,
        condition: Mapping[str, str] | None = None,
        depends_on: Sequence[ITerraformDependable] | None = None,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            {
                "dataset_id": dataset_id,
                "project": project,
                "role": role,
                "user_by_email": user_by_email,
                "group_by_email": group_by_email,
                "domain": domain,
                "special_group": special_group,
                "iam_member": iam_member,
                "view": [dict(view)] if view else None,
                "condition": [dict(condition)] if condition else None,
            },
            depends_on=depends_on,
        )


class BigqueryTable(Resource):
    TYPE = "google_bigquery_table"
    PROVIDER = "google"

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        dataset_id: str,
        table_id: str,
        project: str | None = None,
        description: str | None = None,
        labels: Mapping[str, str] | None = None,
        schema: str | None = None,
        time_partitioning: Mapping[str, Any] | None = None,
        clustering: Sequence[str] | None = None,
        view: Mapping[str, Any] | None = None,
        deletion_protection: bool | None = None,
        ignore_changes: Sequence[str] | None = None,
        depends_on: Sequence[ITerraformDependable] | None = None,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            {
                "dataset_id": dataset_id,
                "table_id": table_id,
                "project": project,
                "description": description,
                "labels": dict(labels) if labels else None,
                "schema": schema,
                "time_partitioning": [dict(time_partitioning)] if time_partitioning else None,
                "clustering": list(clustering) if clustering else None,
                "view": [dict(view)] if view else None,
                "deletion_protection": deletion_protection,
            },
            depends_on=depends_on,
            ignore_changes=ignore_changes,
        )


class ServiceAccount(Resource):
    TYPE = "google_service_account"
    PROVIDER = "google"

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        account_id: str,
        display_name: str | None = None,
        description: str | None = None,
        project: str | None = None,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            {"account_id": account_id, "display_name": display_name, "description": description, "project": project},
        )


class ServiceAccountKey(Resource):
    TYPE = "google_service_account_key"
    PROVIDER = "google"

    def __init__(self, scope: Construct, construct_id: str, *, service_account_id: str) -> None:
        super().__init__(scope, construct_id, {"service_account_id": service_account_id})


class ProjectIamMember(Resource):
    TYPE = "google_project_iam_member"
    PROVIDER = "google"

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        project: str,
        role: str,
        member: str,
        condition: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            {
                "project": project,
                "role": role,
                "member": member,
                "condition": [dict(condition)] if condition else None,
            },
        )


class BigqueryDataTransferConfig(Resource):
    """A BigQuery Data Transfer config; with ``data_source_id="scheduled_query"``, a scheduled query."""

    TYPE = "google_bigquery_data_transfer_config"
    PROVIDER = "google"

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        display_name: str,
        data_source_id: str,
        params: Mapping[str, str],
        location: str | None = None,
        schedule: str | None = None,
        service_account_name: str | None = None,
        project: str | None = None,
        depends_on: Sequence[ITerraformDependable] | None = None,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            {
                "display_name": display_name,
                "data_source_id": data_source_id,
                "params": dict(params),
                "location": location,
                "schedule": schedule,
                "service_account_name": service_account_name,
                "project": project,
            },
            depends_on=depends_on,
        )


class MonitoringAlertPolicy(Resource):
    """A Cloud Monitoring alert policy (here: on log entries matching a filter)."""

    TYPE = "google_monitoring_alert_policy"
    PROVIDER = "google"

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        display_name: str,
        combiner: str,
        conditions: Sequence[Mapping[str, Any]],
        notification_channels: Sequence[str] | None = None,
        alert_strategy: Mapping[str, Any] | None = None,
        documentation: Mapping[str, str] | None = None,
        severity: str | None = None,
        project: str | None = None,
        depends_on: Sequence[ITerraformDependable] | None = None,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            {
                "display_name": display_name,
                "combiner": combiner,
                "conditions": [dict(c) for c in conditions],
                "notification_channels": list(notification_channels) if notification_channels else None,
                "alert_strategy": [dict(alert_strategy)] if alert_strategy else None,
                "documentation": [dict(documentation)] if documentation else None,
                "severity": severity,
                "project": project,
            },
            depends_on=depends_on,
        )
