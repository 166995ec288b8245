"""What a stack deployed, read from its ``datapipe_manifest`` Terraform output.

Looked up by stack name, in this order: ``$DATAPIPE_MANIFEST`` (a JSON file, for a stack deployed
elsewhere), the stack's local Terraform state (see ``_state_files``; it holds the value that
``tofu output -json datapipe_manifest`` prints), ``tofu output`` itself for an initialised stack without
a local state file (remote backend), then the synthesized ``cdk.tf.json`` (before deploy), the local
profile's (``cdktf.out/local``) before the default one. Fields we read must be literal there;
only fields we never read may still be ``${...}`` expressions.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datapipe_cdk import _toolchain

OUTPUT_NAME = "datapipe_manifest"


class ManifestError(RuntimeError):
    """The manifest is missing or unusable; the message says what to run."""


@dataclass(frozen=True)
class ColumnPolicy:
    """A classified source column and what the connector does to it (``masked``, ``hashed``, ``excluded``)."""

    name: str
    classification: str | None
    info_type: str | None
    treatment: str | None


@dataclass(frozen=True)
class SourceTable:
    name: str
    primary_key: tuple[str, ...]
    topic: str
    columns: tuple[ColumnPolicy, ...]

    def policy(self, column: str) -> ColumnPolicy | None:
        return next((c for c in self.columns if c.name == column), None)

    @property
    def excluded(self) -> set[str]:
        """Columns the connector drops (treatment ``excluded``): they never leave the source."""
        return {c.name for c in self.columns if c.treatment == "excluded"}


@dataclass(frozen=True)
class Source:
    name: str
    engine: str
    host: str
    port: int
    database: str
    schema: str | None
    connector: str
    topic_prefix: str
    tables: tuple[SourceTable, ...]

    @property
    def is_postgres(self) -> bool:
        return self.engine in ("postgres", "postgresql")


@dataclass(frozen=True)
class SinkTable:
    source_table: str
    topic: str
    table: str
    primary_key: tuple[str, ...]


@dataclass(frozen=True)
class Sink:
    name: str
    connector: str
    dataset: str
    holds_pii: bool
    tables: tuple[SinkTable, ...]


@dataclass(frozen=True)
class View:
    name: str
    kind: str
    sink_dataset: str | None
    sink_table: str | None
    primary_key: tuple[str, ...]
    columns: tuple[str, ...] = ()
    """Columns a latest-state view chose to expose; empty means every column of its table."""


@dataclass(frozen=True)
class WarehouseSpec:
    name: str
    dataset: str
    holds_pii: bool
    views: tuple[View, ...]


@dataclass(frozen=True)
class KafkaEndpoint:
    bootstrap_servers: tuple[str, ...]
    security_protocol: str
    sasl_mechanism: str | None


@dataclass(frozen=True)
class BigQueryEndpoint:
    project: str
    location: str
    endpoint: str | None


@dataclass(frozen=True)
class Pipe:
    """One table's path: source table → topic → changelog table → latest-state view (if exposed)."""

    source: Source
    source_table: SourceTable
    sink: Sink
    sink_table: SinkTable
    warehouse: WarehouseSpec | None
    view: View | None

    @property
    def label(self) -> str:
        """``dataset.view`` of the latest-state view, else ``dataset.table`` of the changelog table."""
        if self.warehouse is not None and self.view is not None:
            return f"{self.warehouse.dataset}.{self.view.name}"
        return self.changelog_label

    @property
    def changelog_label(self) -> str:
        return f"{self.sink.dataset}.{self.sink_table.table}"

    @property
    def source_label(self) -> str:
        return f"{self.source.name}.{self.source_table.name}"


@dataclass(frozen=True)
class Manifest:
    stack: str
    kafka: KafkaEndpoint
    connect_url: str
    bigquery: BigQueryEndpoint
    sources: tuple[Source, ...]
    sinks: tuple[Sink, ...]
    warehouses: tuple[WarehouseSpec, ...]
    origin: str
    """Where it was read from (a file path and which part of it)."""

    def pipes(self) -> list[Pipe]:
        """Every captured table a sink writes (joined by topic), once per latest-state view that exposes
        it, or once with ``view=None`` when no view does."""
        by_topic = {t.topic: (s, t) for s in self.sources for t in s.tables}
        found = []
        for sink in self.sinks:
            for sink_table in sink.tables:
                if sink_table.topic not in by_topic:
                    continue
                source, source_table = by_topic[sink_table.topic]
                views = self._views_of(sink, sink_table) or [(None, None)]
                found += [Pipe(source, source_table, sink, sink_table, w, v) for w, v in views]
        return found

    def _views_of(self, sink: Sink, table: SinkTable) -> list[tuple[WarehouseSpec | None, View | None]]:
        return [
            (warehouse, view)
            for warehouse in self.warehouses
            for view in warehouse.views
            if view.kind == "latest_state" and (view.sink_dataset, view.sink_table) == (sink.dataset, table.table)
        ]


# --- parsing ------------------------------------------------------------------------------


def _literal(value: Any, where: str) -> Any:
    if isinstance(value, str) and "${" in value:
        raise ManifestError(
            f"manifest field {where} is still a Terraform expression ({value!r}); deploy the stack "
            "(cdktf deploy / tofu apply) and read it from the state"
        )
    return value


def _get(raw: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in raw:
        raise ManifestError(f"manifest has no {where}.{key}; re-run `cdktf synth` with the current datapipe_cdk")
    return _literal(raw[key], f"{where}.{key}")


def _opt(raw: Mapping[str, Any], key: str, where: str) -> Any:
    return _literal(raw.get(key), f"{where}.{key}")


def _source(raw: Mapping[str, Any], where: str) -> Source:
    tables = tuple(
        SourceTable(
            name=_get(t, "name", f"{where}.tables"),
            primary_key=tuple(_get(t, "primary_key", f"{where}.tables")),
            topic=_get(t, "topic", f"{where}.tables"),
            columns=tuple(
                ColumnPolicy(c["name"], c.get("classification"), c.get("info_type"), c.get("treatment"))
                for c in t.get("columns") or []
            ),
        )
        for t in _get(raw, "tables", where)
    )
    return Source(
        name=_get(raw, "name", where),
        engine=str(_get(raw, "engine", where)).lower(),
        host=_get(raw, "host", where),
        port=int(_get(raw, "port", where)),
        database=_get(raw, "database", where),
        schema=_opt(raw, "schema", where),
        connector=_get(raw, "connector", where),
        topic_prefix=_get(raw, "topic_prefix", where),
        tables=tables,
    )


def _sink(raw: Mapping[str, Any], where: str) -> Sink:
    return Sink(
        name=_get(raw, "name", where),
        connector=_get(raw, "connector", where),
        dataset=_get(raw, "dataset", where),
        holds_pii=bool(raw.get("holds_pii", True)),
        tables=tuple(
            SinkTable(
                source_table=_get(t, "source_table", f"{where}.tables"),
                topic=_get(t, "topic", f"{where}.tables"),
                table=_get(t, "table", f"{where}.tables"),
                primary_key=tuple(t.get("primary_key") or ()),
            )
            for t in _get(raw, "tables", where)
        ),
    )


def _warehouse(raw: Mapping[str, Any], where: str) -> WarehouseSpec:
    return WarehouseSpec(
        name=_get(raw, "name", where),
        dataset=_get(raw, "dataset", where),
        holds_pii=bool(raw.get("holds_pii", True)),
        views=tuple(
            View(
                name=_get(v, "name", f"{where}.views"),
                kind=str(v.get("kind", "custom")),
                sink_dataset=_opt(v, "sink_dataset", f"{where}.views"),
                sink_table=_opt(v, "sink_table", f"{where}.views"),
                primary_key=tuple(v.get("primary_key") or ()),
                columns=tuple(v.get("columns") or ()),
            )
            for v in raw.get("views") or []
        ),
    )


def parse_manifest(raw: Mapping[str, Any], origin: str = "<dict>", *, bigquery_endpoint: str | None = None) -> Manifest:
    """A ``Manifest`` from the output's JSON value; ``ManifestError`` names the first bad field.
    ``bigquery_endpoint``, when given, replaces the manifest's BigQuery endpoint (which is then not read)."""
    kafka = _get(raw, "kafka", "manifest")
    bigquery = _get(raw, "bigquery", "manifest")
    return Manifest(
        stack=_get(raw, "stack", "manifest"),
        kafka=KafkaEndpoint(
            bootstrap_servers=tuple(_get(kafka, "bootstrap_servers", "kafka")),
            security_protocol=str(kafka.get("security_protocol") or "PLAINTEXT"),
            sasl_mechanism=kafka.get("sasl_mechanism"),
        ),
        connect_url=_get(_get(raw, "connect", "manifest"), "url", "connect"),
        bigquery=BigQueryEndpoint(
            project=_get(bigquery, "project", "bigquery"),
            location=str(bigquery.get("location") or "US"),
            endpoint=bigquery_endpoint or _opt(bigquery, "endpoint", "bigquery"),
        ),
        sources=tuple(_source(s, f"sources[{i}]") for i, s in enumerate(raw.get("sources") or [])),
        sinks=tuple(_sink(s, f"sinks[{i}]") for i, s in enumerate(raw.get("sinks") or [])),
        warehouses=tuple(_warehouse(w, f"warehouses[{i}]") for i, w in enumerate(raw.get("warehouses") or [])),
        origin=origin,
    )


# --- locating -----------------------------------------------------------------------------


def project_dir(start: Path | None = None) -> Path:
    """The project root: ``$DATAPIPE_PROJECT_DIR``, else the nearest parent holding ``cdktf.json``."""
    if env := os.environ.get("DATAPIPE_PROJECT_DIR"):
        return Path(env)
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "cdktf.json").is_file():
            return candidate
    package_root = Path(__file__).resolve().parents[2]
    if (package_root / "cdktf.json").is_file():
        return package_root
    raise ManifestError(f"no cdktf.json in {here} or its parents; set DATAPIPE_PROJECT_DIR to the project root")


def stack_dirs(stack: str, root: Path) -> list[Path]:
    """Synthesized stack directories, most specific first: the local profile's ``<out>/local/stacks/<stack>``
    (what ``python -m integration.deploy`` deploys), then ``<out>/stacks/<stack>``; ``<out>`` comes from
    cdktf.json (default ``cdktf.out``)."""
    output = "cdktf.out"
    config = root / "cdktf.json"
    if config.is_file():
        output = json.loads(config.read_text()).get("output", output)
    return [root / output / "local" / "stacks" / stack, root / output / "stacks" / stack]


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
    done = subprocess.run([binary, "output", "-json", OUTPUT_NAME], cwd=directory, capture_output=True,
                          text=True, timeout=120, check=False)
    if done.returncode != 0 or not done.stdout.strip():
        return None
    return json.loads(done.stdout)


def load_manifest(stack: str, *, root: Path | None = None) -> Manifest:
    """The manifest of stack ``stack`` (deployed state first, synthesized JSON otherwise);
    ``$DATAPIPE_BIGQUERY_ENDPOINT`` overrides its BigQuery endpoint."""
    value, origin = _find_manifest(stack, root)
    return parse_manifest(value, origin, bigquery_endpoint=os.environ.get("DATAPIPE_BIGQUERY_ENDPOINT") or None)


def _find_manifest(stack: str, root: Path | None) -> tuple[Any, str]:
    """The manifest's raw JSON value and where it was found (see the module docstring for the order)."""
    if env := os.environ.get("DATAPIPE_MANIFEST"):
        path = Path(env)
        if not path.is_file():
            raise ManifestError(f"DATAPIPE_MANIFEST={env} is not a file; unset it or write the manifest JSON there")
        return json.loads(path.read_text()), f"{path}"
    base = root or project_dir()
    directories = stack_dirs(stack, base)
    for state in _state_files(directories, stack):
        if (value := _state_output(state)) is not None:
            return value, f"{state} (outputs.{OUTPUT_NAME})"
    for directory in directories:
        if (value := _tofu_output(directory)) is not None:
            return value, f"tofu output -json {OUTPUT_NAME} in {directory}"
    found = [d / "cdk.tf.json" for d in directories if (d / "cdk.tf.json").is_file()]
    if not found:
        raise ManifestError(f"no synthesized stack {stack!r} at {directories[-1] / 'cdk.tf.json'}; run `cdktf synth` in {base}")
    synthesized = found[0]
    value = _find_output(json.loads(synthesized.read_text()).get("output") or {})
    if value is None:
        raise ManifestError(f"{synthesized} has no output {OUTPUT_NAME!r}; is {stack!r} a DataPipelineStack?")
    if isinstance(value, str):
        raise ManifestError(
            f"{synthesized}: output {OUTPUT_NAME} is an expression ({value[:60]!r}); deploy the stack first"
        )
    return value, f"{synthesized} (output.{OUTPUT_NAME})"
