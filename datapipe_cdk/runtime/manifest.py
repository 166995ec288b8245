"""What a stack deployed, read from its ``datapipe_manifest`` Terraform output.

The classes and the parsing are :mod:`datapipe_cdk.manifest`'s (one definition for the constructs that
write the manifest and the readers here; standard library only, so reading never starts cdktf). This
module finds the JSON and hands it to :meth:`Manifest.from_dict`.

Looked up by stack name, in this order:

1. ``manifest_path`` (argument) or ``$DATAPIPE_MANIFEST``: a file holding the manifest, for a stack deployed
   elsewhere. It may be the manifest's JSON itself, ``tofu output -json [datapipe_manifest]`` saved to a
   file, a Terraform state (``outputs.datapipe_manifest``) or a synthesized ``cdk.tf.json``.
2. What ``datapipe deploy --local`` saved for a stack on the local stack (``<run>/manifests/<stack>.json``;
   its state is encrypted), then the stack's local Terraform state (see ``_state_files``; it holds the
   value that ``tofu output -json datapipe_manifest`` prints).
3. ``tofu output`` itself for an initialised stack directory without a local state file (remote backend).
4. The synthesized ``cdk.tf.json`` (before deploy), the local target's (``<out>/local``) before the default.

Stack directories are ``<synth_dir>/[local/]stacks/<stack>`` when ``synth_dir`` (your app's synth output
folder, e.g. ``cdktf.out``; or one stack's directory) is given, else under the project directory
(``root``, ``$DATAPIPE_PROJECT_DIR`` or the nearest parent holding ``cdktf.json``). Fields we read must be
literal there; only fields we never read may still be ``${...}`` expressions.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from datapipe_cdk import _toolchain
from datapipe_cdk.manifest import (
    OUTPUT_NAME,
    BigQueryEndpoint,
    ColumnPolicy,
    ConnectEndpoint,
    KafkaEndpoint,
    Manifest,
    ManifestError,
    Pipe,
    Sink,
    SinkTable,
    Source,
    SourceTable,
    View,
    WarehouseSpec,
)

__all__ = [
    "OUTPUT_NAME",
    "BigQueryEndpoint",
    "ColumnPolicy",
    "ConnectEndpoint",
    "KafkaEndpoint",
    "Manifest",
    "ManifestError",
    "Pipe",
    "Sink",
    "SinkTable",
    "Source",
    "SourceTable",
    "View",
    "WarehouseSpec",
    "find_project_dir",
    "load_manifest",
    "project_dir",
    "read_manifest_file",
    "run_dir",
    "stack_dirs",
]

# --- locating -----------------------------------------------------------------------------


def find_project_dir(start: Path | None = None) -> Path | None:
    """``$DATAPIPE_PROJECT_DIR``, else the nearest parent of ``start`` (the working directory) holding
    ``cdktf.json``, else the checkout this package runs from (if it is one); None when there is none."""
    if env := os.environ.get("DATAPIPE_PROJECT_DIR"):
        return Path(env)
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "cdktf.json").is_file():
            return candidate
    package_root = Path(__file__).resolve().parents[2]
    if (package_root / "cdktf.json").is_file():  # running from a checkout; an installed package has none
        return package_root
    return None


def project_dir(start: Path | None = None) -> Path:
    """The project root: ``$DATAPIPE_PROJECT_DIR``, else the nearest parent holding ``cdktf.json``."""
    found = find_project_dir(start)
    if found is None:
        here = (start or Path.cwd()).resolve()
        raise ManifestError(
            f"no cdktf.json in {here} or its parents; set DATAPIPE_PROJECT_DIR to the project root, or name the "
            "manifest directly (manifest_path= / --manifest, synth_dir= / --synth-dir)"
        )
    return found


def _output_dir(root: Path) -> Path:
    """``<root>/<output>``: cdktf.json's ``output`` (default ``cdktf.out``)."""
    output = "cdktf.out"
    config = root / "cdktf.json"
    if config.is_file():
        output = json.loads(config.read_text()).get("output", output)
    return root / output


def stack_dirs(stack: str, root: Path) -> list[Path]:
    """Synthesized stack directories, most specific first: the local target's ``<out>/local/stacks/<stack>``
    (what ``python -m integration.deploy`` deploys), then ``<out>/stacks/<stack>``; ``<out>`` comes from
    cdktf.json (default ``cdktf.out``)."""
    return _synth_stack_dirs(stack, _output_dir(root))


def _synth_stack_dirs(stack: str, synth: Path) -> list[Path]:
    return [synth / "local" / "stacks" / stack, synth / "stacks" / stack]


def synth_dirs(stack: str, synth_dir: Path) -> list[Path]:
    """Stack directories under an explicit synth output folder: ``synth_dir`` itself when it is one stack's
    directory (holds ``cdk.tf.json``), ``stack_dirs`` when it is a project (holds ``cdktf.json``), else
    ``<synth_dir>/local/stacks/<stack>`` then ``<synth_dir>/stacks/<stack>``."""
    synth_dir = synth_dir.expanduser().resolve()
    if not synth_dir.is_dir():
        raise ManifestError(f"synth_dir {synth_dir} is not a directory; pass your app's synth output folder (cdktf.out)")
    if (synth_dir / "cdk.tf.json").is_file():
        return [synth_dir]
    if (synth_dir / "cdktf.json").is_file():
        return stack_dirs(stack, synth_dir)
    return _synth_stack_dirs(stack, synth_dir)


def _find_output(outputs: Mapping[str, Any]) -> Any | None:
    """The manifest output's value; cdktf may prefix logical ids, so a key ending in the name also counts."""
    for key, entry in outputs.items():
        if key == OUTPUT_NAME or key.endswith(f"_{OUTPUT_NAME}"):
            return entry.get("value") if isinstance(entry, Mapping) else None
    return None


def run_dir() -> Path:
    """The local stack's run directory: ``$DATAPIPE_RUN_DIR`` or ``~/.cache/datapipe-cdk/run``."""
    return Path(os.environ.get("DATAPIPE_RUN_DIR", Path.home() / ".cache" / "datapipe-cdk" / "run"))


def _state_files(directories: list[Path], stack: str) -> Iterator[Path]:
    """Local state files that may hold the stack's outputs, most specific first: ``$DATAPIPE_STATE`` (a
    file or a directory), ``$DATAPIPE_STATE_DIR/<stack>.tfstate`` (the stacks' LocalBackend), the local
    stack's ``<run>/terraform/<stack>.tfstate``, then cdktf's default files in each stack directory."""
    names = (f"{stack}.tfstate", f"terraform.{stack}.tfstate", "terraform.tfstate")
    candidates: list[Path] = []
    if env := os.environ.get("DATAPIPE_STATE"):
        path = Path(env)
        candidates += [path] if path.is_file() else [path / name for name in names]
    state_dir = Path(os.environ.get("DATAPIPE_STATE_DIR") or run_dir() / "terraform")
    candidates.append(state_dir / f"{stack}.tfstate")
    candidates += [d / name for d in directories for name in names[1:]]
    yield from (c for c in candidates if c.is_file() and c.stat().st_size > 0)


def _state_output(path: Path) -> Any | None:
    try:
        state = json.loads(path.read_text())
    except ValueError:
        return None
    return _find_output(state.get("outputs") or {}) if isinstance(state, dict) else None


def _tofu() -> str | None:
    """The Terraform-compatible CLI: ``$TERRAFORM_BINARY_NAME``, ``tofu`` on PATH, or the toolchain's."""
    for name in (os.environ.get("TERRAFORM_BINARY_NAME"), "tofu"):
        if name and (found := shutil.which(name)):
            return found
    built = _toolchain.bin_dir() / "tofu"
    return str(built) if built.is_file() else None


def _tofu_output(directory: Path) -> Any | None:
    """``tofu output -json datapipe_manifest`` in an initialised stack directory (remote backends)."""
    binary = _tofu()
    if binary is None or not (directory / ".terraform").is_dir():
        return None
    done = subprocess.run(
        [binary, "output", "-json", OUTPUT_NAME], cwd=directory, capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0 or not done.stdout.strip():
        return None
    return json.loads(done.stdout)


def read_manifest_file(path: str | os.PathLike[str]) -> tuple[Any, str]:
    """The manifest's raw JSON value in ``path`` and where in it: the manifest itself (``tofu output -json
    datapipe_manifest > file``), all outputs (``tofu output -json > file``), a Terraform state
    (``outputs.datapipe_manifest``) or a synthesized ``cdk.tf.json`` (``output.datapipe_manifest``)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise ManifestError(
            f"manifest file {file} does not exist; write the manifest JSON there "
            f"(tofu output -json {OUTPUT_NAME} > {file.name}) or pass another path"
        )
    try:
        raw = json.loads(file.read_text())
    except ValueError as exc:
        raise ManifestError(f"{file} is not JSON ({exc})") from exc
    if isinstance(raw, Mapping) and "stack" not in raw:
        for key, where in (("outputs", "outputs"), ("output", "output")):
            if isinstance(raw.get(key), Mapping):
                value = _find_output(raw[key])
                if value is None:
                    raise ManifestError(f"{file} has no {where}.{OUTPUT_NAME}; is it a DataPipelineStack's?")
                if isinstance(value, str):
                    raise ManifestError(
                        f"{file}: {where}.{OUTPUT_NAME} is an expression ({value[:60]!r}); deploy the "
                        "stack and read its state instead"
                    )
                return value, f"{file} ({where}.{OUTPUT_NAME})"
        if (value := _find_output(raw)) is not None:
            return value, f"{file} ({OUTPUT_NAME})"
    return raw, str(file)


def load_manifest(
    stack: str | None,
    *,
    root: Path | None = None,
    manifest_path: str | os.PathLike[str] | None = None,
    synth_dir: str | os.PathLike[str] | None = None,
) -> Manifest:
    """The manifest of stack ``stack`` (deployed state first, synthesized JSON otherwise);
    ``$DATAPIPE_BIGQUERY_ENDPOINT`` overrides its BigQuery endpoint.

    ``manifest_path`` names the file to read (then ``stack`` is not needed: a file describes one stack);
    ``synth_dir`` is the synth output folder to look in instead of the project's. Explicit arguments win
    over the environment (``manifest_path`` over ``$DATAPIPE_MANIFEST``; ``synth_dir`` over
    ``$DATAPIPE_MANIFEST`` and the project directory).
    """
    value, origin = _find_manifest(stack, root, manifest_path, synth_dir)
    return Manifest.from_dict(value, origin, bigquery_endpoint=os.environ.get("DATAPIPE_BIGQUERY_ENDPOINT") or None)


def _find_manifest(
    stack: str | None,
    root: Path | None,
    manifest_path: str | os.PathLike[str] | None,
    synth_dir: str | os.PathLike[str] | None,
) -> tuple[Any, str]:
    """The manifest's raw JSON value and where it was found (see the module docstring for the order)."""
    if manifest_path is not None:
        return read_manifest_file(manifest_path)
    env = os.environ.get("DATAPIPE_MANIFEST")
    if env and synth_dir is None:
        if not Path(env).is_file():
            raise ManifestError(f"DATAPIPE_MANIFEST={env} is not a file; unset it or write the manifest JSON there")
        return read_manifest_file(env)
    if not stack:
        raise ManifestError("name the stack (stack_name / --stack), or pass its manifest file (manifest_path / --manifest)")
    deployed_locally = run_dir() / "manifests" / f"{stack}.json"
    if synth_dir is None and deployed_locally.is_file():
        return read_manifest_file(deployed_locally)
    base = None if synth_dir is not None else (root or find_project_dir())
    directories = synth_dirs(stack, Path(synth_dir)) if synth_dir is not None else stack_dirs(stack, base) if base else []
    for state in _state_files(directories, stack):
        if (value := _state_output(state)) is not None:
            return value, f"{state} (outputs.{OUTPUT_NAME})"
    for directory in directories:
        if (value := _tofu_output(directory)) is not None:
            return value, f"tofu output -json {OUTPUT_NAME} in {directory}"
    hint = (
        "or pass the manifest (manifest_path= / --manifest: its JSON, a Terraform state or a cdk.tf.json) or "
        "your app's synth output folder (synth_dir= / --synth-dir)"
    )
    if not directories:
        raise ManifestError(
            f"no manifest for stack {stack!r}: no cdktf.json in {Path.cwd()} or its parents and no "
            f"deployed state found; run from your app's directory, set DATAPIPE_PROJECT_DIR, {hint}"
        )
    found = [d / "cdk.tf.json" for d in directories if (d / "cdk.tf.json").is_file()]
    if not found:
        where = base if base is not None else Path(str(synth_dir))
        raise ManifestError(
            f"no synthesized stack {stack!r} at {directories[-1] / 'cdk.tf.json'}; run `cdktf synth` in {where}, {hint}"
        )
    synthesized = found[0]
    value = _find_output(json.loads(synthesized.read_text()).get("output") or {})
    if value is None:
        raise ManifestError(f"{synthesized} has no output {OUTPUT_NAME!r}; is {stack!r} a DataPipelineStack?")
    if isinstance(value, str):
        raise ManifestError(f"{synthesized}: output {OUTPUT_NAME} is an expression ({value[:60]!r}); deploy the stack first")
    return value, f"{synthesized} (output.{OUTPUT_NAME})"
