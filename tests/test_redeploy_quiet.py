"""A deploy right after a destroy waits until BigQuery has forgotten the destroyed sinks' insertIds.

The sink's insertId is ``<topic>-<partition>-<offset>`` and a re-created topic restarts at offset 0: a row
written again inside the de-duplication window is silently dropped (seen in CI: a redeployed table lost the
row the destroyed one had held 40 s earlier). The live round trip is
``integration/test_change_safety.py::test_destroy_leaves_no_debris_and_a_redeploy_starts_cleanly``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from datapipe_cdk import deploy
from datapipe_cdk.deploy import DESTROY_MARK, REDEPLOY_QUIET, Runner, StackDir
from datapipe_cdk.manifest import OUTPUT_NAME, Manifest

GOLDEN = Path(__file__).parent / "golden" / "payments.json"


def _stack(directory: Path, *, sinks: bool = True) -> StackDir:
    synthesized = json.loads(GOLDEN.read_text())
    manifest = dict(synthesized["output"][OUTPUT_NAME]["value"])
    if not sinks:
        manifest["sinks"] = []
    return StackDir("payments", directory, synthesized, Manifest.from_dict(manifest, "golden"))


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(deploy.time, "sleep", slept.append)
    return slept


def _mark(directory: Path, stopped_at: Any) -> Path:
    mark = directory / DESTROY_MARK
    mark.write_text(json.dumps({"sinks_stopped_at": stopped_at}))
    return mark


def test_a_deploy_soon_after_destroy_waits_out_the_rest_of_the_window(tmp_path: Path, waits: list[float]) -> None:
    mark = _mark(tmp_path, time.time() - 100)
    lines: list[str] = []
    Runner(local=False, log=lines.append)._wait_after_destroy(_stack(tmp_path))
    assert len(waits) == 1 and REDEPLOY_QUIET[False] - 100 - 5 < waits[0] <= REDEPLOY_QUIET[False] - 100
    assert "insertId" in lines[0] and "waiting" in lines[0], lines
    assert not mark.exists(), "the mark is spent once waited out"


def test_no_wait_once_the_window_has_passed_or_without_a_destroy(tmp_path: Path, waits: list[float]) -> None:
    runner = Runner(local=False, log=lambda _: None)
    runner._wait_after_destroy(_stack(tmp_path))
    _mark(tmp_path, time.time() - REDEPLOY_QUIET[False] - 1)
    runner._wait_after_destroy(_stack(tmp_path))
    assert waits == []
    assert not (tmp_path / DESTROY_MARK).exists()


def test_an_unreadable_mark_waits_the_whole_window(tmp_path: Path, waits: list[float]) -> None:
    (tmp_path / DESTROY_MARK).write_text("{not json")
    Runner(local=False, log=lambda _: None)._wait_after_destroy(_stack(tmp_path))
    assert len(waits) == 1 and waits[0] > REDEPLOY_QUIET[False] - 5


def test_a_stack_without_sinks_never_waits(tmp_path: Path, waits: list[float]) -> None:
    _mark(tmp_path, time.time())
    Runner(local=False, log=lambda _: None)._wait_after_destroy(_stack(tmp_path, sinks=False))
    assert waits == []
