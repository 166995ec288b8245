"""Fixtures of the integration tier: the local stack from a known state, and the examples deployed on it
the way any user deploys an app (``datapipe local sql`` for the schema, ``datapipe deploy --local``).

The tier starts with ``datapipe local reset``: whatever an earlier run left (a half-finished teardown,
stopped connectors, old passwords), this run starts clean, so one failed run never fails the next.
Missing prerequisites make the tests SKIP with the command that provides them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from datapipe_cdk import _toolchain
from datapipe_cdk.local import _process, bigquery, connect, kafka
from datapipe_cdk.local.config import StackConfig
from integration import flow

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_APP = ROOT / "stacks" / "main.py"
EXAMPLE_SQL = {
    "mariadb": ROOT / "stacks" / "sql" / "payments-mariadb.sql",
    "postgres": ROOT / "stacks" / "sql" / "payments-postgres.sql",
}
STACKS = ("payments", "ledger")


def datapipe(
    *args: str, timeout: float = 900.0, check: bool = True, env: dict[str, str] | None = None, answer: str = ""
) -> subprocess.CompletedProcess[str]:
    """Run the ``datapipe`` CLI as a user would (a separate process), echoing its output on failure. ``answer`` is
    what the user types when it asks (nothing by default: stdin is empty, never the terminal's)."""
    command = [sys.executable, "-m", "datapipe_cdk.cli", *args]
    environment = {**os.environ, **(env or {})}
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=environment, input=answer)
    if check and done.returncode != 0:
        raise AssertionError(f"datapipe {' '.join(args)} exited {done.returncode}:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return done


@dataclass
class DeployedStack:
    """The examples deployed on the local stack: where things listen and where their synth output is."""

    cfg: StackConfig
    out: Path

    def synthesized(self, stack: str) -> dict[str, Any]:
        import json

        return dict(json.loads((self.out / "stacks" / stack / "cdk.tf.json").read_text()))

    def resources(self, stack: str, kind: str) -> list[dict[str, Any]]:
        return list(self.synthesized(stack).get("resource", {}).get(kind, {}).values())

    def connector_names(self, stacks: tuple[str, ...] = STACKS) -> list[str]:
        return [str(c["name"]) for s in stacks for c in self.resources(s, "kafka-connect_connector")]

    def connect(self) -> Any:
        from datapipe_cdk.connect_api import ConnectClient

        return ConnectClient(self.cfg.connect_url, connect.REST_USER, connect.rest_password(self.cfg))


def missing_local_prerequisite(cfg: StackConfig) -> str | None:
    """Why the local stack cannot run here, with the command that fixes it; None when it can."""
    try:
        _process.jdk_tool("java")
    except _process.ServiceError:
        return "no Java 17+ in JAVA_HOME or on PATH: run datapipe local setup (installs openjdk-17 as root)"
    if not kafka.libs_dir(cfg).is_dir() or not connect.plugins_dir(cfg).is_dir():
        return f"Kafka/Connect jars missing in {cfg.stack_cache}: run datapipe local setup"
    try:
        _toolchain.check()
    except _toolchain.ToolchainError as error:
        return f"OpenTofu toolchain missing ({error}): run datapipe local setup"
    try:
        bigquery.python313()
    except _process.ServiceError as error:
        return f"no BigQuery emulator possible here: {error}"
    return None


@pytest.fixture(scope="session")
def local_stack() -> Iterator[StackConfig]:
    """The local stack, started from nothing (``reset``) and stopped by PID at the end."""
    cfg = StackConfig()
    reason = missing_local_prerequisite(cfg)
    if reason:
        pytest.skip(reason)
    datapipe("local", "reset", "--yes", timeout=300)
    try:
        datapipe("local", "up", timeout=900)
        yield StackConfig()
    finally:
        datapipe("local", "down", timeout=300, check=False)


@pytest.fixture(scope="session")
def deployed(local_stack: StackConfig, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeployedStack]:
    """Both example stacks deployed with ``datapipe deploy --local`` (their schema created as admin first);
    destroyed with ``datapipe destroy --local`` at the end."""
    out = tmp_path_factory.mktemp("examples") / "cdktf.out"
    datapipe("local", "sql", "--engine", "mariadb", "-f", str(EXAMPLE_SQL["mariadb"]))
    datapipe("local", "sql", "--engine", "postgres", "--database", "payments", "-f", str(EXAMPLE_SQL["postgres"]))
    app = ["--local", "--app", str(EXAMPLE_APP), "--out", str(out), "--auto-approve"]
    datapipe("deploy", *app)
    try:
        yield DeployedStack(local_stack, out)
    finally:
        datapipe("destroy", *app, check=False)


def docker_engine_reason() -> str | None:
    """None when ``docker compose`` can talk to an engine; else why not."""
    if shutil.which("docker") is None:
        return "no docker CLI on PATH (no Docker engine on this machine): the local backend covers the same tests"
    probe = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        detail = probe.stderr.strip().splitlines()[-1] if probe.stderr.strip() else "docker info failed"
        return f"Docker engine not reachable: {detail}"
    return None


__all__ = ["DeployedStack", "datapipe", "flow"]
