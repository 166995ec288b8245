"""L3: one stack per environment, with its Kafka, Kafka Connect and Google providers configured."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

import jsii
from cdktf import IAnyProducer, IResolveContext, Lazy, TerraformOutput, TerraformStack, TerraformVariable
from constructs import Construct

from . import _validate as check
from .errors import DatapipeError
from .principal import Principal
from .providers._base import ResourceTable
from .providers.google import GoogleProvider
from .providers.kafka import KafkaProvider
from .providers.kafka_connect import KafkaConnectProvider

if TYPE_CHECKING:
    from .acl import KafkaAcl

_HOST_PORT = r"[A-Za-z0-9._-]+:[0-9]{1,5}"
_GCP_PROJECT = r"[a-z][a-z0-9-]{4,28}[a-z0-9]"
_LOCATION = r"[A-Za-z0-9-]{2,32}"


class SaslMechanism(Enum):
    PLAIN = "plain"
    SCRAM_SHA_256 = "scram-sha256"
    SCRAM_SHA_512 = "scram-sha512"

    @property
    def java_name(self) -> str:
        """The name Kafka clients use (``SCRAM-SHA-512``)."""
        return {"plain": "PLAIN", "scram-sha256": "SCRAM-SHA-256", "scram-sha512": "SCRAM-SHA-512"}[self.value]

    @property
    def login_module(self) -> str:
        """The JAAS login module Kafka clients use for this mechanism."""
        kind = "plain.PlainLoginModule" if self is SaslMechanism.PLAIN else "scram.ScramLoginModule"
        return f"org.apache.kafka.common.security.{kind}"


@dataclass(frozen=True)
class KafkaCluster:
    """Where Terraform reaches Kafka. The SASL password is a sensitive variable, never a value here."""

    bootstrap_servers: Sequence[str]
    brokers: int | None = None
    """How many brokers the cluster has (caps replication factors); None when unknown."""
    tls: bool = True
    sasl_username: str | None = None
    sasl_mechanism: SaslMechanism = SaslMechanism.SCRAM_SHA_512
    default_replication_factor: int | None = None
    """Replication factor for topics that do not set one; default ``min(3, brokers)``."""

    @property
    def security_protocol(self) -> str:
        """Kafka clients' ``security.protocol``: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."""
        return ("SASL_" if self.sasl_username else "") + ("SSL" if self.tls else "PLAINTEXT")


@dataclass(frozen=True)
class ConnectCluster:
    """The Kafka Connect worker group that runs our connectors, and the Kafka principal it uses."""

    url: str
    principal: Principal
    group_id: str = "connect-cluster"
    internal_topics: Sequence[str] = ("connect-configs", "connect-offsets", "connect-status")
    manage_acls: bool = True
    """Emit the worker's own ACLs (internal topics, worker group)."""
    basic_auth_username: str | None = None


@dataclass(frozen=True)
class GcpProject:
    """The Google Cloud project that holds the datasets.

    ``bigquery_endpoint`` points the provider (and the runtime helpers) at another BigQuery API, such
    as a local emulator; ``manage_iam=False`` leaves out the resources only real Google Cloud can
    serve (service accounts, project IAM, DLP): sinks then read their key from a sensitive variable.
    """

    project: str
    location: str = "US"
    bigquery_endpoint: str | None = None
    manage_iam: bool = True


@dataclass
class _Registry:
    """What the stack holds, for duplicate checks, grants and the manifest."""

    topics: dict[str, str] = field(default_factory=dict)
    topic_collision_keys: dict[str, str] = field(default_factory=dict)
    """Topic names with '.' read as '_' (how Kafka metric names see them), to the topic claiming each."""
    connectors: dict[str, str] = field(default_factory=dict)
    datasets: dict[str, str] = field(default_factory=dict)
    acls: dict[tuple[str, ...], KafkaAcl] = field(default_factory=dict)
    manifest_parts: list[Callable[[dict[str, Any]], None]] = field(default_factory=list)
    constructs: list[Construct] = field(default_factory=list)
    """Every construct datapipe-cdk created in the stack, in creation order (no jsii walk needed)."""


@jsii.implements(IAnyProducer)
class _ManifestProducer:
    def __init__(self, stack: DataPipelineStack) -> None:
        self._stack = stack

    def produce(self, context: IResolveContext) -> Any:
        return self._stack.manifest()


class DataPipelineStack(TerraformStack):
    """A stack with the three providers configured from typed settings.

    Secrets come in as Terraform variables marked sensitive: ``kafka_sasl_password``,
    ``connect_basic_auth_password`` and (with a BigQuery emulator) ``gcp_access_token``.
    """

    def __init__(
        self,
        scope: Construct,
        stack_id: str,
        *,
        kafka: KafkaCluster,
        connect: ConnectCluster,
        gcp: GcpProject,
    ) -> None:
        path = check.child_path(scope, stack_id, "DataPipelineStack")
        self._check_settings(path, kafka, connect, gcp)
        super().__init__(scope, stack_id)
        self.resource_table = ResourceTable(self)  # first child: see providers/_base.py
        self.kafka = kafka
        self.connect = connect
        self.gcp = gcp
        self.registry = _Registry()
        self._configure_providers()
        TerraformOutput(
            self,
            "datapipe_manifest",
            value=Lazy.any_value(_ManifestProducer(self)),
            description="What this pipeline deployed: endpoints, sources, topics, sinks and warehouses.",
        )
        if connect.manage_acls:
            self._grant_connect_worker()
        from .governance.state import Governance  # stdlib-only subpackage: policies run at synth

        Governance.attach(self)

    @staticmethod
    def of(scope: Construct) -> DataPipelineStack:  # type: ignore[override]
        """The pipeline stack a construct lives in."""
        found = getattr(scope, "pipeline", None)
        if isinstance(found, DataPipelineStack):
            return found
        if isinstance(scope, DataPipelineStack):
            return scope
        raise DatapipeError(scope.node.path, "datapipe-cdk constructs must be created inside a DataPipelineStack", scope)

    @property
    def pipeline(self) -> DataPipelineStack:
        return self

    @property
    def default_replication_factor(self) -> int:
        if self.kafka.default_replication_factor is not None:
            return self.kafka.default_replication_factor
        return min(3, self.kafka.brokers) if self.kafka.brokers else 3

    def sensitive_variable(self, name: str, description: str) -> TerraformVariable:
        """A sensitive string variable named exactly ``name`` (set it with ``TF_VAR_<name>``)."""
        return self.variable(name, description, sensitive=True)

    def variable(self, name: str, description: str, *, sensitive: bool) -> TerraformVariable:
        """A string variable named exactly ``name``, created once per stack."""
        existing = self.node.try_find_child(f"var-{name}")
        if isinstance(existing, TerraformVariable):
            return existing
        variable = TerraformVariable(self, f"var-{name}", type="string", sensitive=sensitive, description=description)
        variable.override_logical_id(name)
        return variable

    def manifest(self) -> dict[str, Any]:
        """The deployed pipeline, described for notebooks and tools (output ``datapipe_manifest``)."""
        result: dict[str, Any] = {
            "stack": self.node.id,
            "kafka": {
                "bootstrap_servers": list(self.kafka.bootstrap_servers),
                "security_protocol": self.kafka.security_protocol,
                "sasl_mechanism": self.kafka.sasl_mechanism.java_name if self.kafka.sasl_username else None,
            },
            "connect": {"url": self.connect.url},
            "bigquery": {
                "project": self.gcp.project,
                "location": self.gcp.location,
                "endpoint": self.gcp.bigquery_endpoint,
            },
            "sources": [],
            "sinks": [],
            "warehouses": [],
        }
        for part in self.registry.manifest_parts:
            part(result)
        return result

    def claim(self, kind: str, name: str, path: str) -> None:
        """Register a unique name (topic, connector, dataset) or fail naming both claimants."""
        table = {
            "topic": self.registry.topics,
            "connector": self.registry.connectors,
            "dataset": self.registry.datasets,
        }[kind]
        if name in table:
            raise DatapipeError(path, f"{kind} name is already used in this stack by {table[name]}", name)
        table[name] = path

    @staticmethod
    def _check_settings(path: str, kafka_settings: object, connect_settings: object, gcp_settings: object) -> None:
        kafka: KafkaCluster = check.instance(path, "kafka", kafka_settings, KafkaCluster)
        connect: ConnectCluster = check.instance(path, "connect", connect_settings, ConnectCluster)
        gcp: GcpProject = check.instance(path, "gcp", gcp_settings, GcpProject)
        servers = check.sequence(path, "kafka.bootstrap_servers", kafka.bootstrap_servers)
        if not servers:
            raise DatapipeError(path, "kafka.bootstrap_servers must list at least one host:port", servers)
        for server in servers:
            check.text(path, "kafka.bootstrap_servers entry", server, pattern=_HOST_PORT, rule="must be host:port")
        if kafka.brokers is not None:
            check.integer(path, "kafka.brokers", kafka.brokers, minimum=1)
        if kafka.default_replication_factor is not None:
            check.integer(path, "kafka.default_replication_factor", kafka.default_replication_factor, minimum=1)
        check.flag(path, "kafka.tls", kafka.tls)
        if kafka.sasl_username is not None:
            check.text(path, "kafka.sasl_username", kafka.sasl_username, max_length=255)
        check.choice(path, "kafka.sasl_mechanism", kafka.sasl_mechanism, SaslMechanism)
        check.text(path, "connect.url", connect.url, pattern=r"https?://[^\s/]+(/\S*)?", rule="must be an http(s) URL")
        principal = check.instance(path, "connect.principal", connect.principal, Principal)
        if not principal.is_kafka:
            raise DatapipeError(path, "connect.principal must be a Kafka user", str(principal))
        check.text(path, "connect.group_id", connect.group_id, pattern=r"[A-Za-z0-9._-]+", rule="must be a Kafka group id")
        for topic in check.sequence(path, "connect.internal_topics", connect.internal_topics):
            check.text(
                path, "connect.internal_topics entry", topic, pattern=r"[A-Za-z0-9._-]{1,249}", rule="must be a topic name"
            )
        check.flag(path, "connect.manage_acls", connect.manage_acls)
        check.text(
            path,
            "gcp.project",
            gcp.project,
            pattern=_GCP_PROJECT,
            rule="must be a GCP project id (6-30 lowercase letters, digits, '-')",
        )
        check.text(
            path, "gcp.location", gcp.location, pattern=_LOCATION, rule="must be a BigQuery location such as US or europe-west1"
        )
        if gcp.bigquery_endpoint is not None:
            check.text(
                path, "gcp.bigquery_endpoint", gcp.bigquery_endpoint, pattern=r"https?://\S+", rule="must be an http(s) URL"
            )
        check.flag(path, "gcp.manage_iam", gcp.manage_iam)

    def _configure_providers(self) -> None:
        kafka = self.kafka
        sasl_password = None
        if kafka.sasl_username:
            sasl_password = self.sensitive_variable(
                "kafka_sasl_password", f"SASL password of Kafka user {kafka.sasl_username}"
            ).string_value
        KafkaProvider(
            self,
            "kafka",
            bootstrap_servers=kafka.bootstrap_servers,
            tls_enabled=kafka.tls,
            sasl_mechanism=kafka.sasl_mechanism.value if kafka.sasl_username else None,
            sasl_username=kafka.sasl_username,
            sasl_password=sasl_password,
        )
        connect_password = None
        if self.connect.basic_auth_username:
            connect_password = self.sensitive_variable(
                "connect_basic_auth_password", "Kafka Connect REST basic-auth password"
            ).string_value
        KafkaConnectProvider(
            self,
            "kafka-connect",
            url=self.connect.url,
            basic_auth_username=self.connect.basic_auth_username,
            basic_auth_password=connect_password,
        )
        endpoint = self.gcp.bigquery_endpoint
        GoogleProvider(
            self,
            "google",
            project=self.gcp.project,
            access_token=self.sensitive_variable("gcp_access_token", "OAuth token for the BigQuery endpoint").string_value
            if endpoint
            else None,
            big_query_custom_endpoint=endpoint.rstrip("/") + "/bigquery/v2/" if endpoint else None,
        )

    def _grant_connect_worker(self) -> None:
        from .acl import AclOperation, KafkaAcl, ResourceType

        worker = self.connect.principal
        for topic in self.connect.internal_topics:
            for operation in (AclOperation.READ, AclOperation.WRITE, AclOperation.DESCRIBE, AclOperation.CREATE):
                KafkaAcl.ensure(self, worker, ResourceType.TOPIC, topic, operation)
        KafkaAcl.ensure(self, worker, ResourceType.GROUP, self.connect.group_id, AclOperation.READ)
        KafkaAcl.ensure(self, worker, ResourceType.CLUSTER, "kafka-cluster", AclOperation.DESCRIBE_CONFIGS)
        KafkaAcl.ensure(self, worker, ResourceType.CLUSTER, "kafka-cluster", AclOperation.DESCRIBE)
