"""Toolchain tier: the real providers (built from their Go modules) accept every example stack."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from datapipe_cdk import _toolchain

from .test_examples import ROOT, _example_docs

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


@pytest.fixture(scope="module")
def cdktf_env() -> dict[str, str]:
    try:
        _toolchain.check(cdktf=True)
    except _toolchain.ToolchainError as error:
        pytest.skip(f"offline toolchain not built ({error})")
    return {**_toolchain.toolchain_env(), "DATAPIPE_PROFILE": "production"}


def test_cdktf_synth_at_the_repo_root_writes_both_stacks_where_asked(tmp_path: Path, cdktf_env: dict[str, str]) -> None:
    """The project-installed cdktf-cli runs cdktf.json's app and honours ``--output``."""
    outdir = tmp_path / "out"
    result = subprocess.run(
        ["cdktf", "synth", "--output", str(outdir)], cwd=ROOT, env=cdktf_env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"cdktf synth failed:\n{result.stdout}\n{result.stderr}"
    expected = _example_docs("production")
    assert sorted(p.name for p in (outdir / "stacks").iterdir()) == sorted(expected)
    for name, doc in expected.items():
        written = json.loads((outdir / "stacks" / name / "cdk.tf.json").read_text())
        for block in written["resource"].values():
            for resource in block.values():
                assert resource.pop("//")["metadata"]["path"].startswith(f"{name}/")
        assert written["resource"] == doc["resource"], name
        assert written["variable"] == doc["variable"], name
