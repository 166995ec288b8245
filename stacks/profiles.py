"""Where the example stacks deploy: ``production`` (the default) or ``local`` (the project's local stack).

Choose with ``DATAPIPE_PROFILE=local``. Local ports follow the launcher's ``DATAPIPE_<NAME>_PORT``
variables, so a moved port needs no edit here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from datapipe_cdk import ConnectCluster, Engine, GcpProject, KafkaCluster, Principal


@dataclass(frozen=True)
class Profile:
    name: str
    kafka: KafkaCluster
    connect: ConnectCluster
    gcp: GcpProject
    mysql_engine: Engine
    mysql_host: str
    mysql_port: int
    postgres_host: str
    postgres_port: int
    state_dir: str | None = None
    """Where local Terraform state goes (the local stack's run directory); None keeps cdktf's default."""


def _port(name: str, default: int) -> int:
    return int(os.environ.get(f"DATAPIPE_{name}_PORT", default))


def _source_address(name: str, default_port: int) -> tuple[str, int]:
    """Where the Connect worker reaches a database: ``DATAPIPE_<NAME>_ADDRESS=host:port`` (docker-compose
    runs Connect beside the databases, e.g. ``mariadb:3306``), else the launcher's 127.0.0.1 port."""
    raw = os.environ.get(f"DATAPIPE_{name}_ADDRESS")
    if not raw:
        return "127.0.0.1", _port(name, default_port)
    host, _, port = raw.rpartition(":")
    if not host or not port.isdigit():
        raise SystemExit(f"DATAPIPE_{name}_ADDRESS must be host:port, got {raw!r}")
    return host, int(port)


def current() -> Profile:
    name = os.environ.get("DATAPIPE_PROFILE", "production")
    if name == "local":
        mysql_host, mysql_port = _source_address("MARIADB", 13306)
        postgres_host, postgres_port = _source_address("POSTGRES", 15432)
        return Profile(
            name="local",
            kafka=KafkaCluster(
                bootstrap_servers=[f"127.0.0.1:{_port('KAFKA', 19092)}"], brokers=1, tls=False, sasl_username="admin"
            ),
            # The launcher grants the worker its internal topics before the worker starts, and both example
            # stacks share that worker: neither stack may own (and on destroy delete) those ACLs.
            connect=ConnectCluster(
                url=f"http://127.0.0.1:{_port('CONNECT', 18083)}", principal=Principal.kafka_user("connect"), manage_acls=False
            ),
            gcp=GcpProject(
                project=os.environ.get("DATAPIPE_GCP_PROJECT", "datapipe-local"),
                location="US",
                bigquery_endpoint=f"http://127.0.0.1:{_port('BIGQUERY', 19050)}",
                manage_iam=False,
            ),
            mysql_engine=Engine.MARIADB,
            mysql_host=mysql_host,
            mysql_port=mysql_port,
            postgres_host=postgres_host,
            postgres_port=postgres_port,
            state_dir=os.environ.get("DATAPIPE_STATE_DIR"),
        )
    if name != "production":
        raise SystemExit(f"DATAPIPE_PROFILE must be 'production' or 'local', got {name!r}")
    return Profile(
        name="production",
        kafka=KafkaCluster(
            bootstrap_servers=["kafka-1.acme.internal:9093", "kafka-2.acme.internal:9093", "kafka-3.acme.internal:9093"],
            brokers=3,
            tls=True,
            sasl_username="terraform",
        ),
        connect=ConnectCluster(url="https://connect.acme.internal:8083", principal=Principal.kafka_user("connect")),
        gcp=GcpProject(project="acme-data", location="US"),
        mysql_engine=Engine.MYSQL,
        mysql_host="payments-mysql.acme.internal",
        mysql_port=3306,
        postgres_host="ledger-pg.acme.internal",
        postgres_port=5432,
    )
