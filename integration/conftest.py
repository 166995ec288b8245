"""Fixtures of the integration tier: one session-wide deployed stack, on one of two backends.

``local``   the launcher's processes (``python -m datapipe_cdk.local``), the default here;
``compose`` ``integration/docker-compose.yml`` through pytest-docker, when a Docker engine answers.

Either way the fixture starts only what is not running, deploys the example pipelines with OpenTofu
(``integration.deploy``), and at the end destroys what it deployed and stops what it started, by PID
(local) or with ``docker compose down`` (compose). Missing prerequisites make the tests SKIP with the
command that provides them. ``DATAPIPE_STACK_BACKEND=local|compose`` runs one backend only.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from integration import deploy, flow
from datapipe_cdk.local import _process, bigquery, connect, kafka
from datapipe_cdk.local.config import StackConfig

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = Path(__file__).resolve().parent / "docker-compose.yml"
BACKENDS = ("local", "compose")
CONNECTORS_TIMEOUT_S = 120.0
EXTRA_KAFKA_USERS = ("fraud-detector", "analyst")
"""Principals the example grants topics to; the tests log in as them (compose formats only admin/connect)."""


@dataclass
class DeployedStack:
    """What the tests need: where things listen, and what the fixture must undo."""

    backend: str
    cfg: StackConfig
    started: bool
    deployed: bool


def _selected_backends() -> tuple[str, ...]:
    chosen = os.environ.get("DATAPIPE_STACK_BACKEND")
    return (chosen,) if chosen else BACKENDS


def _missing_local_prerequisite(cfg: StackConfig) -> str | None:
    """Why the local backend cannot run, with the command that fixes it; None when it can."""
    from datapipe_cdk import _toolchain

    try:
        _process.jdk_tool("java")
    except _process.ServiceError:
        return "no Java 17+ in JAVA_HOME or on PATH: run make stack-deps (installs openjdk-17 as root)"
    if not kafka.libs_dir(cfg).is_dir() or not connect.plugins_dir(cfg).is_dir():
        return f"Kafka/Connect jars missing in {cfg.stack_cache}: run make stack-deps"
    try:
        _toolchain.check()
    except _toolchain.ToolchainError as error:
        return f"OpenTofu toolchain missing ({error}): run make toolchain"
    try:
        bigquery.python313()
    except _process.ServiceError as error:
        return f"no BigQuery emulator possible here: {error}"
    return None


def _states() -> list[str]:
    """One state per service from ``launcher status`` (``healthy (...)``, ``stopped``, ``unhealthy ...``)."""
    result = subprocess.run([sys.executable, "-m", "datapipe_cdk.local", "status"], cwd=ROOT, capture_output=True, text=True)
    return [line.split(None, 1)[1] if " " in line.strip() else "" for line in result.stdout.splitlines() if line.strip()]


def _healthy() -> bool:
    states = _states()
    return bool(states) and all(state.startswith("healthy") for state in states)


def _launcher(command: str) -> None:
    subprocess.run([sys.executable, "-m", "datapipe_cdk.local", command], cwd=ROOT, check=True, timeout=600)


def _has_resources(cfg: StackConfig, stack: str) -> bool:
    state = cfg.run_dir / "terraform" / f"{stack}.tfstate"
    return state.is_file() and bool(json.loads(state.read_text() or "{}").get("resources"))


def _deploy(cfg: StackConfig) -> bool:
    """Apply both example stacks; True when they were not deployed before (so teardown destroys them)."""
    fresh = not all(_has_resources(cfg, stack) for stack in deploy.STACKS)
    deploy.synth(cfg)
    for stack in deploy.STACKS:
        deploy.apply(cfg, stack)
    return fresh


def _teardown(stack: DeployedStack) -> None:
    if stack.deployed:
        for name in reversed(deploy.STACKS):
            deploy.destroy(stack.cfg, name)


def _deployed_on(stack: DeployedStack) -> Iterator[DeployedStack]:
    """Deploy both example stacks, wait for their connectors, yield ``stack``; then destroy what was deployed."""
    try:
        stack.deployed = _deploy(stack.cfg)
        deploy.wait_running(stack.cfg, timeout=CONNECTORS_TIMEOUT_S)
        yield stack
    finally:
        _teardown(stack)


@pytest.fixture(scope="session", params=[pytest.param("local", id="local"),
                                        pytest.param("compose", id="compose", marks=pytest.mark.docker)])
def deployed(request: pytest.FixtureRequest) -> Iterator[DeployedStack]:
    """The example pipelines deployed on a running stack (see the module docstring)."""
    backend = str(request.param)
    if backend not in _selected_backends():
        pytest.skip(f"backend {backend} not selected (DATAPIPE_STACK_BACKEND={os.environ['DATAPIPE_STACK_BACKEND']})")
    if backend == "compose":
        yield from _compose_stack(request)
        return
    cfg = StackConfig()
    reason = _missing_local_prerequisite(cfg)
    if reason:
        pytest.skip(reason)
    states = _states()
    started = all(state == "stopped" for state in states)  # ours to stop at the end only if nothing ran
    if not all(state.startswith("healthy") for state in states):
        _launcher("up")  # idempotent: starts only what is not running
    try:
        yield from _deployed_on(DeployedStack("local", cfg, started=started, deployed=False))
    finally:
        if started:
            _launcher("down")


# --- docker compose -------------------------------------------------------------------------------


def _docker_engine_reason() -> str | None:
    """None when ``docker compose`` can talk to an engine; else why not."""
    if shutil.which("docker") is None:
        return "no docker CLI on PATH (no Docker engine on this machine): the local backend covers the same tests"
    probe = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        detail = probe.stderr.strip().splitlines()[-1] if probe.stderr.strip() else "docker info failed"
        return f"Docker engine not reachable: {detail}"
    return None


def _compose_secrets(cfg: StackConfig) -> dict[str, str]:
    """Test-only passwords for the compose stack, kept in its run dir in the launcher's file formats."""
    users = kafka.passwords(cfg)  # kafka.USERS (EXTRA_KAFKA_USERS among them) and the controller
    db_file = cfg.run_dir / "secrets" / "databases.json"
    if not db_file.exists():
        cdc = secrets.token_urlsafe(18)
        logins = {
            "mariadb_admin": {"user": "root", "password": secrets.token_urlsafe(18)},
            "mariadb_cdc": {"user": "debezium", "password": cdc},
            "postgres_admin": {"user": "postgres", "password": secrets.token_urlsafe(18)},
            "postgres_cdc": {"user": "debezium", "password": cdc},
        }
        db_file.parent.mkdir(parents=True, exist_ok=True)
        _process.write_private(db_file, json.dumps(logins, indent=2))
    logins = json.loads(db_file.read_text())
    return {
        "KAFKA_ADMIN_PASSWORD": users["admin"],
        "KAFKA_CONNECT_PASSWORD": users["connect"],
        "KAFKA_CONTROLLER_PASSWORD": users["controller"],
        "MARIADB_ROOT_PASSWORD": logins["mariadb_admin"]["password"],
        "POSTGRES_PASSWORD": logins["postgres_admin"]["password"],
        "DEBEZIUM_PASSWORD": logins["mariadb_cdc"]["password"],
    }


def _compose_extra_users(cfg: StackConfig) -> None:
    """SCRAM users beyond admin/connect (the compose broker formats only those two)."""
    from confluent_kafka.admin import AdminClient, ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion

    admin = AdminClient(flow.kafka_config(cfg, "admin"))
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192)
    passwords = kafka.passwords(cfg)
    upserts = [UserScramCredentialUpsertion(user, info, passwords[user].encode()) for user in EXTRA_KAFKA_USERS]
    for future in admin.alter_user_scram_credentials(upserts).values():  # type: ignore[arg-type]
        future.result(timeout=30)


@pytest.fixture(scope="session")
def docker_compose_file() -> str:
    return str(COMPOSE_FILE)


@pytest.fixture(scope="session")
def docker_compose_project_name() -> str:
    return "datapipe-cdk-it"


def _compose_stack(request: pytest.FixtureRequest) -> Iterator[DeployedStack]:
    reason = _docker_engine_reason()
    if reason:
        pytest.skip(reason)
    local = StackConfig()
    if _healthy():
        pytest.skip("the local (launcher) stack holds the same ports: run make stack-down to test the compose backend")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DATAPIPE_RUN_DIR", str(local.cache_dir / "run-compose"))
        # Connect runs beside the databases in compose: the connectors reach them by service name.
        env.setenv("DATAPIPE_MARIADB_ADDRESS", "mariadb:3306")
        env.setenv("DATAPIPE_POSTGRES_ADDRESS", "postgres:5432")
        yield from _compose_deployed(request)


def _compose_deployed(request: pytest.FixtureRequest) -> Iterator[DeployedStack]:
    cfg = StackConfig()
    # Stays set for the session: pytest-docker's `docker compose down` at the end interpolates them too.
    os.environ.update(_compose_secrets(cfg))
    docker_services: Any = request.getfixturevalue("docker_services")  # pytest-docker: compose up, down at the end
    docker_services.wait_until_responsive(check=lambda: _connect_answers(cfg), timeout=300.0, pause=2.0)
    _compose_extra_users(cfg)
    keyfile = cfg.run_dir / "gcp" / "service-account.json"
    keyfile.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["docker", "compose", "-f", str(COMPOSE_FILE), "-p", "datapipe-cdk-it", "cp",
                    "gcp-front:/run/datapipe/gcp/service-account.json", str(keyfile)], check=True, timeout=60)
    yield from _deployed_on(DeployedStack("compose", cfg, started=True, deployed=False))


def _connect_answers(cfg: StackConfig) -> bool:
    import requests

    try:
        return requests.get(cfg.connect_url, timeout=3).status_code == 200
    except requests.RequestException:
        return False
