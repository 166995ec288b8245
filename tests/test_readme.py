"""The README cannot rot: its Python runs (and passes the policies), and every command it names exists."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from datapipe_cdk.cli import _parser, main

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
PYTHON_BLOCKS = [textwrap.dedent(b) for b in re.findall(r"```python\n(.*?)```", README, flags=re.S)]
APP_BLOCKS = [b for b in PYTHON_BLOCKS if "def build(" in b]


def test_the_readme_has_python_to_run() -> None:
    assert APP_BLOCKS


@pytest.mark.parametrize("index", range(len(PYTHON_BLOCKS)))
def test_each_python_block_compiles(index: int) -> None:
    compile(PYTHON_BLOCKS[index], f"README.md python block {index}", "exec")


@pytest.mark.parametrize("index", range(len(APP_BLOCKS)))
def test_each_python_block_synthesizes_and_passes_the_policies(
    index: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = tmp_path / "app.py"
    app.write_text(APP_BLOCKS[index])
    assert main(["synth", "--app", str(app), "--out", str(tmp_path / "cdktf.out")]) == 0, capsys.readouterr().err
    assert list((tmp_path / "cdktf.out" / "stacks").glob("*/cdk.tf.json"))


def test_every_datapipe_command_the_readme_names_exists() -> None:
    named = set(re.findall(r"`datapipe ([a-z-]+)", README)) | set(re.findall(r"datapipe ([a-z-]+)\|", README))
    parser = _parser()
    commands = {a for action in parser._subparsers._group_actions for a in action.choices}  # type: ignore[union-attr]
    assert named and not named - commands, f"the README names commands the CLI lacks: {sorted(named - commands)}"


def test_every_make_target_the_readme_names_exists() -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z-]+):", makefile, flags=re.M))
    named = set(re.findall(r"`make ([a-z-]+)`", README)) | set(
        re.findall(r"\(`(test-unit|test-cdktn|stack-up|stack-down)`", README)
    )
    assert named and not named - targets, f"the README names make targets the Makefile lacks: {sorted(named - targets)}"
