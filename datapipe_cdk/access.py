"""Access review from a synthesized stack: who can read (or write) what, across Kafka ACLs and BigQuery.

Works on ``cdk.tf.json`` alone (what Terraform will apply), so it reviews exactly what ships. Kafka
ACLs cannot expire: grants made with ``grant_read(..., until=...)`` carry their expiry in the
``datapipe_manifest`` output, and :func:`expired_grants` lists the expired ones still present (in the
synthesized stack, or on a live cluster with :func:`live_kafka_acls`). Standard library only
(the live check imports confluent-kafka, the ``runtime`` extra).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_REF = re.compile(r"^\$\{([a-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([a-z_]+)\}$")
_EXPIRY = re.compile(r'request\.time < timestamp\("([^"]+)"\)')
_ROLE_ACCESS = {"READER": "read", "WRITER": "read, write", "OWNER": "read, write, own"}
_KAFKA_READS = ("Read", "All")


@dataclass(frozen=True)
class AccessEntry:
    """One grant: ``principal`` may ``access`` ``resource`` in ``system``, maybe only until ``expires``."""

    principal: str
    system: str
    resource: str
    access: str
    expires: str | None
    path: str

    @property
    def can_read(self) -> bool:
        if self.system == "kafka":
            return self.access.split(" ")[0] in _KAFKA_READS and self.resource.startswith("Topic:")
        return self.access.startswith("read") or self.access == "authorized view"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "can_read": self.can_read}


@dataclass(frozen=True)
class ExpiredGrant:
    """A temporary grant past its expiry that is still declared (or, for Kafka, still on the cluster)."""

    principal: str
    system: str
    resource: str
    until: str
    acls_present: int
    where: str

    @property
    def remedy(self) -> str:
        if self.system == "kafka":
            return (
                f"{self.acls_present} ACL(s) still in the {self.where} (Kafka ACLs do not expire): "
                "remove the grant_read(..., until=...) and deploy"
            )
        return (
            "the IAM condition already denies access; remove the grant_query(..., until=...) (or the team file entry) and deploy"
        )

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "remedy": self.remedy}


def load_stack(path: str | Path) -> dict[str, Any]:
    """A synthesized stack: ``cdk.tf.json`` itself, or a stack directory holding it."""
    file = Path(path)
    if file.is_dir():
        file = file / "cdk.tf.json"
    if not file.is_file():
        raise FileNotFoundError(f"{file} not found: run `datapipe synth` first")
    data: dict[str, Any] = json.loads(file.read_text(encoding="utf-8"))
    return data


def manifest(stack: Mapping[str, Any]) -> dict[str, Any]:
    """The ``datapipe_manifest`` output of a synthesized stack (empty if absent)."""
    value = stack.get("output", {}).get("datapipe_manifest", {}).get("value", {})
    return value if isinstance(value, dict) else {}


def review(stack: Mapping[str, Any]) -> list[AccessEntry]:
    """Every grant in the synthesized stack, sorted by principal, system and resource."""
    resources = stack.get("resource", {})
    names = _Names(stack)
    entries: list[AccessEntry] = []
    expiring = _kafka_expiry(stack)
    for acl in resources.get("kafka_acl", {}).values():
        pattern = " (prefixed)" if acl.get("resource_pattern_type_filter") == "Prefixed" else ""
        permission = "" if acl.get("acl_permission_type", "Allow") == "Allow" else " (DENY)"
        entries.append(
            AccessEntry(
                acl["acl_principal"],
                "kafka",
                f"{acl['resource_type']}:{acl['resource_name']}{pattern}",
                f"{acl['acl_operation']}{permission}",
                expiring.get(_acl_key(acl)),
                _path(acl),
            )
        )
    for dataset in resources.get("google_bigquery_dataset", {}).values():
        for inline in dataset.get("access") or []:  # what the dataset is created with (see dataset.Dataset)
            entries.append(
                AccessEntry(
                    names.member(inline),
                    "bigquery",
                    f"dataset:{dataset['dataset_id']}",
                    _ROLE_ACCESS.get(inline.get("role", ""), inline.get("role", "")),
                    None,
                    _path(dataset),
                )
            )
    for access in resources.get("google_bigquery_dataset_access", {}).values():
        dataset = names.resolve(access["dataset_id"])
        if access.get("view"):
            view = access["view"][0]
            member = f"view:{names.resolve(view['dataset_id'])}.{names.resolve(view['table_id'])}"
            entries.append(AccessEntry(member, "bigquery", f"dataset:{dataset}", "authorized view", None, _path(access)))
            continue
        entries.append(
            AccessEntry(
                names.member(access),
                "bigquery",
                f"dataset:{dataset}",
                _ROLE_ACCESS.get(access.get("role", ""), access.get("role", "")),
                _expiry(access.get("condition")),
                _path(access),
            )
        )
    for member in resources.get("google_project_iam_member", {}).values():
        entries.append(
            AccessEntry(
                names.resolve(member["member"]),
                "bigquery",
                f"project:{member['project']}",
                member["role"],
                _expiry(member.get("condition")),
                _path(member),
            )
        )
    return sorted(entries, key=lambda e: (e.principal, e.system, e.resource, e.access))


def who_can_read(stack: Mapping[str, Any]) -> dict[str, list[AccessEntry]]:
    """Principal -> what it can read (topics and datasets), the heart of an access review."""
    result: dict[str, list[AccessEntry]] = {}
    for entry in review(stack):
        if entry.can_read:
            result.setdefault(entry.principal, []).append(entry)
    return result


def parse_time(text: str) -> datetime:
    """An RFC 3339 time such as ``2027-01-31T00:00:00Z``; one without an offset is taken as UTC. Raises ValueError."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def expired_grants(
    stack: Mapping[str, Any],
    *,
    now: datetime | None = None,
    live_acls: Iterable[tuple[str, ...]] | None = None,
) -> list[ExpiredGrant]:
    """Temporary grants past their expiry that are still declared.

    Kafka: ACLs cannot expire, so a grant counts while its ACLs are present, in the synthesized stack
    or, when ``live_acls`` (from :func:`live_kafka_acls`) is given, on the live cluster. BigQuery: the
    IAM condition already denies access, but the dead grant is still declared and should be removed.
    """
    moment = now or datetime.now(UTC)
    grants = manifest(stack).get("governance", {}).get("temporary_grants", {}).get("kafka", [])
    if live_acls is not None:
        present = {_normal(k) for k in live_acls}
        where = "live cluster"
    else:
        present = {_normal(_acl_key(a)) for a in stack.get("resource", {}).get("kafka_acl", {}).values()}
        where = "synthesized stack"
    result = []
    for grant in grants:
        if parse_time(grant["until"]) > moment:
            continue
        count = sum(1 for key in grant.get("acls", []) if _normal(tuple(key)) in present)
        if count:
            result.append(ExpiredGrant(grant["principal"], "kafka", f"Topic:{grant['topic']}", grant["until"], count, where))
    for grant in manifest(stack).get("governance", {}).get("temporary_grants", {}).get("bigquery", []):
        if parse_time(grant["until"]) <= moment:
            result.append(
                ExpiredGrant(
                    grant["principal"], "bigquery", f"dataset:{grant['dataset']}", grant["until"], 0, "synthesized stack"
                )
            )
    return result


def live_kafka_acls(config: Mapping[str, str], timeout: float = 10.0) -> list[tuple[str, ...]]:
    """Every ACL on a live cluster, as ``(principal, type, name, operation, pattern, permission, host)``.

    ``config`` is a librdkafka client config (``bootstrap.servers``, ``security.protocol``, SASL keys).
    """
    from confluent_kafka.admin import (  # type: ignore[import-not-found,unused-ignore]
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        AdminClient,
        ResourcePatternType,
        ResourceType,
    )

    settings: dict[str, Any] = {"log_level": 3, "logger": _QuietLogger(), **config}
    admin = AdminClient(settings)
    anything: Any = None
    query = AclBindingFilter(
        ResourceType.ANY, anything, ResourcePatternType.ANY, anything, anything, AclOperation.ANY, AclPermissionType.ANY
    )
    bindings = admin.describe_acls(query, request_timeout=timeout).result(timeout=timeout)
    return [
        (b.principal, b.restype.name, b.name, b.operation.name, b.resource_pattern_type.name, b.permission_type.name, b.host)
        for b in bindings
    ]


def format_table(entries: Iterable[AccessEntry]) -> str:
    """Human-readable review: one block per principal."""
    lines: list[str] = []
    current = None
    for entry in entries:
        if entry.principal != current:
            current = entry.principal
            lines.append(("" if not lines else "\n") + entry.principal)
        expiry = f"  (until {entry.expires})" if entry.expires else ""
        lines.append(f"  {entry.system:<8} {entry.access:<22} {entry.resource}{expiry}")
    return "\n".join(lines) + ("\n" if lines else "")


class _QuietLogger:
    """librdkafka logs every failed connection attempt; the caller reports the one error that matters."""

    def log(self, *args: object, **kwargs: object) -> None:
        return None


class _Names:
    """Resolves ``${type.id.attr}`` references to the literal values the same stack sets."""

    def __init__(self, stack: Mapping[str, Any]) -> None:
        self._resources = stack.get("resource", {})
        providers = stack.get("provider", {}).get("google", [{}])
        self._project = providers[0].get("project", "project") if providers else "project"

    def resolve(self, value: str) -> str:
        match = _REF.match(value) if isinstance(value, str) else None
        if not match:
            return str(value)
        kind, logical, attribute = match.groups()
        attributes = self._resources.get(kind, {}).get(logical, {})
        if kind == "google_service_account" and attribute in ("email", "member"):
            email = f"{attributes.get('account_id', logical)}@{self._project}.iam.gserviceaccount.com"
            return email if attribute == "email" else f"serviceAccount:{email}"
        return str(attributes.get(attribute, value))

    def member(self, access: Mapping[str, Any]) -> str:
        if access.get("special_group") in ("projectOwners", "projectReaders", "projectWriters"):
            return f"special:{access['special_group']}"
        if access.get("user_by_email"):
            email = self.resolve(access["user_by_email"])
            return f"serviceAccount:{email}" if email.endswith(".gserviceaccount.com") else f"user:{email}"
        if access.get("group_by_email"):
            return f"group:{access['group_by_email']}"
        if access.get("domain"):
            return f"domain:{access['domain']}"
        return str(access.get("special_group") or access.get("iam_member") or "?")


def _acl_key(acl: Mapping[str, Any]) -> tuple[str, ...]:
    return (
        acl["acl_principal"],
        acl["resource_type"],
        acl["resource_name"],
        acl["acl_operation"],
        acl.get("resource_pattern_type_filter", "Literal"),
        acl.get("acl_permission_type", "Allow"),
        acl.get("acl_host", "*"),
    )


def _normal(key: tuple[str, ...]) -> tuple[str, ...]:
    """Compare ACLs across spellings: ``DescribeConfigs`` / ``DESCRIBE_CONFIGS``, ``Cluster`` / ``BROKER``."""

    def snake(text: str) -> str:
        return re.sub(r"(?<=[a-z])(?=[A-Z])", "_", text).upper()

    principal, kind, name, operation, pattern, permission, host = key
    kind = {"CLUSTER": "BROKER", "TRANSACTIONAL_I_D": "TRANSACTIONAL_ID"}.get(snake(kind), snake(kind))
    return (principal, kind, name, snake(operation), snake(pattern), snake(permission), host)


def _kafka_expiry(stack: Mapping[str, Any]) -> dict[tuple[str, ...], str]:
    grants = manifest(stack).get("governance", {}).get("temporary_grants", {}).get("kafka", [])
    return {tuple(key): grant["until"] for grant in grants for key in grant.get("acls", [])}


def _expiry(condition: Any) -> str | None:
    if not condition:
        return None
    match = _EXPIRY.search(condition[0].get("expression", ""))
    return match.group(1) if match else condition[0].get("expression")


def _path(resource: Mapping[str, Any]) -> str:
    return str(resource.get("//", {}).get("metadata", {}).get("path", ""))
