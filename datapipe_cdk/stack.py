"""L3: one stack per environment, with its Kafka, Kafka Connect and Google providers configured."""

from __future__ import annotations

import re
from typing import Any, cast
from urllib.parse import parse_qsl, urlsplit

import jsii
from constructs import Construct

from . import _validate as check
from ._cdk import IAnyProducer, IResolveContext, Lazy, LocalBackend, TerraformOutput
from ._core import PipelineStack, Registry, pipeline_of
from .acl import AclOperation, KafkaAcl, ResourceType
from .errors import DatapipeError
from .governance.state import Governance
from .local.config import local_state_dir
from .manifest import Manifest, Variable
from .plan import PATHS_OUTPUT
from .principal import Principal
from .providers._base import ResourceTable
from .providers.google import GoogleProvider
from .providers.kafka import KafkaProvider
from .providers.kafka_connect import KafkaConnectProvider
from .settings import ConnectCluster, GcpProject, KafkaCluster, SaslMechanism
from .target import apply_target

__all__ = ["ConnectCluster", "DataPipelineStack", "GcpProject", "KafkaCluster", "SaslMechanism"]

_HOST_PORT = r"[A-Za-z0-9._-]+:[0-9]{1,5}"
_GCP_PROJECT = r"[a-z][a-z0-9-]{4,28}[a-z0-9]"
BIGQUERY_LOCATIONS = frozenset(
    {
        "US", "EU",
        "us-central1", "us-east1", "us-east4", "us-east5", "us-south1", "us-west1", "us-west2", "us-west3", "us-west4",
        "northamerica-northeast1", "northamerica-northeast2", "northamerica-south1",
        "southamerica-east1", "southamerica-west1",
        "europe-central2", "europe-north1", "europe-north2", "europe-southwest1", "europe-west1", "europe-west2",
        "europe-west3", "europe-west4", "europe-west6", "europe-west8", "europe-west9", "europe-west10",
        "europe-west12",
        "asia-east1", "asia-east2", "asia-northeast1", "asia-northeast2", "asia-northeast3", "asia-south1",
        "asia-south2", "asia-southeast1", "asia-southeast2",
        "australia-southeast1", "australia-southeast2",
        "me-central1", "me-central2", "me-west1", "africa-south1",
    }
)  # fmt: skip
"""BigQuery's dataset locations (multi-regions and regions), as Google documents them."""


@jsii.implements(IAnyProducer)
class _ManifestProducer:
    def __init__(self, stack: DataPipelineStack) -> None:
        self._stack = stack

    def produce(self, context: IResolveContext) -> Any:
        return self._stack.manifest().to_dict()


@jsii.implements(IAnyProducer)
class _PathsProducer:
    def __init__(self, stack: DataPipelineStack) -> None:
        self._stack = stack

    def produce(self, context: IResolveContext) -> Any:
        return self._stack.resource_table.paths()


class DataPipelineStack(PipelineStack):
    """A stack with the Kafka, Kafka Connect and Google providers configured from typed settings.

    Args:
        scope: the cdktf ``App`` (or another construct).
        stack_id: the stack's name; it is also the directory under ``cdktf.out/stacks/``.
        kafka: where Terraform and connectors reach Kafka (:class:`KafkaCluster`).
        connect: the Kafka Connect workers that run the connectors (:class:`ConnectCluster`).
        gcp: the Google Cloud project holding the datasets (:class:`GcpProject`).

    Secrets come in as Terraform variables marked sensitive: ``kafka_sasl_password``,
    ``connect_basic_auth_password`` and (with a BigQuery emulator) ``gcp_access_token``; connector
    secrets stay on the workers (see ``ConnectCluster.secrets_dir``). With ``DATAPIPE_TARGET=local``
    (``datapipe ... --local``) the stack targets the local stack instead of these settings.
    Policies run at synth (see ``datapipe_cdk.governance``); the ``datapipe_manifest`` output
    describes what the stack deploys, for notebooks and the CLI.
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
        check.literal(path, "stack_id", stack_id, "it names the stack")
        kafka, connect, gcp, self.target = apply_target(kafka, connect, gcp)
        kafka, connect, gcp = self._checked_settings(path, kafka, connect, gcp)
        if connect.manage_acls:
            _refuse_shared_worker_acls(scope, path, kafka, connect)
        super().__init__(scope, stack_id, path)
        self.resource_table = ResourceTable(self)  # first child: see providers/_base.py
        self.kafka = kafka
        self.connect = connect
        self.gcp = gcp
        self.registry = Registry()
        self._configure_providers()
        TerraformOutput(
            self,
            "datapipe_manifest",
            value=Lazy.any_value(_ManifestProducer(self)),
            description="What this pipeline deployed: endpoints, sources, topics, sinks and warehouses.",
        )
        TerraformOutput(
            self,
            PATHS_OUTPUT,
            value=Lazy.any_value(_PathsProducer(self)),
            description="Each resource's construct path, so `datapipe plan` can name what a later change deletes.",
        )
        self.child_ids.update({"datapipe-resources", "datapipe_manifest", PATHS_OUTPUT})
        if self.target == "local":  # state in the local stack's directory (encrypted by `datapipe deploy --local`)
            LocalBackend(self, path=str(local_state_dir() / f"{stack_id}.tfstate"))
        if connect.manage_acls:
            self._grant_connect_worker()
        self.governance = Governance(self)

    @staticmethod
    def of(scope: Construct) -> DataPipelineStack:  # type: ignore[override]
        """The pipeline stack a construct lives in (at any depth, user constructs included)."""
        return cast(DataPipelineStack, pipeline_of(scope))

    def manifest(self) -> Manifest:
        """The deployed pipeline, described for notebooks and tools (output ``datapipe_manifest``)."""
        manifest = Manifest.empty(self.node.id, self.kafka, self.connect, self.gcp, target=self.target)
        for part in self.registry.manifest_parts:
            part(manifest)
        manifest.variables = [Variable(name, sensitive, text) for name, (sensitive, text) in sorted(self.variable_specs.items())]
        return manifest

    @staticmethod
    def _checked_settings(
        path: str, kafka_settings: object, connect_settings: object, gcp_settings: object
    ) -> tuple[KafkaCluster, ConnectCluster, GcpProject]:
        kafka: KafkaCluster = check.instance(path, "kafka", kafka_settings, KafkaCluster)
        connect: ConnectCluster = check.instance(path, "connect", connect_settings, ConnectCluster)
        gcp: GcpProject = check.instance(path, "gcp", gcp_settings, GcpProject)
        servers = check.sequence(path, "kafka.bootstrap_servers", kafka.bootstrap_servers)
        if not servers:
            raise DatapipeError(path, "kafka.bootstrap_servers must list at least one host:port", servers)
        for server in servers:
            check.literal(path, "kafka.bootstrap_servers entry", server, "the Kafka provider needs it at plan time")
            check.text(path, "kafka.bootstrap_servers entry", server, pattern=_HOST_PORT, rule="must be host:port")
        if kafka.brokers is not None:
            check.integer(path, "kafka.brokers", kafka.brokers, minimum=1)
        if kafka.default_replication_factor is not None:
            check.integer(path, "kafka.default_replication_factor", kafka.default_replication_factor, minimum=1)
        check.flag(path, "kafka.tls", kafka.tls)
        if kafka.sasl_username is not None:
            check.text(path, "kafka.sasl_username", kafka.sasl_username, max_length=255)
        mechanism = check.choice(path, "kafka.sasl_mechanism", kafka.sasl_mechanism, SaslMechanism)
        check.text(path, "connect.url", connect.url, pattern=r"https?://[^\s/]+(/\S*)?", rule="must be an http(s) URL")
        _refuse_credentials_in_url(path, "connect.url", connect.url)
        principal = check.instance(path, "connect.principal", connect.principal, Principal)
        if not principal.is_kafka:
            raise DatapipeError(path, "connect.principal must be a Kafka user (Principal.kafka_user)", str(principal))
        check.text(path, "connect.group_id", connect.group_id, pattern=r"[A-Za-z0-9._-]+", rule="must be a Kafka group id")
        for topic in check.sequence(path, "connect.internal_topics", connect.internal_topics):
            check.text(
                path, "connect.internal_topics entry", topic, pattern=r"[A-Za-z0-9._-]{1,249}", rule="must be a topic name"
            )
        check.flag(path, "connect.manage_acls", connect.manage_acls)
        check.flag(path, "connect.allow_unauthenticated_rest", connect.allow_unauthenticated_rest)
        if connect.basic_auth_username is not None:
            check.text(path, "connect.basic_auth_username", connect.basic_auth_username, max_length=255)
        elif not connect.allow_unauthenticated_rest:
            raise DatapipeError(
                path,
                "connect.basic_auth_username is required: Kafka Connect's REST API returns and changes every connector's "
                "configuration, so it must ask for a login (set basic_auth_username and TF_VAR_connect_basic_auth_password, "
                "or pass allow_unauthenticated_rest=True to accept the risk)",
                None,
            )
        check.text(
            path,
            "connect.secrets_dir",
            connect.secrets_dir,
            pattern=r"/[A-Za-z0-9._/-]*[A-Za-z0-9._-]",
            rule="must be an absolute directory path on the workers",
        )
        check.text(
            path,
            "gcp.project",
            gcp.project,
            pattern=_GCP_PROJECT,
            rule="must be a GCP project id (6-30 lowercase letters, digits, '-')",
        )
        check.literal(path, "gcp.location", gcp.location, "policies and dataset creation need it")
        location = check.text(path, "gcp.location", gcp.location, max_length=64)
        known = {name.casefold(): name for name in BIGQUERY_LOCATIONS}
        if location.casefold() not in known:
            raise DatapipeError(
                path,
                "gcp.location must be a BigQuery location such as US, EU or europe-west1 "
                "(https://cloud.google.com/bigquery/docs/locations)",
                location,
            )
        if gcp.bigquery_endpoint is not None:
            check.text(
                path, "gcp.bigquery_endpoint", gcp.bigquery_endpoint, pattern=r"https?://\S+", rule="must be an http(s) URL"
            )
            _refuse_credentials_in_url(path, "gcp.bigquery_endpoint", gcp.bigquery_endpoint)
        check.flag(path, "gcp.manage_iam", gcp.manage_iam)
        domains = tuple(
            check.text(path, "gcp.allowed_domains entry", d, pattern=r"[A-Za-z0-9.-]+\.[A-Za-z]{2,}", rule="must be a domain")
            for d in check.sequence(path, "gcp.allowed_domains", gcp.allowed_domains)
        )
        channels = tuple(
            check.text(
                path, "gcp.alert_channels entry", c, pattern=r"projects/[a-z][a-z0-9-]{4,28}[a-z0-9]/notificationChannels/\d+",
                rule="must be a notification channel name: projects/<project>/notificationChannels/<id>",
            )
            for c in check.sequence(path, "gcp.alert_channels", gcp.alert_channels)
        )  # fmt: skip
        from dataclasses import replace

        return (
            replace(kafka, sasl_mechanism=mechanism, bootstrap_servers=tuple(servers)),
            connect,
            replace(gcp, location=known[location.casefold()], allowed_domains=domains, alert_channels=channels),
        )

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
                "connect_basic_auth_password", f"Kafka Connect REST password of user {self.connect.basic_auth_username}"
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
        self.child_ids.update({"kafka", "kafka-connect", "google"})

    def _grant_connect_worker(self) -> None:
        worker = self.connect.principal
        for topic in self.connect.internal_topics:
            for operation in (AclOperation.READ, AclOperation.WRITE, AclOperation.DESCRIBE, AclOperation.CREATE):
                KafkaAcl.ensure(self, worker, ResourceType.TOPIC, topic, operation)
        KafkaAcl.ensure(self, worker, ResourceType.GROUP, self.connect.group_id, AclOperation.READ)
        KafkaAcl.ensure(self, worker, ResourceType.CLUSTER, "kafka-cluster", AclOperation.DESCRIBE_CONFIGS)
        KafkaAcl.ensure(self, worker, ResourceType.CLUSTER, "kafka-cluster", AclOperation.DESCRIBE)


def _refuse_shared_worker_acls(scope: Construct, path: str, kafka: KafkaCluster, connect: ConnectCluster) -> None:
    """Kafka ACLs carry no owner: two stacks emitting the same worker ACLs both "own" them, and destroying
    either revokes them from the workers every other stack's connectors run on."""
    for other in scope.node.children:
        if not isinstance(other, DataPipelineStack) or not other.connect.manage_acls:
            continue
        same_cluster = set(other.kafka.bootstrap_servers) & set(kafka.bootstrap_servers)
        if same_cluster and (other.connect.url, other.connect.group_id) == (connect.url, connect.group_id):
            raise DatapipeError(
                path,
                f"connect.manage_acls: stack {other.node.path!r} already manages the ACLs of the Connect workers at "
                f"{connect.url} (group {connect.group_id}); destroying either stack would revoke them from both. Set "
                "ConnectCluster(manage_acls=False) in every stack but one",
                True,
            )


_SECRET_QUERY = re.compile(r"(pass|secret|token|key|auth|signature|credential)", re.IGNORECASE)


def _refuse_credentials_in_url(path: str, name: str, url: str) -> None:
    """A URL is written to the Terraform JSON and the manifest output in clear: it may carry no login or secret."""
    if check.is_token(url):
        return
    parts = urlsplit(url)
    secret_query = [k for k, _ in parse_qsl(parts.query, keep_blank_values=True) if _SECRET_QUERY.search(k)]
    if parts.username or parts.password or secret_query:
        raise DatapipeError(
            path,
            f"{name} must not carry credentials ({'user:password@' if parts.username else ', '.join(secret_query)}): "
            "URLs are written in clear to the Terraform JSON and the manifest; give the login through its own setting "
            "(ConnectCluster.basic_auth_username with TF_VAR_connect_basic_auth_password; Google credentials by ADC)",
            f"{parts.scheme}://***@{parts.hostname}" if parts.username else name,
        )
