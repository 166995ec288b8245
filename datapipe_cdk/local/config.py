"""Ports and directories of the local stack; every port is overridable by ``DATAPIPE_<NAME>_PORT``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from datapipe_cdk.local._process import run_dir

HOST = "127.0.0.1"

# Defaults sit outside the usual ranges so the stack never collides with a developer's own services.
_DEFAULT_PORTS: dict[str, int] = {
    "kafka": 19092,
    "kafka_controller": 19093,
    "connect": 18083,
    "mariadb": 13306,
    "postgres": 15432,
    "bigquery": 19050,
    "bigquery_grpc": 19060,
    "token": 19070,
    "tls_front": 19443,
}


def port(name: str) -> int:
    """The local port of service ``name``: ``$DATAPIPE_<NAME>_PORT`` or the default."""
    raw = os.environ.get(f"DATAPIPE_{name.upper()}_PORT")
    if raw is None:
        return _DEFAULT_PORTS[name]
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"DATAPIPE_{name.upper()}_PORT must be an integer, got {raw!r}") from None


BROKER_PORT_STEP = 100
"""Broker ``n`` (1-based) listens on the kafka ports + ``(n - 1) * BROKER_PORT_STEP``."""


def kafka_brokers() -> int:
    """How many Kafka nodes the local stack runs: ``$DATAPIPE_KAFKA_BROKERS`` (1, the default, to 5).

    Each node is a KRaft broker and controller; with 3 or more, internal topics get 3 replicas and brokers
    default to ``min.insync.replicas=2``, as production clusters are usually set up.
    """
    raw = os.environ.get("DATAPIPE_KAFKA_BROKERS", "1").strip() or "1"
    if not raw.isdigit() or not 1 <= int(raw) <= 5:
        raise ValueError(f"DATAPIPE_KAFKA_BROKERS must be a whole number from 1 to 5, got {raw!r}")
    return int(raw)


def node_ports(kafka_port: int, controller_port: int, brokers: int) -> list[tuple[int, int]]:
    """``(client port, controller port)`` of each local Kafka node, node 1 first."""
    return [(kafka_port + i * BROKER_PORT_STEP, controller_port + i * BROKER_PORT_STEP) for i in range(brokers)]


def run_dir_path() -> Path:
    """The run directory's path (``$DATAPIPE_RUN_DIR`` or ``~/.cache/datapipe-cdk/run``), nothing created."""
    return Path(os.environ.get("DATAPIPE_RUN_DIR", Path.home() / ".cache" / "datapipe-cdk" / "run"))


def local_state_dir() -> Path:
    """Where local deploys keep their (encrypted) Terraform state: ``<run>/terraform``."""
    return run_dir_path() / "terraform"


def worker_secrets_dir() -> Path:
    """Where the local Connect worker reads connector secrets (``ConnectCluster.secrets_dir`` locally)."""
    return run_dir_path() / "connect-secrets"


def cache_dir() -> Path:
    """Download/build cache (``$DATAPIPE_CACHE`` or ``~/.cache/datapipe-cdk``), outside the repo."""
    return Path(os.environ.get("DATAPIPE_CACHE", Path.home() / ".cache" / "datapipe-cdk"))


@dataclass(frozen=True)
class StackConfig:
    """Where every local service listens and where its files live. Host is always 127.0.0.1."""

    host: str = HOST
    kafka_port: int = field(default_factory=lambda: port("kafka"))
    kafka_controller_port: int = field(default_factory=lambda: port("kafka_controller"))
    kafka_brokers: int = field(default_factory=kafka_brokers)
    connect_port: int = field(default_factory=lambda: port("connect"))
    mariadb_port: int = field(default_factory=lambda: port("mariadb"))
    postgres_port: int = field(default_factory=lambda: port("postgres"))
    bigquery_port: int = field(default_factory=lambda: port("bigquery"))
    bigquery_grpc_port: int = field(default_factory=lambda: port("bigquery_grpc"))
    token_port: int = field(default_factory=lambda: port("token"))
    tls_front_port: int = field(default_factory=lambda: port("tls_front"))
    run_dir: Path = field(default_factory=run_dir)
    cache_dir: Path = field(default_factory=cache_dir)

    @property
    def kafka_nodes(self) -> list[tuple[int, int]]:
        """``(client port, controller port)`` of each Kafka node, node 1 (``kafka_port``) first."""
        return node_ports(self.kafka_port, self.kafka_controller_port, self.kafka_brokers)

    @property
    def kafka_bootstrap(self) -> str:
        """Every node's client listener, comma separated (``bootstrap.servers``)."""
        return ",".join(f"{self.host}:{client}" for client, _ in self.kafka_nodes)

    @property
    def connect_url(self) -> str:
        return f"http://{self.host}:{self.connect_port}"

    @property
    def stack_cache(self) -> Path:
        """Resolved Kafka/Connect jars and connector plugins (filled by ``make stack-deps``)."""
        return self.cache_dir / "stack"
