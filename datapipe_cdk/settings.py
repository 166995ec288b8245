"""Where a pipeline runs: typed settings for its Kafka cluster, Kafka Connect workers and Google Cloud project.

Plain data (no cdktf): constructs read them, ``DataPipelineStack`` checks them once and configures its
providers from them. Secrets are never fields here: they are Terraform variables or files on the workers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

from .principal import Principal

DEFAULT_WORKER_SECRETS_DIR = "/etc/kafka-connect/secrets"


class SaslMechanism(Enum):
    """How Terraform and connector clients log in to Kafka."""

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
    """Where Terraform reaches Kafka.

    Args:
        bootstrap_servers: ``host:port`` of at least one broker (the provider's ``bootstrap_servers``).
        brokers: how many brokers the cluster has; caps every replication factor. ``None`` when unknown.
        tls: whether clients use TLS (``SASL_SSL`` / ``SSL``); the provider's ``tls_enabled``.
        sasl_username: the Kafka user Terraform logs in as; its password is the sensitive variable
            ``kafka_sasl_password`` (``TF_VAR_kafka_sasl_password``). ``None`` for no SASL.
        sasl_mechanism: ``SaslMechanism`` (or its string value, e.g. ``"scram-sha512"``).
        default_replication_factor: for topics that set none; default ``min(3, brokers)``.
    """

    bootstrap_servers: Sequence[str]
    brokers: int | None = None
    tls: bool = True
    sasl_username: str | None = None
    sasl_mechanism: SaslMechanism = SaslMechanism.SCRAM_SHA_512
    default_replication_factor: int | None = None

    @property
    def security_protocol(self) -> str:
        """Kafka clients' ``security.protocol``: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."""
        return ("SASL_" if self.sasl_username else "") + ("SSL" if self.tls else "PLAINTEXT")


@dataclass(frozen=True)
class ConnectCluster:
    """The Kafka Connect worker group that runs the connectors.

    Args:
        url: the workers' REST API (``http(s)://host:port``), what the ``kafka-connect`` provider calls.
        principal: the Kafka user the workers (and their connectors) log in as.
        group_id: the workers' ``group.id``.
        internal_topics: the workers' config, offset and status topics.
        manage_acls: emit the worker's own ACLs (internal topics, worker group, and Describe /
            DescribeConfigs on the cluster, which Debezium's MySQL/MariaDB connectors use to check their
            schema-history topic). Leave it to one stack when several stacks share the workers; with
            ``False``, whoever runs the workers grants them.
        basic_auth_username: the REST API's basic-auth user; its password is the sensitive variable
            ``connect_basic_auth_password``. Required unless ``allow_unauthenticated_rest=True``.
        allow_unauthenticated_rest: accept a REST API without authentication (anyone who reaches it
            can read every connector's configuration and change the pipeline). Off by default.
        secrets_dir: the directory on every worker where connector secrets live (database passwords,
            Kafka logins, Google keys). Connector configs only reference files there through Kafka
            Connect's ``file`` config provider (``${file:<dir>/<connector>.properties:<key>}``); the
            workers must set ``config.providers.file.param.allowed.paths`` to it. The manifest and
            ``datapipe worker-secrets`` list every file and key a stack needs.
    """

    url: str
    principal: Principal
    group_id: str = "connect-cluster"
    internal_topics: Sequence[str] = ("connect-configs", "connect-offsets", "connect-status")
    manage_acls: bool = True
    basic_auth_username: str | None = None
    allow_unauthenticated_rest: bool = False
    secrets_dir: str = DEFAULT_WORKER_SECRETS_DIR


@dataclass(frozen=True)
class GcpProject:
    """The Google Cloud project that holds the datasets.

    Args:
        project: the project id (6-30 lowercase letters, digits, '-').
        location: a BigQuery location (``US``, ``EU``, ``europe-west1`` ...); datasets are created there.
        bigquery_endpoint: another BigQuery API (a local emulator); the provider and runtime helpers
            call it instead of Google's.
        manage_iam: create what only real Google Cloud serves (service accounts, project IAM, DLP).
            ``False`` with an emulator.
        allowed_domains: the e-mail domains whose users, groups and domains may be granted access. When
            set, every dataset and project grant must stay inside them (policy ``allowed-domains``; the
            project's own service accounts count as inside), and data holding PII may only be read by
            them (policy ``pii-readers``, which needs them). Empty: no domain rule outside PII.
        alert_channels: Cloud Monitoring notification channels (``projects/<p>/notificationChannels/<id>``)
            that freshness alert policies notify.
    """

    project: str
    location: str = "US"
    bigquery_endpoint: str | None = None
    manage_iam: bool = True
    allowed_domains: Sequence[str] = field(default_factory=tuple)
    alert_channels: Sequence[str] = field(default_factory=tuple)
