"""Self-serve microwarehouses (Stage 5): a team's short YAML file compiled into a ``MicroWarehouse``.

A team writes ``stacks/teams/<team>.yaml`` (validated against :data:`SCHEMA`, published as
``schemas/team.schema.json`` for editors); the stack compiles every file naming it. Every error
names the file, the line and what was expected. A request that breaks a policy is refused at synth
with the policy's message and the file and line that asked for it. PyYAML and jsonschema (the
``dev`` extra) are imported only when a file is compiled.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._core import path_of
from ._validate import _CONSTRUCT_ID
from .access import parse_time
from .errors import DatapipeError, has_unprintable, printable
from .governance import inventory
from .governance.policy import Violation
from .governance.state import Governance
from .principal import _EMAIL, Principal
from .schema import IDENTIFIER
from .warehouse import MicroWarehouse

if TYPE_CHECKING:
    from .stack import DataPipelineStack

SCHEMA_ID = "https://datapipe-cdk.dev/schemas/team.schema.json"
# JSON Schema patterns (ECMA-262), built from the constructs' own rules where they have one.
_MEMBER = rf"^(user|group|serviceAccount):{_EMAIL}$|^domain:[A-Za-z0-9.-]+\.[A-Za-z]{{2,}}$"
_IDENT = f"^{IDENTIFIER}$"
_CONSTRUCT = f"^{_CONSTRUCT_ID.pattern}$"
_TIMESTAMP = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$"

_PRINCIPAL = {
    "type": "string",
    "pattern": _MEMBER,
    "description": "a Google identity: user:, group: or serviceAccount:<e-mail>, or domain:<domain> (never public)",
}
SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": SCHEMA_ID,
    "title": "datapipe-cdk team microwarehouse",
    "description": "A team's own BigQuery dataset of latest-state views and SQL views, compiled into a MicroWarehouse.",
    "type": "object",
    "additionalProperties": False,
    "required": ["team", "stack", "owners", "tables"],
    "properties": {
        "team": {
            "type": "string",
            "pattern": "^[a-z][a-z0-9-]{1,62}$",
            "description": "the team's id: lowercase letters, digits and '-' (e.g. fraud-analytics)",
        },
        "stack": {
            "type": "string",
            "pattern": _CONSTRUCT,
            "description": "the pipeline stack this warehouse belongs to (e.g. payments)",
        },
        "description": {"type": "string", "maxLength": 16384, "description": "what the warehouse is for"},
        "dataset": {
            "type": "string",
            "pattern": "^[A-Za-z0-9_]{1,1024}$",
            "description": "BigQuery dataset id (default: the team id with '-' as '_')",
        },
        "owners": {"type": "array", "minItems": 1, "items": _PRINCIPAL, "description": "who owns the warehouse (at least one)"},
        "readers": {"type": "array", "items": _PRINCIPAL, "description": "who may query every view"},
        "retention_days": {
            "type": "integer",
            "minimum": 1,
            "maximum": 36500,
            "description": "days before a partition expires (required when holds_pii is true)",
        },
        "holds_pii": {"type": "boolean", "description": "true only if the warehouse may hold unmasked PII"},
        "holds_pii_approved_by": {
            **_PRINCIPAL,
            "description": "who approved holds_pii: an owner of every raw dataset it exposes (required with holds_pii)",
        },
        "tables": {
            "type": "array",
            "minItems": 1,
            "description": "exposed changelog tables, as latest-state views",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["sink", "table"],
                "properties": {
                    "sink": {
                        "type": "string",
                        "pattern": _CONSTRUCT,
                        "description": "the BigQuerySink's id in the stack (e.g. payments-raw)",
                    },
                    "table": {"type": "string", "pattern": _IDENT, "description": "the captured table's name (e.g. orders)"},
                    "columns": {
                        "type": "array",
                        "minItems": 1,
                        "uniqueItems": True,
                        "items": {"type": "string", "pattern": _IDENT, "description": "a column name"},
                        "description": "the columns the team needs (default: all the table carries)",
                    },
                    "as": {"type": "string", "pattern": _IDENT, "description": "the view's name (default: the table's)"},
                },
            },
        },
        "views": {
            "type": "array",
            "description": "the team's own SQL views; {{ ref('orders') }} names a view of this warehouse",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "sql"],
                "properties": {
                    "name": {"type": "string", "pattern": _IDENT, "description": "the view's name"},
                    "sql": {"type": "string", "minLength": 1, "description": "BigQuery standard SQL"},
                },
            },
        },
        "temporary_grants": {
            "type": "array",
            "description": "query access that expires (an IAM condition on request.time)",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["principal", "until"],
                "properties": {
                    "principal": _PRINCIPAL,
                    "until": {
                        "type": "string",
                        "pattern": _TIMESTAMP,
                        "description": "when access ends, as an RFC 3339 time (e.g. 2027-01-31T00:00:00Z)",
                    },
                },
            },
        },
    },
}


@dataclass(frozen=True)
class TeamSpec:
    """One validated team file, with the line of every element (for error messages)."""

    file: str
    data: Mapping[str, Any]
    lines: Mapping[tuple[str | int, ...], int]

    def at(self, *path: str | int) -> str:
        """``file:line`` of the element at ``path`` (or of its closest ancestor)."""
        key: tuple[str | int, ...] = tuple(path)
        while key and key not in self.lines:
            key = key[:-1]
        return f"{self.file}:{self.lines.get(key, 1)}"

    @property
    def team(self) -> str:
        return str(self.data["team"])

    @property
    def stack(self) -> str:
        return str(self.data["stack"])


def load(file: str | Path, *, display: str | None = None) -> TeamSpec:
    """Parse and validate one team file; raise ``DatapipeError("<file>:<line>", ...)`` if it is bad."""
    try:
        import jsonschema  # noqa: F401
        import yaml
    except ImportError:
        raise DatapipeError(str(file), "team files need PyYAML and jsonschema: run pip install -e '.[dev]'", str(file)) from None

    path = Path(file)
    name = display or str(file)
    text = _read(path, name)
    try:
        loader = _loader()(text)
        root = loader.get_single_node()
        if root is None:
            raise DatapipeError(f"{name}:1", "a team file must be a mapping with team, stack, owners and tables", "")
        lines: dict[tuple[str | int, ...], int] = {}
        _index(name, root, (), lines)
        data = loader.construct_document(root)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(error, "problem", None) or str(error)
        context = getattr(error, "context_mark", None)
        if context is not None and context.line + 1 != line:
            problem += f" ({getattr(error, 'context', None) or 'started'} at line {context.line + 1})"
        raise DatapipeError(f"{name}:{line}", f"is not valid YAML: {problem}", _line_text(text, line)) from None
    except (TypeError, RecursionError) as error:  # e.g. a list used as a mapping key
        raise DatapipeError(f"{name}:1", f"is not a plain YAML mapping of text, numbers and lists ({error})", "") from None
    spec = TeamSpec(name, data, lines)
    _validate(spec)
    return spec


def _refuse_unsafe_text(spec: TeamSpec, value: Any, path: tuple[str | int, ...] = ()) -> None:
    """No team key or value may hold Terraform template syntax (Terraform evaluates ``${...}`` and ``%{...}`` in
    every string it is given: a team file could read files or variables of the process running ``tofu plan``),
    nor control or format characters (escape sequences, bidi overrides: they reach descriptions and terminals)."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            _refuse_unsafe_text(spec, str(key), (*path, str(key)))
            _refuse_unsafe_text(spec, item, (*path, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _refuse_unsafe_text(spec, item, (*path, index))
    elif isinstance(value, str) and has_unprintable(value):
        raise DatapipeError(
            spec.at(*path),
            f"{printable(_dotted(path))}: control and format characters (escape sequences, bidi overrides, zero-width) "
            "are not allowed in team files: they would reach infrastructure and terminals; remove them",
            printable(value),
        )
    elif isinstance(value, str) and ("${" in value or "%{" in value):
        raise DatapipeError(
            spec.at(*path),
            f"{_dotted(path)}: '${{' and '%{{' are Terraform template syntax, which Terraform would evaluate; "
            "write them split, e.g. '$' || '{' in SQL",
            value,
        )


def _validate(spec: TeamSpec) -> None:
    import jsonschema

    _refuse_unsafe_text(spec, spec.data)
    validator = jsonschema.Draft202012Validator(SCHEMA)
    errors = sorted(validator.iter_errors(spec.data), key=lambda e: (spec.at(*e.absolute_path), list(e.absolute_path)))
    if not errors:
        return
    error = min(errors, key=lambda e: int(_location(spec, e).rsplit(":", 1)[1]))
    if error.validator == "required":  # a missing key next to an unknown one is almost always a misspelling
        unknown = [e for e in errors if e.validator == "additionalProperties" and e.absolute_path == error.absolute_path]
        error = unknown[0] if unknown else error
    where = _dotted(tuple(error.absolute_path)) or "file"
    expected = error.schema.get("description") if isinstance(error.schema, Mapping) else None
    rule = _explain(error)
    if expected and error.validator in ("pattern", "type", "enum", "minimum", "maximum", "minItems", "minLength"):
        rule += f" (expected {expected})"
    more = f"; {len(errors) - 1} more error(s) in this file" if len(errors) > 1 else ""
    raise DatapipeError(_location(spec, error), f"{where}: {rule}{more}", error.instance)


def _location(spec: TeamSpec, error: Any) -> str:
    """Where an error is: the unexpected key itself for unknown keys, else the element."""
    path = tuple(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
        extra = [k for k in error.instance if k not in error.schema.get("properties", {})]
        if extra:
            return spec.at(*path, extra[0])
    return spec.at(*path)


def _explain(error: Any) -> str:
    if error.validator == "additionalProperties":
        known = sorted(error.schema.get("properties", {}))
        unknown = [str(k) for k in error.instance if k not in known] if isinstance(error.instance, Mapping) else []
        close = difflib.get_close_matches(unknown[0], known, n=1) if unknown else []
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"{error.message}{hint} (allowed: {', '.join(known)})"
    if error.validator == "required":
        return error.message
    if error.validator == "pattern":
        return "has the wrong format"
    if error.validator == "type":
        return f"must be of type {error.validator_value}"
    return str(error.message)


def compile_team(stack: DataPipelineStack, spec: TeamSpec, *, deletion_protection: bool = True) -> MicroWarehouse:
    """Build the team's ``MicroWarehouse`` in ``stack``; construct errors are re-raised at the file's line.

    ``deletion_protection`` is the deployment's choice (off where stacks are torn down, e.g. a local stack).
    """
    data = spec.data
    team = spec.team
    if spec.stack != stack.node.id:
        raise DatapipeError(spec.at("stack"), f"this file is for stack {spec.stack!r}, not {stack.node.id!r}", spec.stack)
    sinks = {path_of(s).rpartition("/")[2]: s for s in inventory.sinks(stack)}
    with _at(spec, ()):
        owners = [_principal(spec, ("owners", i), p) for i, p in enumerate(data["owners"])]
        readers = [_principal(spec, ("readers", i), p) for i, p in enumerate(data.get("readers", []))]
    retention = timedelta(days=data["retention_days"]) if "retention_days" in data else None
    with _at(spec, ()):
        warehouse = MicroWarehouse(
            stack,
            team,
            owners=owners,
            readers=readers,
            dataset=data.get("dataset"),
            description=data.get("description") or f"Microwarehouse of team {team} ({spec.file})",
            labels={"team": team, "managed-by-spec": "team-yaml"},
            retention=retention,
            holds_pii=bool(data.get("holds_pii", False)),
            deletion_protection=deletion_protection,
        )
    governance = Governance.of(stack)
    governance.declare_origin(path_of(warehouse), spec.at())
    if data.get("holds_pii"):
        _check_pii_approval(spec, data, sinks)
    for i, entry in enumerate(data["tables"]):
        where = ("tables", i)
        sink = sinks.get(entry["sink"])
        if sink is None:
            raise DatapipeError(
                spec.at(*where, "sink"),
                f"no BigQuerySink with this id in stack {stack.node.id} (sinks: {', '.join(sorted(sinks)) or 'none'})",
                entry["sink"],
            )
        if entry["table"] not in {t.captured.name for t in sink.tables}:
            tables = ", ".join(t.captured.name for t in sink.tables)
            raise DatapipeError(
                spec.at(*where, "table"), f"sink {sink.node.id} has no such table (tables: {tables})", entry["table"]
            )
        table = sink.table(entry["table"])
        known = [c.name for c in table.columns]
        for j, column in enumerate(entry.get("columns", [])):
            if known and column not in known:
                raise DatapipeError(
                    spec.at(*where, "columns", j),
                    f"{entry['sink']}/{entry['table']} carries no such column (columns: {', '.join(known)})",
                    column,
                )
        with _at(spec, where):
            view = warehouse.expose(table, columns=entry.get("columns"), name=entry.get("as"))
        governance.declare_origin(path_of(view.resource), spec.at(*where))
    for i, entry in enumerate(data.get("views", [])):
        with _at(spec, ("views", i)):
            view = warehouse.add_view(entry["name"], entry["sql"])
        governance.declare_origin(path_of(view.resource), spec.at("views", i))
    for i, entry in enumerate(data.get("temporary_grants", [])):
        where = ("temporary_grants", i)
        until = _timestamp(spec, (*where, "until"), entry["until"])
        with _at(spec, where):
            warehouse.grant_query(_principal(spec, (*where, "principal"), entry["principal"]), until=until)
    return warehouse


def compile_teams(stack: DataPipelineStack, directory: str | Path, *, deletion_protection: bool = True) -> list[MicroWarehouse]:
    """Compile every ``*.yaml`` / ``*.yml`` team file in ``directory`` that names ``stack``.

    A file naming a stack the app does not have fails validation (``datapipe validate``, synth) with its
    file and line: a typo must not leave a team's warehouse silently uncreated.
    """
    folder = Path(directory)
    if not folder.is_dir():
        raise DatapipeError(str(folder), "team directory does not exist", str(folder))
    result = []
    specs = [load(file, display=_display(file)) for file in _team_files(folder)]
    for spec in specs:
        if spec.stack == stack.node.id:
            result.append(compile_team(stack, spec, deletion_protection=deletion_protection))
    key = ("team-directory", str(folder.resolve()))
    if key not in stack.app_claims:  # the first stack compiling the directory checks every file once
        stack.app_claims[key] = path_of(stack)
        Governance.of(stack).checks.append(lambda: _unknown_stacks(stack, specs))
    return result


def _team_files(folder: Path) -> list[Path]:
    """The team files of ``folder``: every ``*.yaml`` / ``*.yml`` (any case). Anything else but hidden files and
    READMEs is refused, so a file named ``team.yaml.txt`` or a subfolder never leaves a warehouse silently uncreated."""
    files = []
    for entry in sorted(folder.iterdir()):
        if entry.suffix.lower() in (".yaml", ".yml"):
            files.append(entry)
        elif not entry.name.startswith(".") and not entry.name.upper().startswith("README"):
            what = "folder" if entry.is_dir() else "file"
            raise DatapipeError(
                _display(entry),
                f"not a team file: the team directory holds only *.yaml / *.yml team files (and READMEs); "
                f"rename this {what} to <team>.yaml or move it out of {folder}",
                entry.name,
            )
    return files


def _check_pii_approval(spec: TeamSpec, data: Mapping[str, Any], sinks: Mapping[str, Any]) -> None:
    """A team cannot declare its own warehouse fit for PII: an owner of each raw dataset it reads must approve."""
    approver = data.get("holds_pii_approved_by")
    if approver is None:
        raise DatapipeError(
            spec.at("holds_pii"),
            "holds_pii: true needs holds_pii_approved_by: <an owner of the raw datasets it exposes> "
            "(a team cannot declare itself fit for unmasked PII)",
            True,
        )
    for i, entry in enumerate(data["tables"]):
        sink = sinks.get(entry["sink"])
        if sink is None:
            continue  # reported with its line when the table is exposed
        owners = {str(p) for p in sink.dataset.owners}
        if approver not in owners:
            raise DatapipeError(
                spec.at("holds_pii_approved_by"),
                f"holds_pii_approved_by must be an owner of {sink.dataset.dataset_id} (tables[{i}]): "
                f"its owners are {', '.join(sorted(owners)) or 'none'}",
                approver,
            )


def _unknown_stacks(stack: DataPipelineStack, specs: Sequence[TeamSpec]) -> list[Violation]:
    known = stack.app_stack_ids
    return [
        Violation(
            "team-file-stack",
            spec.at("stack"),
            f"names stack {spec.stack!r}, which this app does not have (stacks: {', '.join(known)}); fix the stack name",
        )
        for spec in specs
        if spec.stack not in known
    ]


def schema_json() -> str:
    """The published JSON Schema (``schemas/team.schema.json``)."""
    return json.dumps(SCHEMA, indent=2) + "\n"


class _at:
    """Re-raise a construct's DatapipeError at the team file's line, keeping its message."""

    def __init__(self, spec: TeamSpec, path: tuple[str | int, ...]) -> None:
        self._where = spec.at(*path)

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        if isinstance(error, DatapipeError) and not re.match(r".+\.ya?ml:\d+$", error.path):
            raise DatapipeError(self._where, f"{error.path}: {error.rule}", error.value) from None


def _principal(spec: TeamSpec, path: tuple[str | int, ...], member: str) -> Principal:
    try:
        return Principal.parse_iam_member(member)
    except DatapipeError as error:
        raise DatapipeError(spec.at(*path), error.rule, member) from None


def _timestamp(spec: TeamSpec, path: tuple[str | int, ...], text: str) -> datetime:
    try:
        return parse_time(text)
    except ValueError:
        raise DatapipeError(spec.at(*path), "until must be an RFC 3339 time such as 2027-01-31T00:00:00Z", text) from None


def _index(file: str, node: Any, path: tuple[str | int, ...], lines: dict[tuple[str | int, ...], int]) -> None:
    """Record the line of every element; refuse duplicate keys (YAML would silently keep the last)."""
    import yaml

    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = str(key.value)
            if name in seen:
                raise DatapipeError(f"{file}:{key.start_mark.line + 1}", f"{_dotted(path) or 'file'}: key is given twice", name)
            seen.add(name)
            lines[(*path, name)] = key.start_mark.line + 1
            _index(file, value, (*path, name), lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*path, i)] = item.start_mark.line + 1
            _index(file, item, (*path, i), lines)


MAX_TEAM_FILE_BYTES = 256 * 1024
"""A team file larger than this is refused (a warehouse declaration is a few kilobytes)."""


def _read(path: Path, name: str) -> str:
    """The text of a team file: a regular file (not a symlink, which could point at any file the
    process can read, e.g. secrets printed back in an error), at most ``MAX_TEAM_FILE_BYTES``, plain text."""
    if path.is_symlink() or not path.is_file():
        raise DatapipeError(
            name,
            "a team file must be a regular file in the team directory, not a symlink or a special file "
            "(its content would come from elsewhere); commit the file itself",
            str(path),
        )
    size = path.stat().st_size
    if size > MAX_TEAM_FILE_BYTES:
        raise DatapipeError(name, f"team file is {size} bytes, more than the limit of {MAX_TEAM_FILE_BYTES}", size)
    try:
        text = path.read_text(encoding="utf-8-sig")  # an editor's byte-order mark is not content
    except OSError as error:
        raise DatapipeError(name, f"cannot read team file ({error.strerror})", str(path)) from None
    except UnicodeDecodeError as error:
        raise DatapipeError(name, f"a team file must be UTF-8 text (byte {error.start} is not)", "") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if has_unprintable(line):
            raise DatapipeError(f"{name}:{number}", "a team file must be plain text: this line holds control characters", "")
    return text


def _loader() -> Any:
    """A safe loader that keeps timestamps as text (the schema, not YAML, decides what a time is) and
    refuses aliases (``*name``): a few lines of nested aliases expand to billions of nodes."""
    import yaml

    class Loader(yaml.SafeLoader):
        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise yaml.composer.ComposerError(
                    None, None, f"aliases (*{event.anchor}) are not allowed in team files: write the value out", event.start_mark
                )
            return super().compose_node(parent, index)

        def flatten_mapping(self, node: Any) -> None:
            for key, _ in node.value:
                if key.tag == "tag:yaml.org,2002:merge":
                    raise yaml.constructor.ConstructorError(
                        None, None, "merge keys (<<) are not allowed in team files: write every key out", key.start_mark
                    )
            super().flatten_mapping(node)

    Loader.add_constructor("tag:yaml.org,2002:timestamp", lambda loader, node: loader.construct_scalar(node))
    return Loader


def _dotted(path: Sequence[str | int]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _line_text(text: str, line: int) -> str:
    lines = text.splitlines()
    return lines[line - 1].strip() if 0 < line <= len(lines) else ""


def _display(file: Path) -> str:
    try:
        return str(file.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(file)
