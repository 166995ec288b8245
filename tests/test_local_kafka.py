"""The local Kafka's layout: one node by default, three (or up to five) with ``DATAPIPE_KAFKA_BROKERS``."""

from __future__ import annotations

from pathlib import Path

import pytest

from datapipe_cdk.local import connect, kafka
from datapipe_cdk.local.config import StackConfig, kafka_brokers
from datapipe_cdk.principal import Principal
from datapipe_cdk.settings import ConnectCluster, GcpProject, KafkaCluster
from datapipe_cdk.target import apply_target


def _properties(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line)


@pytest.fixture
def run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DATAPIPE_RUN_DIR", str(tmp_path))
    return tmp_path


def test_one_node_by_default(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATAPIPE_KAFKA_BROKERS", raising=False)
    cfg = StackConfig(kafka_port=19092, kafka_controller_port=19093, run_dir=run_dir)
    assert cfg.kafka_brokers == 1
    assert cfg.kafka_bootstrap == "127.0.0.1:19092"
    props = _properties(kafka._server_properties(cfg, 1, run_dir / "logs"))
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["min.insync.replicas"] == "1"
    assert kafka.node_names(cfg) == ["kafka"]


def test_three_nodes_replicate_three_times_and_need_two_in_sync(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATAPIPE_KAFKA_BROKERS", "3")
    cfg = StackConfig(kafka_port=19092, kafka_controller_port=19093, run_dir=run_dir)
    assert cfg.kafka_bootstrap == "127.0.0.1:19092,127.0.0.1:19192,127.0.0.1:19292"
    assert kafka.node_names(cfg) == ["kafka", "kafka-2", "kafka-3"]
    second = _properties(kafka._server_properties(cfg, 2, run_dir / "logs"))
    assert second["node.id"] == "2"
    assert second["listeners"] == "SASL_PLAINTEXT://127.0.0.1:19192,CONTROLLER://127.0.0.1:19193"
    assert second["controller.quorum.voters"] == "1@127.0.0.1:19093,2@127.0.0.1:19193,3@127.0.0.1:19293"
    for key in ("default.replication.factor", "offsets.topic.replication.factor", "transaction.state.log.replication.factor"):
        assert second[key] == "3", key
    assert second["min.insync.replicas"] == second["transaction.state.log.min.isr"] == "2"
    assert kafka.cluster_id() == kafka.cluster_id(), "every node is formatted with one cluster id"
    worker = _properties(connect._worker_properties(cfg))
    assert worker["bootstrap.servers"] == cfg.kafka_bootstrap
    assert {worker[f"{kind}.storage.replication.factor"] for kind in ("config", "offset", "status")} == {"3"}


def test_deploy_local_gives_topics_every_broker(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATAPIPE_TARGET", "local")
    monkeypatch.setenv("DATAPIPE_KAFKA_BROKERS", "3")
    production = (
        KafkaCluster(bootstrap_servers=["k:9092"], sasl_username="deployer"),
        ConnectCluster(url="https://c", principal=Principal.kafka_user("connect"), basic_auth_username="d"),
        GcpProject(project="acme-data"),
    )
    local_kafka, _, _, target = apply_target(*production)
    assert target == "local"
    assert local_kafka.brokers == 3
    assert len(local_kafka.bootstrap_servers) == 3


@pytest.mark.parametrize("raw", ["0", "6", "three", "-1"])
def test_a_broker_count_out_of_range_is_refused_naming_the_variable(raw: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATAPIPE_KAFKA_BROKERS", raw)
    with pytest.raises(ValueError, match=r"DATAPIPE_KAFKA_BROKERS must be a whole number from 1 to 5, got"):
        kafka_brokers()
