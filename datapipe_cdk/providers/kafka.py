"""L1: the Mongey/kafka provider (topics, ACLs)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from constructs import Construct

from .._cdk import ITerraformDependable
from ._base import Provider, Resource


class KafkaProvider(Provider):
    TYPE = "kafka"
    SOURCE = "Mongey/kafka"
    VERSION = "0.13.1"

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bootstrap_servers: Sequence[str],
        tls_enabled: bool,
        sasl_mechanism: str | None = None,
        sasl_username: str | None = None,
        sasl_password: str | None = None,
        kafka_version: str | None = None,
        timeout: int | None = None,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            {
                "bootstrap_servers": list(bootstrap_servers),
                "tls_enabled": tls_enabled,
                "sasl_mechanism": sasl_mechanism,
                "sasl_username": sasl_username,
                "sasl_password": sasl_password,
                "kafka_version": kafka_version,
                "timeout": timeout,
            },
        )


class Topic(Resource):
    TYPE = "kafka_topic"
    PROVIDER = "kafka"

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        partitions: int,
        replication_factor: int,
        config: Mapping[str, str] | None = None,
        depends_on: Sequence[ITerraformDependable] | None = None,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            {
                "name": name,
                "partitions": partitions,
                "replication_factor": replication_factor,
                "config": dict(config) if config else None,
            },
            depends_on=depends_on,
        )


class Acl(Resource):
    TYPE = "kafka_acl"
    PROVIDER = "kafka"

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        resource_name: str,
        resource_type: str,
        acl_principal: str,
        acl_host: str,
        acl_operation: str,
        acl_permission_type: str,
        resource_pattern_type_filter: str | None = None,
        depends_on: Sequence[ITerraformDependable] | None = None,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            {
                "resource_name": resource_name,
                "resource_type": resource_type,
                "resource_pattern_type_filter": resource_pattern_type_filter,
                "acl_principal": acl_principal,
                "acl_host": acl_host,
                "acl_operation": acl_operation,
                "acl_permission_type": acl_permission_type,
            },
            depends_on=depends_on,
        )
