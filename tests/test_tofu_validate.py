"""Toolchain tier: the real providers (built from their Go modules) accept every example stack."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from datapipe_cdk import _toolchain

from .test_examples import _example_docs

pytestmark = pytest.mark.toolchain


@pytest.fixture(scope="module")
def toolchain_env() -> dict[str, str]:
    try:
        _toolchain.check()
    except _toolchain.ToolchainError as error:
        pytest.skip(f"offline toolchain not built ({error})")
    return _toolchain.toolchain_env()


@pytest.mark.parametrize("profile", ["production", "local"])
def test_tofu_validate_accepts_the_example_stacks(tmp_path: Path, toolchain_env: dict[str, str], profile: str) -> None:
    for name, doc in _example_docs(profile).items():
        workdir = tmp_path / profile / name
        workdir.mkdir(parents=True)
        (workdir / "cdk.tf.json").write_text(json.dumps(doc))
        for command in (["init", "-backend=false", "-input=false", "-no-color"], ["validate", "-no-color", "-json"]):
            result = subprocess.run(["tofu", *command], cwd=workdir, env=toolchain_env, capture_output=True, text=True)
            assert result.returncode == 0, f"tofu {command[0]} failed for {profile}/{name}:\n{result.stdout}\n{result.stderr}"
        report = json.loads(result.stdout)
        assert report["valid"] is True, report["diagnostics"]
        assert report["error_count"] == 0
        shutil.rmtree(workdir / ".terraform", ignore_errors=True)
