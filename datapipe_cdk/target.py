"""Where a stack deploys: the settings its code declares (``production``), or the local stack (``local``).

A user's app never changes to try itself locally: ``datapipe synth|plan|deploy --local`` (or
``DATAPIPE_TARGET=local``) makes every ``DataPipelineStack`` point at the local stack's Kafka, Kafka
Connect and BigQuery emulator, and every ``CdcSource`` at the local MariaDB (for ``mysql`` and
``mariadb`` sources: the local stack has no MySQL server) or PostgreSQL. Everything else (names,
tables, policies) stays as declared, so what is tested locally is what ships.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from .errors import DatapipeError
from .local import config
from .principal import Principal
from .settings import ConnectCluster, GcpProject, KafkaCluster

TARGET_ENV = "DATAPIPE_TARGET"
TARGETS = ("production", "local")
LOCAL_PROJECT = "datapipe-local"
LOCAL_CONNECT_USER = "connect"
LOCAL_KAFKA_ADMIN = "admin"
LOCAL_REST_USER = "datapipe"


@dataclass(frozen=True)
class SourceAddress:
    """Where the Connect workers reach a source database on the local stack."""

    engine: str
    host: str
    port: int


def current_target() -> str:
    """``$DATAPIPE_TARGET`` (``production`` when unset)."""
    target = os.environ.get(TARGET_ENV, "production").strip().lower() or "production"
    if target not in TARGETS:
        raise DatapipeError(TARGET_ENV, f"must be one of {', '.join(TARGETS)}", target)
    return target


def is_local() -> bool:
    return current_target() == "local"


def apply_target(
    kafka: KafkaCluster, connect: ConnectCluster, gcp: GcpProject
) -> tuple[KafkaCluster, ConnectCluster, GcpProject, str]:
    """The stack's settings for the current target, and the target's name."""
    target = current_target()
    if target != "local":
        return kafka, connect, gcp, target
    host = config.HOST
    brokers = config.kafka_brokers()
    nodes = config.node_ports(config.port("kafka"), config.port("kafka_controller"), brokers)
    local_kafka = KafkaCluster(
        bootstrap_servers=[f"{host}:{client}" for client, _ in nodes],
        brokers=brokers,
        tls=False,
        sasl_username=LOCAL_KAFKA_ADMIN,
    )
    local_connect = ConnectCluster(
        url=f"http://{host}:{config.port('connect')}",
        principal=Principal.kafka_user(LOCAL_CONNECT_USER),
        group_id="connect-cluster",
        # The local worker's own ACLs belong to the local stack (granted before it starts), never to a stack.
        manage_acls=False,
        basic_auth_username=LOCAL_REST_USER,
        secrets_dir=str(config.worker_secrets_dir()),
    )
    local_gcp = replace(
        gcp,
        project=os.environ.get("DATAPIPE_GCP_PROJECT", LOCAL_PROJECT),
        bigquery_endpoint=f"http://{host}:{config.port('bigquery')}",
        manage_iam=False,
    )
    return local_kafka, local_connect, local_gcp, target


def source_address(engine: str) -> SourceAddress | None:
    """Where a source of ``engine`` runs on the local stack (None for the production target).

    ``DATAPIPE_MARIADB_ADDRESS`` / ``DATAPIPE_POSTGRES_ADDRESS`` (``host:port``) override it, for a Connect
    worker that reaches the databases by another name (docker compose).
    """
    if not is_local():
        return None
    name, local_engine = ("postgres", "postgresql") if engine == "postgresql" else ("mariadb", "mariadb")
    raw = os.environ.get(f"DATAPIPE_{name.upper()}_ADDRESS")
    if raw:
        host, _, port = raw.rpartition(":")
        if not host or not port.isdigit():
            raise DatapipeError(f"DATAPIPE_{name.upper()}_ADDRESS", "must be host:port", raw)
        return SourceAddress(local_engine, host, int(port))
    return SourceAddress(local_engine, config.HOST, config.port(name))
