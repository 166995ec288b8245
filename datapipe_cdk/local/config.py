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
    def kafka_bootstrap(self) -> str:
        return f"{self.host}:{self.kafka_port}"

    @property
    def connect_url(self) -> str:
        return f"http://{self.host}:{self.connect_port}"

    @property
    def stack_cache(self) -> Path:
        """Resolved Kafka/Connect jars and connector plugins (filled by ``make stack-deps``)."""
        return self.cache_dir / "stack"
