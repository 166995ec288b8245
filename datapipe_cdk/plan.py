"""Classify a Terraform/OpenTofu plan by what each change does to a CDC pipeline.

Reads the JSON of ``tofu show -json <planfile>`` (format 1.x: ``resource_changes``, ``resource_drift``,
``output_changes``) and, optionally, the synthesized ``cdk.tf.json`` of the same stack, which maps each
address ``<type>.<logical id>`` to the construct path that produced it (``"//".metadata.path``) and
carries the ``datapipe_manifest`` output (which topics carry CDC tables, which connectors are sources,
which views are latest-state views). Without it the plan alone is used and paths are left empty (the
address is shown instead); a resource being deleted is absent from the new synth, so it has no path.
Standard library only: importing this module never starts cdktf or Node.

Classes, most severe first (one per change; ``also`` lists further classes of the same change):

``data-loss`` (risky; CLI name ``data-loss``, alias ``topic-recreation``)
    A ``kafka_topic`` deleted or replaced (name change, partition decrease, ...: read from
    ``replace_paths`` / ``action_reason``); a changelog ``google_bigquery_table`` (one without a
    ``view`` block) deleted or replaced; a ``google_bigquery_dataset`` deleted or replaced.
``re-snapshot`` (risky)
    A Debezium source whose offsets no longer apply: renamed (a replace forced by ``name``, or a source
    deleted and another created for the same database in one plan: new name = new offsets = full
    snapshot), ``topic.prefix`` changed, ``slot.name`` / ``publication.name`` changed (a new PostgreSQL
    slot), or ``snapshot.mode`` changed to a mode that reads the tables again (``always``,
    ``when_needed``, anything unknown). A change to ``initial`` / ``no_data`` / ``initial_only`` /
    ``recovery`` does not re-read data while offsets exist and is a ``connector-restart`` whose reason
    says what the mode does; any restart of a source already in mode ``always`` is a re-snapshot. A
    brand-new source is ``create`` (its first snapshot puts nothing at risk);
    a source re-created under the *same* name (tainted, replace by request, new address) keeps its
    offsets in Connect and is a ``connector-restart``. ``database.server.id`` is only the replication
    client id: ``connector-restart``.
``re-keying`` (risky)
    ``message.key.columns`` of a source changed; the partition count of a topic carrying a CDC table
    increased (keys move to other partitions); the ``PARTITION BY`` key of a latest-state view changed.
``new-table-needs-snapshot``
    ``table.include.list`` of a running source gained a table. Debezium streams the new table's changes
    from now on but does not read its existing rows by itself: an incremental snapshot (``execute-snapshot``
    signal) of that table reads them. With a signal channel (``signal.data.collection``, which every
    ``CdcSource`` has) ``datapipe deploy`` sends it for the added tables only; without one the reason says
    to send it. A separate class rather than ``re-snapshot``: the other tables are not re-read, the risk is
    the opposite (rows missing downstream), and adding tables is routine, so it is reported but not risky.
``reader-visible``
    A view deleted or replaced, or its query changed; a changelog table's schema changed in place.
``access-narrowed`` / ``access-replaced`` / ``access-widened``
    ``kafka_acl``, ``google_bigquery_dataset_access``, ``google_project_iam_member`` (and dataset IAM
    members) deleted / replaced / created. A replace is one ``access-replaced`` change, not a narrowed
    plus a widened one: these resources cannot be updated in place, so a role or expiry change is a
    delete and a create, and the reason says whether access goes missing in between (delete first) or
    which principal loses and which gains. An identical entry deleted at one address and created at
    another (a construct id changed without a ``moved`` block) is ``access-replaced`` on both rows.
``connector-restart``
    Any other connector config change: Connect restarts the connector, which resumes from its offsets.
``replace`` / ``delete`` / ``create`` / ``in-place`` / ``no-op``
    Everything else, by Terraform action (``in-place`` also covers moves, imports and ``forget``; a
    data source ``read`` is ``no-op``).
``drift``
    ``resource_drift`` entries (changes made outside Terraform), from :func:`classify_drift`; they are
    reported separately and never change the exit status.

``RISKY`` is ``{data-loss, re-snapshot, re-keying}``.

Exit status (for ``datapipe plan``; it follows ``tofu plan -detailed-exitcode``), from :func:`exit_status`:

* ``0`` (``NO_CHANGES``): nothing to apply (only no-ops; drift alone does not count);
* ``2`` (``CHANGES``): changes pending, none of a risky class unless allowed with
  ``--allow data-loss,re-snapshot,re-keying`` (any subset; see :func:`parse_allow`);
* ``3`` (``RISKY_CHANGES``): changes pending that include a risky class not allowed;
* ``1`` (``ERROR``): the plan could not be read or classified (:class:`PlanError`, bad JSON, an
  unknown ``--allow`` name, a plan that errored) - the caller maps exceptions to it.

Output changes (``output_changes``) count as changes, as they do for ``-detailed-exitcode``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DATA_LOSS = "data-loss"
RE_SNAPSHOT = "re-snapshot"
RE_KEYING = "re-keying"
NEW_TABLE = "new-table-needs-snapshot"
READER_VISIBLE = "reader-visible"
ACCESS_NARROWED = "access-narrowed"
ACCESS_REPLACED = "access-replaced"
ACCESS_WIDENED = "access-widened"
CONNECTOR_RESTART = "connector-restart"
REPLACE = "replace"
DELETE = "delete"
CREATE = "create"
IN_PLACE = "in-place"
NO_OP = "no-op"
DRIFT = "drift"

SEVERITY: tuple[str, ...] = (
    DATA_LOSS, RE_SNAPSHOT, RE_KEYING, NEW_TABLE, READER_VISIBLE, ACCESS_NARROWED, ACCESS_REPLACED,
    ACCESS_WIDENED, CONNECTOR_RESTART, REPLACE, DELETE, CREATE, IN_PLACE, NO_OP, DRIFT,
)  # fmt: skip
"""Every class, most severe first (the order of :func:`render_table`)."""
RISKY = frozenset({DATA_LOSS, RE_SNAPSHOT, RE_KEYING})
PATHS_OUTPUT = "datapipe_paths"
"""The stack output mapping each resource address to its construct path (see ``DataPipelineStack``)."""
ALLOW_NAMES: dict[str, str] = {
    "data-loss": DATA_LOSS,
    "topic-recreation": DATA_LOSS,
    "re-snapshot": RE_SNAPSHOT,
    "re-keying": RE_KEYING,
}
"""``--allow`` names and the risky class each one accepts."""

NO_CHANGES, ERROR, CHANGES, RISKY_CHANGES = 0, 1, 2, 3

ACCESS_TYPES = frozenset(
    {"kafka_acl", "google_bigquery_dataset_access", "google_project_iam_member", "google_bigquery_dataset_iam_member"}
)
_DEBEZIUM = "io.debezium.connector."
_HISTORY_PREFIX = "_schema-history."
_QUIET_SNAPSHOT_MODES = {
    "initial": "no snapshot while stored offsets exist",
    "no_data": "never snapshots table data",
    "schema_only": "never snapshots table data",
    "never": "never snapshots table data",
    "initial_only": "snapshots only without stored offsets, then stops streaming",
    "recovery": "rebuilds the schema history topic on the next start (no table data)",
    "schema_only_recovery": "rebuilds the schema history topic on the next start (no table data)",
}
_LOUD_SNAPSHOT_MODES = {
    "always": "the connector re-reads every table on each start",
    "when_needed": "the connector re-reads every table whenever its offsets are missing or no longer on the server",
}
_PARTITION_BY = re.compile(r"ROW_NUMBER\(\)\s+OVER\s*\(\s*PARTITION\s+BY\s+(.+?)\s+ORDER\s+BY", re.IGNORECASE | re.DOTALL)
_EXPIRY = re.compile(r'request\.time\s*<\s*timestamp\("([^"]+)"\)')


class PlanError(ValueError):
    """The input is not a usable plan (or an ``--allow`` name is unknown): exit status ``ERROR``."""


class _Marker:
    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


UNKNOWN = _Marker("(known after apply)")
SENSITIVE = _Marker("(sensitive)")


@dataclass(frozen=True)
class ClassifiedChange:
    """One planned change (or drift entry) and what it does to the pipeline."""

    address: str
    type: str
    path: str
    """The construct path from ``cdk.tf.json`` metadata; empty when unknown (e.g. the resource is deleted)."""
    actions: tuple[str, ...]
    cls: str
    reason: str
    also: tuple[str, ...] = ()
    """Further classes of the same change (the exit status considers them too)."""

    @property
    def classes(self) -> tuple[str, ...]:
        return (self.cls, *self.also)

    @property
    def action(self) -> str:
        """Terraform's symbol and verb: ``-/+ replace``, ``~ update``, ``+ create``, ..."""
        return _ACTION_LABELS.get(self.actions, ",".join(self.actions))

    @property
    def where(self) -> str:
        """The construct path, or the address when the path is unknown."""
        return self.path or self.address

    @property
    def is_change(self) -> bool:
        return self.cls not in (NO_OP, DRIFT)

    def as_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "type": self.type,
            "path": self.path,
            "actions": list(self.actions),
            "class": self.cls,
            "also": list(self.also),
            "risky": sorted(set(self.classes) & RISKY),
            "reason": self.reason,
        }


_ACTION_LABELS = {
    ("no-op",): "no-op",
    ("create",): "+ create",
    ("update",): "~ update",
    ("delete",): "- delete",
    ("delete", "create"): "-/+ replace",
    ("create", "delete"): "+/- replace",
    ("read",): "<= read",
    ("forget",): "forget",
}


# ---------------------------------------------------------------------------------------------- public API


def load_json(path: str | Path, what: str = "plan") -> dict[str, Any]:
    """Read a JSON file (a plan from ``tofu show -json``, or ``cdk.tf.json``); :class:`PlanError` if unusable."""
    file = Path(path)
    if file.is_dir():
        file = file / "cdk.tf.json"
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise PlanError(f"{file}: not found") from error
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PlanError(f"{file}: not a JSON {what} ({error}); write one with `tofu show -json <planfile>`") from error
    if not isinstance(data, dict):
        raise PlanError(f"{file}: a {what} must be a JSON object")
    return data


def classify(
    plan_json: Mapping[str, Any],
    synthesized: Mapping[str, Any] | None = None,
    deployed_paths: Mapping[str, str] | None = None,
) -> list[ClassifiedChange]:
    """Every entry of ``resource_changes`` (and every changed output), most severe first.

    ``synthesized`` is the stack's ``cdk.tf.json`` (paths and the manifest); without it only the plan is read.
    ``deployed_paths`` (the deployed stack's ``datapipe_paths`` output, read before planning: a plan's own
    prior state already holds the new configuration's outputs) names the constructs of deleted resources.
    """
    _check_plan(plan_json)
    context = _Context(plan_json, synthesized, deployed_paths)
    found = [_classify(rc, context) for rc in _entries(plan_json, "resource_changes")]
    for name, output in sorted((plan_json.get("output_changes") or {}).items()):
        # OpenTofu writes the change itself ({"actions": [...], ...}); the format docs show it under "change"
        output = output if isinstance(output, Mapping) else {}
        change = output["change"] if isinstance(output.get("change"), Mapping) else output
        actions = tuple(change.get("actions") or ("no-op",))
        if actions != ("no-op",):
            cls = {("create",): CREATE, ("delete",): DELETE}.get(actions, IN_PLACE)
            what = " (the pipeline description notebooks and tools read)" if name == "datapipe_manifest" else ""
            found.append(ClassifiedChange(f"output.{name}", "output", "", actions, cls, f"output {name} changes{what}"))
    return _sorted(found)


def classify_drift(
    plan_json: Mapping[str, Any],
    synthesized: Mapping[str, Any] | None = None,
    deployed_paths: Mapping[str, str] | None = None,
) -> list[ClassifiedChange]:
    """The ``resource_drift`` entries: what changed outside Terraform since the last apply (class ``drift``)."""
    _check_plan(plan_json)
    context = _Context(plan_json, synthesized, deployed_paths)
    found = []
    for rc in _entries(plan_json, "resource_drift"):
        change = rc.get("change") or {}
        actions = tuple(change.get("actions") or ("no-op",))
        if "delete" in actions and not change.get("after"):
            reason = "deleted outside Terraform: this plan creates it again"
        else:
            configured = context.configured.get(str(rc.get("address")))
            keys = [k for k in _changed_keys(change, None) if configured is None or k in configured]
            if not keys:  # only attributes the stack does not set moved (row counts, etags, refreshed reads)
                continue
            reason = "changed outside Terraform: " + "; ".join(_describe_diff(change, key) for key in keys)
        found.append(ClassifiedChange(rc.get("address", "?"), rc.get("type", "?"), context.path(rc), actions, DRIFT, reason))
    return sorted(found, key=lambda c: c.where)


def parse_allow(allow: str | Iterable[str] | None) -> frozenset[str]:
    """``"data-loss,re-snapshot"`` (or a list of such strings) -> the risky classes it accepts."""
    if allow is None:
        return frozenset()
    items = [allow] if isinstance(allow, str) else list(allow)
    names = [name.strip() for item in items for name in item.split(",") if name.strip()]
    unknown = [name for name in names if name not in ALLOW_NAMES]
    if unknown:
        raise PlanError(f"--allow: unknown {', '.join(unknown)} (choose from {', '.join(ALLOW_NAMES)})")
    return frozenset(ALLOW_NAMES[name] for name in names)


def blocking(changes: Iterable[ClassifiedChange], allow: str | Iterable[str] | None = None) -> list[ClassifiedChange]:
    """The changes with a risky class that ``allow`` does not accept."""
    allowed = parse_allow(allow)
    return [c for c in changes if c.is_change and (set(c.classes) & RISKY) - allowed]


def exit_status(changes: Iterable[ClassifiedChange], allow: str | Iterable[str] | None = None) -> int:
    """``NO_CHANGES`` (0), ``CHANGES`` (2) or ``RISKY_CHANGES`` (3); see the module docstring."""
    pending = [c for c in changes if c.is_change]
    if not pending:
        return NO_CHANGES
    return RISKY_CHANGES if blocking(pending, allow) else CHANGES


def render_table(
    changes: Sequence[ClassifiedChange],
    drift: Sequence[ClassifiedChange] = (),
    allow: str | Iterable[str] | None = None,
    *,
    show_no_op: bool = False,
) -> str:
    """Fixed-width columns: class, action, path (or address), reason; ``!`` marks a risky change not allowed.

    No-ops are counted, not listed, unless ``show_no_op``. Drift follows in its own section.
    """
    allowed = parse_allow(allow)
    blocked = {id(c) for c in blocking(changes, allowed)}
    shown = [c for c in changes if show_no_op or c.is_change]
    lines: list[str] = []
    if shown:
        lines += _table(shown, blocked)
    unchanged = sum(1 for c in changes if c.cls == NO_OP)
    pending = [c for c in changes if c.is_change]
    counts: dict[str, int] = {}
    for change in pending:
        counts[change.cls] = counts.get(change.cls, 0) + 1
    summary = ", ".join(f"{counts[cls]} {cls}" for cls in SEVERITY if cls in counts)
    lines.append("")
    lines.append(
        f"{len(pending)} change(s): {summary}; {unchanged} unchanged." if pending else f"No changes ({unchanged} unchanged)."
    )
    if blocked:
        risky = sorted({cls for c in changes if id(c) in blocked for cls in c.classes if cls in RISKY - allowed})
        names = ",".join(name for name, cls in ALLOW_NAMES.items() if cls in risky and name != "topic-recreation")
        lines.append(f"Risky, not allowed (!): {', '.join(risky)}. Review them; accept with --allow {names}.")
    if drift:
        lines += ["", "Changed outside Terraform (drift, does not change the exit status):", *_table(drift, set())]
    return "\n".join(lines).lstrip("\n") + "\n"


def report(
    changes: Sequence[ClassifiedChange],
    drift: Sequence[ClassifiedChange] = (),
    allow: str | Iterable[str] | None = None,
) -> dict[str, Any]:
    """The ``--json`` document: exit status, blocking addresses, every change and every drift entry."""
    allowed = parse_allow(allow)
    return {
        "exit_status": exit_status(changes, allowed),
        "allowed": sorted(allowed),
        "blocking": [c.address for c in blocking(changes, allowed)],
        "changes": [c.as_dict() for c in changes],
        "drift": [c.as_dict() for c in drift],
    }


# ---------------------------------------------------------------------------------------------- context


def _check_plan(plan: Any) -> None:
    if not isinstance(plan, Mapping):
        raise PlanError("a plan must be a JSON object (the output of `tofu show -json <planfile>`)")
    version = str(plan.get("format_version") or "")
    if not version:
        raise PlanError("not a plan: no format_version (expected the output of `tofu show -json <planfile>`)")
    if version.split(".")[0] != "1":
        raise PlanError(f"plan format_version {version} is not supported (1.x is)")
    if "values" in plan and "planned_values" not in plan and "resource_changes" not in plan:
        raise PlanError("this is a state, not a plan: run `tofu plan -out=<planfile>` then `tofu show -json <planfile>`")
    if plan.get("errored"):
        raise PlanError("the plan errored and cannot be applied: fix the errors `tofu plan` printed first")


def _entries(plan: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    entries = plan.get(key) or []
    if not isinstance(entries, list):
        raise PlanError(f"plan {key} must be a list")
    return [e for e in entries if isinstance(e, Mapping)]


class _Context:
    """What the plan and the synthesized stack tell about the pipeline, beyond one change."""

    def __init__(
        self, plan: Mapping[str, Any], synthesized: Mapping[str, Any] | None, deployed_paths: Mapping[str, str] | None = None
    ) -> None:
        stack = synthesized or {}
        self.resources: Mapping[str, Any] = stack.get("resource") or {}
        manifest = ((stack.get("output") or {}).get("datapipe_manifest") or {}).get("value") or {}
        self.cdc_topics: dict[str, str] = {}
        self.source_connectors: set[str] = set()
        for source in manifest.get("sources") or []:
            self.source_connectors.add(str(source.get("connector") or source.get("name")))
            for table in source.get("tables") or []:
                self.cdc_topics[str(table.get("topic"))] = f"{source.get('database')}.{table.get('name')}"
        self.latest_views = {
            (str(w.get("dataset")), str(v.get("name")))
            for w in manifest.get("warehouses") or []
            for v in w.get("views") or []
            if v.get("kind") == "latest_state"
        }
        self.deployed_paths: Mapping[str, str] = deployed_paths or {}
        """Address -> construct path, as the deployed stack recorded them (its ``datapipe_paths`` output)."""
        self.configured = {
            str(r.get("address")): set((r.get("expressions") or {}).keys())
            for r in ((plan.get("configuration") or {}).get("root_module") or {}).get("resources") or []
        }
        changes = _entries(plan, "resource_changes")
        self.prefixes: set[str] = set()
        self.history_topics: set[str] = set()
        for rc in changes:
            for side in ("before", "after"):
                config = _config(rc, side)
                if _is_debezium(config):
                    if isinstance(config.get("topic.prefix"), str):
                        self.prefixes.add(config["topic.prefix"] + ".")
                    if isinstance(config.get("schema.history.internal.kafka.topic"), str):
                        self.history_topics.add(config["schema.history.internal.kafka.topic"])
        self.twin: dict[str, Mapping[str, Any]] = {}
        """A delete and a create of the same object (same identity) at two addresses: each maps to the other."""
        self.renamed: dict[str, Mapping[str, Any]] = {}
        """A deleted source and a created source reading the same database under another name."""
        deleted = [rc for rc in changes if _actions(rc) == ("delete",) and not rc.get("deposed")]
        created = [rc for rc in changes if _actions(rc) == ("create",)]
        for new in created:
            for old in deleted:
                if old.get("type") != new.get("type") or old["address"] in self.twin or old["address"] in self.renamed:
                    continue
                if _identity(old, "before") == _identity(new, "after"):
                    self.twin[old["address"]], self.twin[new["address"]] = new, old
                    break
                if self.is_source(old, "before") and self.is_source(new, "after"):
                    if _database(_config(old, "before")) == _database(_config(new, "after")) != ():
                        self.renamed[old["address"]], self.renamed[new["address"]] = new, old
                        break

    def path(self, rc: Mapping[str, Any]) -> str:
        """The construct path of a change: from the new synth, else (a deleted resource) from the paths the
        previous deployment recorded in its ``datapipe_paths`` output."""
        if rc.get("module_address"):
            return ""
        resource = (self.resources.get(str(rc.get("type"))) or {}).get(str(rc.get("name"))) or {}
        found = ((resource.get("//") or {}).get("metadata") or {}).get("path")
        return str(found or self.deployed_paths.get(str(rc.get("address")), ""))

    def is_source(self, rc: Mapping[str, Any], side: str) -> bool:
        if rc.get("type") != "kafka-connect_connector":
            return False
        values = _values(rc, side)
        return _is_debezium(_config(rc, side)) or values.get("name") in self.source_connectors

    def cdc_table(self, topic: Any) -> str | None:
        """The captured table a topic carries (``database.table``), or None."""
        if not isinstance(topic, str):
            return None
        if topic in self.cdc_topics:
            return self.cdc_topics[topic]
        if self.cdc_topics or topic in self.history_topics or topic.startswith(_HISTORY_PREFIX):
            return None
        prefix = next((p for p in self.prefixes if topic.startswith(p)), None)
        return topic[len(prefix) :] if prefix else None


# ---------------------------------------------------------------------------------------------- classification


def _classify(rc: Mapping[str, Any], context: _Context) -> ClassifiedChange:
    change = rc.get("change") or {}
    actions = _actions(rc)
    kind = _kind(actions)
    type_ = str(rc.get("type", "?"))
    address = str(rc.get("address", "?"))

    def result(classes: Sequence[str], reason: str) -> ClassifiedChange:
        ordered = sorted(dict.fromkeys(classes), key=SEVERITY.index)
        extra = [c for c in ordered[1:] if c in RISKY or c in (NEW_TABLE, CONNECTOR_RESTART)]
        if rc.get("deposed"):
            reason = f"deposed object {rc['deposed']} (left by an earlier create_before_destroy): {reason}"
        return ClassifiedChange(address, type_, context.path(rc), actions, ordered[0], reason, tuple(extra))

    if rc.get("mode") == "data" or kind == "read":
        return result([NO_OP], "data source read during apply")
    if kind == "forget":
        return result([IN_PLACE], "removed from state only: the object is kept, no longer managed")
    if kind == "no-op":
        if rc.get("previous_address"):
            return result([IN_PLACE], f"moved from {rc['previous_address']}: state address only, the object is unchanged")
        if change.get("importing"):
            return result([IN_PLACE], "imported into state, unchanged")
        return result([NO_OP], "unchanged")
    handler = _HANDLERS.get(type_)
    if type_ in ACCESS_TYPES:
        handler = _access
    classes, reason = handler(rc, change, kind, context) if handler else _generic(rc, change, kind, context)
    if rc.get("previous_address"):
        reason += f" (moved from {rc['previous_address']})"
    return result([classes] if isinstance(classes, str) else classes, reason)


Verdict = tuple["str | list[str]", str]
"""A handler's classes (one, or several for one change) and its one-line reason."""


def _topic(rc: Mapping[str, Any], change: Mapping[str, Any], kind: str, context: _Context) -> Verdict:
    before, after = _values(rc, "before"), _values(rc, "after")
    name = after.get("name") or before.get("name")
    table = context.cdc_table(name)
    label = f"topic {name}" + (f" ({table})" if table else "")
    history = ""
    if isinstance(name, str) and (name in context.history_topics or name.startswith(_HISTORY_PREFIX)):
        history = "; it is a schema history topic: the source cannot restart without snapshot.mode=recovery"
    if kind == "create":
        twin = context.twin.get(rc["address"])
        again = f"; it re-creates the topic deleted at {twin['address']}" if twin else ""
        return (
            CREATE,
            f"new {label}: {after.get('partitions')} partition(s), replication {after.get('replication_factor')}{again}",
        )
    if kind == "delete":
        return DATA_LOSS, f"{label} is deleted with its data{history}{_twin_note(rc, context)}"
    if kind == "replace":
        return DATA_LOSS, f"{_replace_why(rc, change)} forces replacement: {label} and its data are deleted{history}"
    classes: list[str] = [IN_PLACE]
    notes: list[str] = []
    for key in _changed_keys(change, context.configured.get(rc["address"])):
        old, new = _diff(change, key)
        if key == "partitions" and isinstance(old, int) and isinstance(new, int):
            if new > old and table:
                classes.append(RE_KEYING)
                notes.append(
                    f"partitions {old} -> {new}: keys of {table} move to other partitions, where their offsets restart "
                    "lower; latest-state views order a key's events by offset, so its newer events would lose to older "
                    "ones (keep the count, or recreate the topic, sink tables and state with a new snapshot)"
                )
            else:
                notes.append(f"partitions {old} -> {new}")
        elif key == "config":
            notes += [_topic_config_note(k, o, n) for k, o, n in _map_diff(change, "config")]
        else:
            notes.append(_describe_diff(change, key))
    return classes, f"{label}: " + ("; ".join(notes) or "attributes change in place")


def _topic_config_note(key: str, old: Any, new: Any) -> str:
    note = f"{key} {_fmt(old)} -> {_fmt(new)}"
    if key in ("retention.ms", "retention.bytes") and _shorter(old, new):
        note += " (older records are deleted)"
    return note


def _connector(rc: Mapping[str, Any], change: Mapping[str, Any], kind: str, context: _Context) -> Verdict:
    side = "before" if kind == "delete" else "after"
    name = _values(rc, side).get("name")
    if context.is_source(rc, side) or context.is_source(rc, "before"):
        return _source(rc, change, kind, context, name)
    label = f"sink connector {name}"
    if kind == "create":
        if rc["address"] in context.twin:
            return CONNECTOR_RESTART, f"{label} re-created at a new address under the same name: its consumer group resumes"
        return CREATE, f"new {label}: it reads its topics from the earliest retained offset"
    if kind == "delete":
        if rc["address"] in context.twin:
            return (
                CONNECTOR_RESTART,
                f"{label} re-created at {context.twin[rc['address']]['address']} "
                "(same name: its consumer group keeps its offsets)",
            )
        return DELETE, f"{label} is deleted: its tables stop receiving changes"
    if kind == "replace":
        old, new = _values(rc, "before").get("name"), _values(rc, "after").get("name")
        if old != new:
            return CONNECTOR_RESTART, (
                f"name {old} -> {new} forces replacement: the new consumer group connect-{new} re-reads its topics from "
                "the earliest retained offset (duplicate rows in the changelog tables)"
            )
        return CONNECTOR_RESTART, f"{label} re-created ({_replace_why(rc, change)}): its consumer group keeps its offsets"
    notes = [_config_note(k, o, n) for k, o, n in _connector_diffs(change)]
    return CONNECTOR_RESTART, f"{label} restarts: " + ("; ".join(notes) or "attributes change")


def _source(rc: Mapping[str, Any], change: Mapping[str, Any], kind: str, context: _Context, name: Any) -> Verdict:
    address = rc["address"]
    before_config, after_config = _config(rc, "before"), _config(rc, "after")
    label = f"source {name}"
    if kind == "create":
        if address in context.renamed:
            old = context.renamed[address]
            old_name = _values(old, "before").get("name")
            return RE_SNAPSHOT, (
                f"replaces source {old_name} (deleted at {old['address']}) for the same database under a new name: new "
                "name = new offsets = full snapshot of every table"
            )
        if address in context.twin:
            return (
                CONNECTOR_RESTART,
                f"{label} re-created at a new address under the same name: Connect keeps its offsets, it resumes",
            )
        tables = ", ".join(_include_list(after_config.get("table.include.list"))) or "its tables"
        mode = after_config.get("snapshot.mode", "initial")
        return (
            CREATE,
            f"new Debezium {label}: its first start snapshots {tables} (snapshot.mode {mode}); nothing existing is re-read",
        )
    if kind == "delete":
        slot = ""
        if "postgres" in str(before_config.get("connector.class", "")).lower():
            slot = (
                f"; its replication slot {before_config.get('slot.name', '?')} stays on the server and retains WAL until dropped"
            )
        if address in context.renamed:
            new = context.renamed[address]
            return DELETE, f"{label} is deleted; source {_values(new, 'after').get('name')} replaces it ({new['address']}){slot}"
        if address in context.twin:
            return (
                CONNECTOR_RESTART,
                f"{label} re-created at {context.twin[address]['address']} under the same name: Connect keeps its offsets",
            )
        return DELETE, f"{label} stops: Connect keeps its offsets (re-adding it under the same name resumes){slot}"
    classes, notes = _source_config(change, after_config.get("signal.data.collection"))
    if kind == "replace":
        old_name, new_name = _values(rc, "before").get("name"), _values(rc, "after").get("name")
        if old_name != new_name:
            classes.append(RE_SNAPSHOT)
            notes.insert(
                0, f"name {old_name} -> {new_name} forces replacement: new name = new offsets = full snapshot of every table"
            )
        else:
            classes.append(CONNECTOR_RESTART)
            notes.insert(0, f"re-created under the same name ({_replace_why(rc, change)}): Connect keeps its offsets, it resumes")
    if after_config.get("snapshot.mode") == "always" and RE_SNAPSHOT not in classes:
        classes.append(RE_SNAPSHOT)
        notes.append("snapshot.mode is always: this restart re-reads every table")
    return classes or [CONNECTOR_RESTART], f"{label}: " + ("; ".join(notes) or "attributes change, it restarts")


def _source_config(change: Mapping[str, Any], signal_table: Any = None) -> tuple[list[str], list[str]]:
    """(classes, notes) of a source's config changes (``signal_table``: its ``signal.data.collection``, if any)."""
    classes: list[str] = []
    notes: list[str] = []
    restart: list[str] = []
    for key, old, new in _connector_diffs(change):
        if key == "topic.prefix":
            classes.append(RE_SNAPSHOT)
            notes.append(
                f"topic.prefix {_fmt(old)} -> {_fmt(new)}: offsets and topic names are keyed by it, every table is "
                "snapshotted again into new topics"
            )
        elif key == "snapshot.mode":
            effect = _QUIET_SNAPSHOT_MODES.get(str(new))
            if effect is None:
                classes.append(RE_SNAPSHOT)
                effect = _LOUD_SNAPSHOT_MODES.get(str(new), "check when this mode re-reads the tables")
            notes.append(f"snapshot.mode {_fmt(old)} -> {_fmt(new)}: {effect}")
        elif key in ("slot.name", "publication.name"):
            classes.append(RE_SNAPSHOT)
            notes.append(
                f"{key} {_fmt(old)} -> {_fmt(new)}: a new replication slot starts at the current WAL position, changes since "
                "the old slot's are not streamed: a snapshot is needed (per snapshot.mode)"
            )
        elif key == "table.include.list":
            old_tables, new_tables = _include_list(old), _include_list(new)
            added = [t for t in new_tables if t not in old_tables]
            removed = [t for t in old_tables if t not in new_tables]
            if added:
                classes.append(NEW_TABLE)
                if signal_table:
                    notes.append(
                        f"table.include.list adds {', '.join(added)}: Debezium streams its new changes; datapipe deploy then "
                        f"requests an incremental snapshot of {'it' if len(added) == 1 else 'them'} only (execute-snapshot "
                        f"signal in {signal_table}), the other tables are not re-read"
                    )
                else:
                    notes.append(
                        f"table.include.list adds {', '.join(added)}: Debezium streams its new changes but does not snapshot "
                        "its existing rows; send an incremental snapshot (execute-snapshot signal) for it"
                    )
            if removed:
                notes.append(f"table.include.list drops {', '.join(removed)}: its changes are no longer captured")
            if not added and not removed:
                restart.append(key)
        elif key == "message.key.columns":
            old_keys, new_keys = _key_columns(old), _key_columns(new)
            # A table added or dropped takes its key along; only a kept table whose key changes is re-keyed.
            tables = sorted(t for t in set(old_keys) & set(new_keys) if old_keys[t] != new_keys[t])
            if tables:
                classes.append(RE_KEYING)
                detail = ", ".join(f"{t} ({old_keys[t]} -> {new_keys[t]})" for t in tables)
                notes.append(f"message.key.columns changes the key of {detail}: new events land on other partitions")
            elif not isinstance(old, str) or not isinstance(new, str):
                classes.append(RE_KEYING)
                notes.append(f"message.key.columns changes ({_fmt(old)} -> {_fmt(new)}): keys may land on other partitions")
        elif key == "database.server.id":
            notes.append(f"database.server.id {_fmt(old)} -> {_fmt(new)} (the replication client id only: offsets kept)")
        else:
            restart.append(key)
    if restart:
        classes.append(CONNECTOR_RESTART)
        notes.append(f"restarts, resuming from its offsets ({_keys_text(restart)} change)")
    return classes, notes


def _bigquery_table(rc: Mapping[str, Any], change: Mapping[str, Any], kind: str, context: _Context) -> Verdict:
    before, after = _values(rc, "before"), _values(rc, "after")
    dataset = after.get("dataset_id") or before.get("dataset_id")
    table = after.get("table_id") or before.get("table_id")
    is_view = bool(after.get("view") or before.get("view"))
    if is_view:
        latest = (str(dataset), str(table)) in context.latest_views or bool(_view_key(before) or _view_key(after))
        label = f"{'latest-state ' if latest else ''}view {dataset}.{table}"
        if kind == "create":
            return CREATE, f"new {label}{_twin_note(rc, context, created=True)}"
        if kind == "delete":
            return READER_VISIBLE, f"{label} is deleted: queries of its readers fail{_twin_note(rc, context)}"
        if kind == "replace":
            return (
                READER_VISIBLE,
                f"{_replace_why(rc, change)} forces replacement: {label} is dropped and re-created (queries fail in between)",
            )
        keys = _changed_keys(change, context.configured.get(rc["address"]))
        if "view" not in keys and "schema" not in keys:
            return IN_PLACE, f"{label}: {_keys_text(keys) or 'attributes'} change"
        old_key, new_key = _view_key(before), _view_key(after)
        if old_key and new_key and old_key != new_key:
            return (
                RE_KEYING,
                f"{label}: primary key {', '.join(old_key)} -> {', '.join(new_key)} (the newest row per key changes meaning)",
            )
        changed = " and ".join(n for k, n in (("view", "query"), ("schema", "schema")) if k in keys)
        return READER_VISIBLE, f"{label}: {changed} changes"
    label = f"changelog table {dataset}.{table}"
    protection = ""
    if before.get("deletion_protection") is True:
        protection = " (deletion_protection is on: apply fails until it is turned off)"
    if kind == "create":
        return CREATE, f"new {label}{_twin_note(rc, context, created=True)}"
    if kind == "delete":
        return DATA_LOSS, f"{label} is deleted with every change event it holds{protection}{_twin_note(rc, context)}"
    if kind == "replace":
        return (
            DATA_LOSS,
            f"{_replace_why(rc, change)} forces replacement: {label} and every change event it holds are deleted{protection}",
        )
    keys = _changed_keys(change, context.configured.get(rc["address"]))
    if "schema" in keys:
        return READER_VISIBLE, f"{label}: schema {_schema_diff(before.get('schema'), after.get('schema'))}"
    notes = []
    for key in keys:
        note = _describe_diff(change, key)
        if key == "time_partitioning" and _shorter(_expiration(before), _expiration(after)):
            note += " (older partitions expire)"
        notes.append(note)
    return IN_PLACE, f"{label}: " + ("; ".join(notes) or "attributes change in place")


def _dataset(rc: Mapping[str, Any], change: Mapping[str, Any], kind: str, context: _Context) -> Verdict:
    before, after = _values(rc, "before"), _values(rc, "after")
    label = f"dataset {after.get('dataset_id') or before.get('dataset_id')}"
    keep = ""
    if before.get("delete_contents_on_destroy") is False:
        keep = " (delete_contents_on_destroy=false: apply fails while it holds tables)"
    if kind == "create":
        return CREATE, f"new {label}"
    if kind == "delete":
        return DATA_LOSS, f"{label} is deleted with its tables{keep}{_twin_note(rc, context)}"
    if kind == "replace":
        return DATA_LOSS, f"{_replace_why(rc, change)} forces replacement: {label} and its tables are deleted{keep}"
    keys = _changed_keys(change, context.configured.get(rc["address"]))
    notes = [_describe_diff(change, k) for k in keys]
    if "default_partition_expiration_ms" in keys:
        notes.append("(the default applies to new tables only)")
    return IN_PLACE, f"{label}: " + ("; ".join(notes) or "attributes change in place")


def _access(rc: Mapping[str, Any], change: Mapping[str, Any], kind: str, context: _Context) -> Verdict:
    before, after = _values(rc, "before"), _values(rc, "after")
    if kind == "create":
        twin = context.twin.get(rc["address"])
        if twin:
            return (
                ACCESS_REPLACED,
                f"{_grant(after)} again, deleted at {twin['address']} in this plan (access may be missing in between)",
            )
        return ACCESS_WIDENED, f"{_holder(after)} gains {_grant(after, bare=True)}"
    if kind == "delete":
        twin = context.twin.get(rc["address"])
        if twin:
            return ACCESS_REPLACED, (
                f"{_grant(before)}: deleted here and created again at {twin['address']} (a construct id changed without a moved "
                "block): access may be missing in between"
            )
        broken = ""
        if isinstance(before.get("view"), list) and before["view"]:
            broken = ": queries of that view's readers fail"
        return ACCESS_NARROWED, f"{_holder(before)} loses {_grant(before, bare=True)}{broken}"
    if kind == "replace":
        why = _replace_why(rc, change)
        if _holder(before) != _holder(after):
            return (
                ACCESS_REPLACED,
                f"{why} forces replacement: {_holder(before)} loses and {_holder(after)} gains {_grant(after, bare=True)}",
            )
        if _actions(rc) == ("delete", "create"):
            gap = "deleted before it is created again: access is missing in between"
        elif _grant(before) == _grant(after):
            gap = "created before the old entry is deleted, but it is the same binding: the delete may remove it (check access)"
        else:
            gap = "created before the old entry is deleted: no gap"
        return ACCESS_REPLACED, f"{why} forces replacement of {_grant(after)}; {gap}"
    keys = _changed_keys(change, context.configured.get(rc["address"]))
    return IN_PLACE, f"{_grant(after)}: {_keys_text(keys) or 'attributes'} change in place"


def _generic(rc: Mapping[str, Any], change: Mapping[str, Any], kind: str, context: _Context) -> Verdict:
    type_ = rc.get("type")
    keys_note = ""
    if type_ == "google_service_account" and kind in ("delete", "replace"):
        keys_note = ": keys issued for it (the sink's key file on the workers) stop working"
    if kind == "create":
        return CREATE, f"new {type_}"
    if kind == "delete":
        return DELETE, f"{type_} is deleted{keys_note}"
    if kind == "replace":
        return REPLACE, f"{_replace_why(rc, change)} forces replacement{keys_note}"
    notes = [_describe_diff(change, k) for k in _changed_keys(change, context.configured.get(rc["address"]))]
    return IN_PLACE, "; ".join(notes) or "attributes change in place"


_HANDLERS = {
    "kafka_topic": _topic,
    "kafka-connect_connector": _connector,
    "google_bigquery_table": _bigquery_table,
    "google_bigquery_dataset": _dataset,
}


# ---------------------------------------------------------------------------------------------- helpers


def _actions(rc: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple((rc.get("change") or {}).get("actions") or ("no-op",))


def _kind(actions: tuple[str, ...]) -> str:
    if "delete" in actions and "create" in actions:
        return "replace"
    return {"create": "create", "delete": "delete", "update": "update", "read": "read", "forget": "forget"}.get(
        actions[0] if actions else "no-op", "no-op"
    )


def _values(rc: Mapping[str, Any], side: str) -> Mapping[str, Any]:
    value = (rc.get("change") or {}).get(side)
    return value if isinstance(value, Mapping) else {}


def _config(rc: Mapping[str, Any], side: str) -> Mapping[str, Any]:
    if rc.get("type") != "kafka-connect_connector":
        return {}
    config = _values(rc, side).get("config")
    return config if isinstance(config, Mapping) else {}


def _is_debezium(config: Mapping[str, Any]) -> bool:
    return str(config.get("connector.class", "")).startswith(_DEBEZIUM)


def _database(config: Mapping[str, Any]) -> tuple[Any, ...]:
    """Which database a source reads (host, port, database): the same for a renamed source."""
    if not config.get("database.hostname"):
        return ()
    return (
        config.get("database.hostname"),
        config.get("database.port"),
        config.get("database.dbname") or config.get("database.include.list"),
    )


def _identity(rc: Mapping[str, Any], side: str) -> tuple[Any, ...] | None:
    """What makes two resources of one type the same object (a delete and a create of it at two addresses)."""
    values = _values(rc, side)
    type_ = rc.get("type")
    if type_ in ("kafka_topic", "kafka-connect_connector"):
        keys: tuple[str, ...] = ("name",)
    elif type_ == "google_bigquery_table":
        keys = ("dataset_id", "table_id")
    elif type_ == "google_bigquery_dataset":
        keys = ("dataset_id",)
    elif type_ in ACCESS_TYPES:
        return (type_, _grant(values))
    else:
        return None
    found = tuple(values.get(k) for k in keys)
    return (type_, *found) if all(isinstance(v, str) for v in found) else None


def _twin_note(rc: Mapping[str, Any], context: _Context, *, created: bool = False) -> str:
    twin = context.twin.get(rc["address"])
    if twin is None:
        return ""
    if created:
        return f"; it re-creates the one deleted at {twin['address']}"
    return f"; it is created again, empty, at {twin['address']} (a construct id changed without a moved block)"


def _unknown(change: Mapping[str, Any], *path: str) -> bool:
    node: Any = change.get("after_unknown")
    for step in path:
        if node is True:
            return True
        node = node.get(step) if isinstance(node, Mapping) else None
    return node is True


def _sensitive(change: Mapping[str, Any], side: str, *path: str) -> bool:
    node: Any = change.get(f"{side}_sensitive")
    for step in path:
        if node is True:
            return True
        node = node.get(step) if isinstance(node, Mapping) else None
    return node is True


def _side(change: Mapping[str, Any], side: str) -> Mapping[str, Any]:
    """``before``, ``after`` or ``after_unknown`` of a change, ``{}`` when absent (create, delete, ``true``)."""
    value = change.get(side)
    return value if isinstance(value, Mapping) else {}


def _diff(change: Mapping[str, Any], key: str) -> tuple[Any, Any]:
    before, after = _side(change, "before"), _side(change, "after")
    old = SENSITIVE if _sensitive(change, "before", key) else before.get(key)
    new = UNKNOWN if _unknown(change, key) else SENSITIVE if _sensitive(change, "after", key) else after.get(key)
    return old, new


def _empty(value: Any) -> bool:
    return value is None or value == [] or value == {} or value == ""


def _changed_keys(change: Mapping[str, Any], configured: set[str] | None) -> list[str]:
    """Top-level attributes that change; an attribute unknown until apply counts only if it is configured."""
    before, after, unknown = _side(change, "before"), _side(change, "after"), _side(change, "after_unknown")
    keys = []
    for key in sorted(set(before) | set(after) | set(unknown)):
        if key in ("timeouts", "id"):
            continue
        if unknown.get(key) is True or (isinstance(unknown.get(key), Mapping) and any(_leaves(unknown[key]))):
            if configured is None or key in configured:
                keys.append(key)
            continue
        old, new = before.get(key), after.get(key)
        if old != new and not (_empty(old) and _empty(new)):
            keys.append(key)
    return keys


def _leaves(node: Any) -> Iterable[bool]:
    if node is True:
        yield True
    elif isinstance(node, Mapping):
        for value in node.values():
            yield from _leaves(value)
    elif isinstance(node, list):
        for value in node:
            yield from _leaves(value)


def _map_diff(change: Mapping[str, Any], attribute: str) -> list[tuple[str, Any, Any]]:
    """(key, before, after) of each entry of a map attribute that changes; sensitive and unknown values masked."""
    old_map, new_map = _side(_side(change, "before"), attribute), _side(_side(change, "after"), attribute)
    if _unknown(change, attribute) and not new_map:
        return [(k, old_map[k], UNKNOWN) for k in sorted(old_map)] or [("*", None, UNKNOWN)]
    found = []
    for key in sorted(set(old_map) | set(new_map) | set(_unknown_keys(change, attribute))):
        old = SENSITIVE if _sensitive(change, "before", attribute, key) else old_map.get(key)
        if _unknown(change, attribute, key):
            new: Any = UNKNOWN
        else:
            new = SENSITIVE if _sensitive(change, "after", attribute, key) else new_map.get(key)
        if new is UNKNOWN or old_map.get(key) != new_map.get(key):
            found.append((key, old, new))
    return found


def _unknown_keys(change: Mapping[str, Any], attribute: str) -> list[str]:
    return [k for k, v in _side(_side(change, "after_unknown"), attribute).items() if v is True]


def _connector_diffs(change: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """Config entries that change; ``name`` mirrors the resource's own (ForceNew) name and is reported there."""
    diffs = [d for d in _map_diff(change, "config") if d[0] != "name"]
    if _changed_sensitive(change):
        diffs.append(("config_sensitive", SENSITIVE, SENSITIVE))
    return diffs


def _changed_sensitive(change: Mapping[str, Any]) -> bool:
    before, after = _side(change, "before"), _side(change, "after")
    return before.get("config_sensitive") != after.get("config_sensitive") and not (
        _empty(before.get("config_sensitive")) and _empty(after.get("config_sensitive"))
    )


def _config_note(key: str, old: Any, new: Any) -> str:
    if key == "topics":
        old_topics, new_topics = _split(old), _split(new)
        if new is not UNKNOWN and (old_topics or new_topics):
            added = [t for t in new_topics if t not in old_topics]
            removed = [t for t in old_topics if t not in new_topics]
            parts = ([f"reads {', '.join(added)} from its earliest retained offset"] if added else []) + (
                [f"stops reading {', '.join(removed)}"] if removed else []
            )
            return "topics: " + "; ".join(parts or ["reordered"])
    if key == "config_sensitive":
        return "config_sensitive changes (values hidden)"
    return f"{key} {_fmt(old)} -> {_fmt(new)}"


def _split(value: Any) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else []


def _include_list(value: Any) -> list[str]:
    """``payments\\.orders,payments\\.refunds`` -> ``["payments.orders", "payments.refunds"]``."""
    return [re.sub(r"\\(.)", r"\1", item) for item in _split(value)]


def _key_columns(value: Any) -> dict[str, str]:
    """``db.orders:id;db.refunds:id,region`` -> ``{"db.orders": "id", "db.refunds": "id,region"}``."""
    if not isinstance(value, str):
        return {}
    pairs = [item.rsplit(":", 1) for item in value.split(";") if ":" in item]
    return {re.sub(r"\\(.)", r"\1", table.strip()): columns.strip() for table, columns in pairs}


def _view_key(values: Mapping[str, Any]) -> tuple[str, ...]:
    """The ``PARTITION BY`` columns of a latest-state view's query (empty for other views)."""
    views = values.get("view")
    query = views[0].get("query") if isinstance(views, list) and views and isinstance(views[0], Mapping) else None
    match = _PARTITION_BY.search(query) if isinstance(query, str) else None
    return tuple(c.strip().strip("`") for c in match.group(1).split(",")) if match else ()


def _schema_diff(old: Any, new: Any) -> str:
    def columns(value: Any) -> dict[str, str] | None:
        try:
            fields = json.loads(value) if isinstance(value, str) else None
        except json.JSONDecodeError:
            return None
        if not isinstance(fields, list):
            return None
        return {str(f.get("name")): f"{f.get('type')} {f.get('mode', 'NULLABLE')}" for f in fields if isinstance(f, Mapping)}

    before, after = columns(old), columns(new)
    if new is UNKNOWN or before is None or after is None:
        return "changes"
    parts = [f"adds {', '.join(c for c in after if c not in before)}"] if any(c not in before for c in after) else []
    parts += [f"drops {', '.join(c for c in before if c not in after)}"] if any(c not in after for c in before) else []
    parts += [f"{c} {before[c]} -> {after[c]}" for c in before if c in after and before[c] != after[c]]
    return "; ".join(parts) or "changes (order or descriptions)"


def _replace_why(rc: Mapping[str, Any], change: Mapping[str, Any]) -> str:
    paths = change.get("replace_paths") or []
    if paths:
        before, after = _side(change, "before"), _side(change, "after")
        parts = []
        if any(path and path[0] == "condition" for path in paths):
            old_expiry, new_expiry = _expiry(before), _expiry(after)
            parts.append(f"condition {_fmt(old_expiry)} -> {_fmt(new_expiry)}")
            paths = [path for path in paths if not path or path[0] != "condition"]
        for path in paths:
            if list(path) == ["schema"]:
                _, new_schema = _diff(change, "schema")
                parts.append(f"schema ({_schema_diff(before.get('schema'), new_schema)})")
                continue
            text = _path_text(path)
            old = _at(before, path)
            new = UNKNOWN if _unknown(change, *[str(p) for p in path]) else _at(after, path)
            if _sensitive(change, "before", *[str(p) for p in path]):
                old = new = SENSITIVE
            parts.append(f"{text} {_fmt(old)} -> {_fmt(new)}")
        return ", ".join(parts)
    reason = rc.get("action_reason")
    return {
        "replace_because_tainted": "a tainted object",
        "replace_by_request": "-replace requested",
        "replace_because_cannot_update": "a change the provider cannot make in place",
    }.get(str(reason), str(reason or "the provider"))


def _at(value: Any, path: Sequence[Any]) -> Any:
    for step in path:
        if isinstance(value, Mapping):
            value = value.get(step)
        elif isinstance(value, list) and isinstance(step, int) and 0 <= step < len(value):
            value = value[step]
        else:
            return None
    return value


def _path_text(path: Sequence[Any]) -> str:
    text = ""
    for step in path:
        if isinstance(step, int):
            text += f"[{step}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(step)):
            text += f".{step}" if text else str(step)
        else:
            text += f'["{step}"]'
    return text


def _describe_diff(change: Mapping[str, Any], key: str) -> str:
    if key == "config" and isinstance(_side(change, "after").get("config"), Mapping):
        return "; ".join(f"config {k} {_fmt(o)} -> {_fmt(n)}" for k, o, n in _map_diff(change, "config")) or "config changes"
    old, new = _diff(change, key)
    return f"{key} {_fmt(old)} -> {_fmt(new)}"


def _fmt(value: Any) -> str:
    if isinstance(value, _Marker):
        return value.text
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return str(value).lower()
    text = json.dumps(value, separators=(",", ":"), sort_keys=True) if isinstance(value, (dict, list)) else str(value)
    text = " ".join(text.split())
    return text if len(text) <= 60 else text[:57] + "..."


def _keys_text(keys: Sequence[str]) -> str:
    return ", ".join(keys[:6]) + (f" and {len(keys) - 6} more" if len(keys) > 6 else "")


def _number(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _shorter(old: Any, new: Any) -> bool:
    """A bounded retention that is now shorter (or newly bounded): ``-1`` and unset mean forever."""
    before, after = _number(old), _number(new)
    if after is None or after < 0:
        return False
    return before is None or before < 0 or after < before


def _expiry(values: Mapping[str, Any]) -> str | None:
    """``until <time>`` of an IAM condition ending access at a time, else its expression (None without one)."""
    condition = values.get("condition")
    if not (isinstance(condition, list) and condition and isinstance(condition[0], Mapping)):
        return None
    expression = str(condition[0].get("expression", ""))
    match = _EXPIRY.search(expression)
    return f"until {match.group(1)}" if match else expression


def _expiration(values: Mapping[str, Any]) -> Any:
    partitioning = values.get("time_partitioning")
    return partitioning[0].get("expiration_ms") if isinstance(partitioning, list) and partitioning else None


def _holder(values: Mapping[str, Any]) -> str:
    """Who an access entry is for."""
    if values.get("acl_principal"):
        return str(values["acl_principal"])
    if values.get("member"):
        return str(values["member"])
    for key, prefix in (("user_by_email", "user:"), ("group_by_email", "group:"), ("domain", "domain:")):
        if values.get(key):
            email = str(values[key])
            return f"serviceAccount:{email}" if email.endswith(".gserviceaccount.com") else f"{prefix}{email}"
    view = values.get("view")
    if isinstance(view, list) and view and isinstance(view[0], Mapping):
        return f"view {view[0].get('project_id')}.{view[0].get('dataset_id')}.{view[0].get('table_id')}"
    return str(values.get("special_group") or values.get("iam_member") or "?")


def _grant(values: Mapping[str, Any], *, bare: bool = False) -> str:
    """What an access entry grants: ``Read on Topic payments.payments.orders``, ``READER on dataset finance``."""
    if "acl_operation" in values:
        pattern = values.get("resource_pattern_type_filter") or "Literal"
        scope = f" ({pattern.lower()})" if pattern != "Literal" else ""
        host = f" from {values['acl_host']}" if values.get("acl_host") not in (None, "*") else ""
        permission = "" if values.get("acl_permission_type") in (None, "Allow") else f"{values['acl_permission_type']} "
        resource = f"{values.get('resource_type')} {values.get('resource_name')}"
        what = f"{permission}{values.get('acl_operation')} on {resource}{scope}{host}"
    elif "dataset_id" in values:
        what = f"{values.get('role') or 'access (authorized view)'} on dataset {values.get('dataset_id')}"
    else:
        what = f"{values.get('role')} on project {values.get('project')}"
    expiry = _expiry(values)
    if expiry:
        what += f" {expiry}" if expiry.startswith("until ") else f" if {expiry}"
    return what if bare else f"{_holder(values)}: {what}"


def _sorted(changes: list[ClassifiedChange]) -> list[ClassifiedChange]:
    return sorted(changes, key=lambda c: (SEVERITY.index(c.cls), c.where))


def _table(rows: Sequence[ClassifiedChange], blocked: set[int]) -> list[str]:
    labels = [(r.cls + (f" (+{','.join(r.also)})" if r.also else ""), r.action, r.where) for r in rows]
    widths = [max(len(h), *(len(label[i]) for label in labels)) for i, h in enumerate(("CLASS", "ACTION", "PATH"))]
    lines = [f"  {'CLASS':<{widths[0]}}  {'ACTION':<{widths[1]}}  {'PATH':<{widths[2]}}  REASON"]
    for row, (cls, action, where) in zip(rows, labels, strict=True):
        mark = "!" if id(row) in blocked else " "
        lines.append(f"{mark} {cls:<{widths[0]}}  {action:<{widths[1]}}  {where:<{widths[2]}}  {row.reason}")
    return lines
