"""Policies as code: objects that look at a whole stack and name the data that breaks a rule.

A platform team adds its own by subclassing :class:`Policy` and passing it to
``Governance.of(stack).add_policy``. The built-ins run on every ``DataPipelineStack`` at synth.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from .._core import path_of
from ..acl import KafkaAcl, Permission
from ..providers.google import BigqueryDatasetAccess, ProjectIamMember
from ..schema import Treatment
from ..units import FOREVER
from . import inventory
from .classification import ClassifiedColumn, changelog_columns, view_columns

if TYPE_CHECKING:
    from .._core import PipelineStack

_PUBLIC_MEMBERS = ("allUsers", "allAuthenticatedUsers")
_PUBLIC_KAFKA_USERS = ("*", "ANONYMOUS")


@dataclass(frozen=True)
class Violation:
    """One broken rule: which policy, the path of the data that breaks it, and how to fix it."""

    policy: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"

    def as_dict(self) -> dict[str, str]:
        return {"policy": self.policy, "path": self.path, "message": self.message}


class Policy(ABC):
    """A rule checked at synth. ``name`` is what opt-outs cite; ``check`` yields violations."""

    name: ClassVar[str]
    description: ClassVar[str]

    @abstractmethod
    def check(self, stack: PipelineStack) -> Iterator[Violation]:
        """Yield one violation per piece of data that breaks the rule."""

    def violation(self, path: str, message: str) -> Violation:
        return Violation(self.name, path, message)


class PiiOnlyInPiiDatasets(Policy):
    """PII reaches a dataset only masked, hashed or excluded, unless the dataset declares ``holds_pii``."""

    name = "pii-in-clean-dataset"
    description = "A PII column may reach a dataset only masked, hashed or excluded unless the dataset holds_pii=True"

    def check(self, stack: PipelineStack) -> Iterator[Violation]:
        for sink in inventory.sinks(stack):
            if sink.dataset.holds_pii:
                continue
            for table in sink.tables:
                yield from self._report(path_of(table.resource), changelog_columns(table), sink.dataset.dataset_id)
        for warehouse in inventory.warehouses(stack):
            if warehouse.dataset.holds_pii:
                continue
            for view in warehouse.views.values():
                if view.source is not None:
                    yield from self._report(path_of(view.resource), view_columns(warehouse, view), warehouse.dataset.dataset_id)

    def _report(self, path: str, columns: list[ClassifiedColumn], dataset: str) -> Iterator[Violation]:
        for column in columns:
            if column.exposes_pii:
                kind = f" ({column.info_type.value})" if column.info_type else ""
                how = (
                    "hashed (its salt is visible in plan, state and Connect's REST API, so the hash can be reversed by guessing)"
                    if column.treatment is Treatment.HASHED
                    else "unmasked"
                )
                yield self.violation(
                    path,
                    f"PII column {column.qualified}{kind} reaches dataset {dataset} {how}; "
                    f"mask or exclude it at {column.source_path} or declare the dataset holds_pii=True",
                )


class PiiDatasetRetention(Policy):
    """A dataset that holds PII keeps it no longer than ``maximum`` (partition expiration)."""

    name = "pii-dataset-retention"
    description = "A dataset declared holds_pii=True needs a retention no longer than the policy maximum"

    def __init__(self, maximum: timedelta = timedelta(days=3 * 365)) -> None:
        self.maximum = maximum

    def check(self, stack: PipelineStack) -> Iterator[Violation]:
        limit = f"at most {self.maximum.days} days"
        for dataset in inventory.datasets(stack):
            if not dataset.holds_pii:
                continue
            path = path_of(inventory.owning_construct(dataset))
            if dataset.retention is None or dataset.retention == FOREVER:
                yield self.violation(
                    path, f"dataset {dataset.dataset_id} holds PII but keeps it forever; set retention= ({limit})"
                )
            elif dataset.retention > self.maximum:
                yield self.violation(
                    path, f"dataset {dataset.dataset_id} holds PII for {dataset.retention.days} days; set retention= {limit}"
                )


class PiiTopicRetention(Policy):
    """A topic carrying unmasked PII has a finite ``retention.ms`` no longer than ``maximum``."""

    name = "pii-topic-retention"
    description = "A topic carrying unmasked PII needs a bounded retention.ms"

    def __init__(self, maximum: timedelta = timedelta(days=30)) -> None:
        self.maximum = maximum

    def check(self, stack: PipelineStack) -> Iterator[Violation]:
        for topic in inventory.topics(stack):
            exposed = [c for c in inventory.topic_columns(topic) if c.exposes_pii]
            if not exposed:
                continue
            retention = topic.retention
            if retention is not None and retention != FOREVER and retention <= self.maximum:
                continue
            columns = ", ".join(c.qualified for c in exposed)
            now = (
                "keeps it forever"
                if retention == FOREVER
                else "has no retention.ms (broker default)"
                if retention is None
                else f"keeps it {retention.days} days"
            )
            yield self.violation(
                path_of(topic),
                f"topic {topic.name} carries unmasked PII ({columns}) and {now}; "
                f"set retention= at most {self.maximum.days} days on {inventory.declared_at(topic)}",
            )


class NoPublicPrincipals(Policy):
    """Nothing is granted to everyone: no allUsers / allAuthenticatedUsers, no Allow ACL on '*'."""

    name = "no-public-principals"
    description = "No grant to allUsers, allAuthenticatedUsers or every Kafka resource ('*')"

    def check(self, stack: PipelineStack) -> Iterator[Violation]:
        for access in inventory.find(stack, BigqueryDatasetAccess):
            member = access.attributes.get("special_group") or access.attributes.get("iam_member")
            if member in _PUBLIC_MEMBERS:
                dataset = access.node.scope
                name = getattr(dataset, "dataset_id", "?")
                role = access.attributes.get("role")
                yield self.violation(
                    path_of(access), f"dataset {name} grants {role} to {member} (public); grant a group or user instead"
                )
        for member in inventory.find(stack, ProjectIamMember):
            if member.attributes.get("member") in _PUBLIC_MEMBERS:
                yield self.violation(
                    path_of(member),
                    f"project role {member.attributes['role']} is granted to "
                    f"{member.attributes['member']} (public); grant a group or user instead",
                )
        for acl in inventory.find(stack, KafkaAcl):
            if acl.permission is not Permission.ALLOW:
                continue
            if acl.resource_name == "*":
                yield self.violation(
                    path_of(acl),
                    f"Kafka ACL allows {acl.principal.kafka} {acl.operation.value} on every "
                    f"{acl.resource_type.value} ('*'); name the resource instead",
                )
            if acl.principal.name in _PUBLIC_KAFKA_USERS:
                yield self.violation(
                    path_of(acl),
                    f"Kafka ACL allows {acl.principal.kafka} {acl.operation.value} on {acl.resource_type.value} "
                    f"{acl.resource_name}: {acl.principal.kafka} is every client (ANONYMOUS is any unauthenticated "
                    "connection); grant a named Kafka user instead",
                )


class OwnerRequired(Policy):
    """Every dataset and every topic the stack creates has an owner someone can ask."""

    name = "owner-required"
    description = "Every dataset and topic has an owner"

    def check(self, stack: PipelineStack) -> Iterator[Violation]:
        for dataset in inventory.datasets(stack):
            if not dataset.owners:
                path = path_of(inventory.owning_construct(dataset))
                yield self.violation(
                    path, f"dataset {dataset.dataset_id} has no owner; pass owners=[Principal.group(...)] to {path}"
                )
        for topic in inventory.topics(stack):
            if inventory.topic_owner(topic) is None:
                where = inventory.declared_at(topic)
                yield self.violation(
                    path_of(topic),
                    f"topic {topic.name} has no owner; pass "
                    f"{'owners=[Principal.group(...)]' if _is_sink(where, stack) else 'owner=Principal.group(...)'} to {where}",
                )


class PiiReaders(Policy):
    """Data holding PII is readable only by people of the allowed domains: no whole domain, no public
    principal, no address outside ``GcpProject.allowed_domains`` (service accounts of the stack's own
    project count as inside)."""

    name = "pii-readers"
    description = "Datasets holding PII grant access only to users, groups and service accounts of the allowed domains"

    def check(self, stack: PipelineStack) -> Iterator[Violation]:
        allowed = [d.casefold() for d in stack.gcp.allowed_domains]
        own_accounts = f"@{stack.gcp.project}.iam.gserviceaccount.com"
        for dataset in inventory.datasets(stack):
            if not dataset.holds_pii:
                continue
            for access in dataset.grants.values():
                member = _access_member(access.attributes)
                problem = _reader_problem(member, allowed, own_accounts)
                if problem:
                    yield self.violation(
                        path_of(access),
                        f"dataset {dataset.dataset_id} holds PII and grants {access.attributes.get('role')} to {member}: "
                        f"{problem}",
                    )


class AllowedDomains(Policy):
    """With ``GcpProject.allowed_domains`` set, no dataset or project grant reaches outside them: every
    user, group and whole domain granted is of an allowed domain (service accounts of the stack's own
    project count as inside; list another project's ``<project>.iam.gserviceaccount.com`` to allow its)."""

    name = "allowed-domains"
    description = "With GcpProject(allowed_domains=...) set, every dataset and project grant stays inside those domains"

    def check(self, stack: PipelineStack) -> Iterator[Violation]:
        allowed = [d.casefold() for d in stack.gcp.allowed_domains]
        if not allowed:
            return
        own_accounts = f"@{stack.gcp.project}.iam.gserviceaccount.com"
        for access in inventory.find(stack, BigqueryDatasetAccess):
            member = _access_member(access.attributes)
            if member == "?" or member in _PUBLIC_MEMBERS or "${" in member:
                continue  # authorized views, special groups (no-public-principals), references to our own accounts
            problem = _outside(member, allowed, own_accounts)
            if problem:
                dataset = getattr(access.node.scope, "dataset_id", "?")
                yield self.violation(
                    path_of(access), f"dataset {dataset} grants {access.attributes.get('role')} to {member}: {problem}"
                )
        for grant in inventory.find(stack, ProjectIamMember):
            member = str(grant.attributes.get("member"))
            problem = None if member in _PUBLIC_MEMBERS or "${" in member else _outside(member, allowed, own_accounts)
            if problem:
                yield self.violation(path_of(grant), f"project role {grant.attributes.get('role')} goes to {member}: {problem}")


def _outside(member: str, allowed: list[str], own_accounts: str) -> str | None:
    """Why ``member`` (``user:a@b``, ``group:...``, ``serviceAccount:...``, ``domain:b``) is outside ``allowed``."""
    domain = _foreign_domain(member, allowed, own_accounts)
    if domain is None:
        return None
    return (
        f"{domain} is not one of GcpProject(allowed_domains=[{', '.join(allowed)}]); grant someone of an allowed domain, "
        "add the domain there, or opt out with a reason"
    )


def _foreign_domain(member: str, allowed: list[str], own_accounts: str) -> str | None:
    """The domain of ``member`` when it is neither one of ``allowed`` (or below one) nor the project's own
    service accounts; else None."""
    kind, _, name = member.partition(":")
    if name.endswith(own_accounts):
        return None
    domain = (name if kind == "domain" else name.rpartition("@")[2]).casefold()
    return None if any(domain == d or domain.endswith(f".{d}") for d in allowed) else domain


def _is_sink(path: str, stack: PipelineStack) -> bool:
    """True when ``path`` is a BigQuerySink (its dead-letter topic's owner comes from the sink's ``owners``)."""
    return any(path_of(sink) == path for sink in inventory.sinks(stack))


def _access_member(attributes: Mapping[str, Any]) -> str:
    for key, prefix in (("user_by_email", "user:"), ("group_by_email", "group:"), ("domain", "domain:")):
        if attributes.get(key):
            return f"{prefix}{attributes[key]}"
    return str(attributes.get("special_group") or attributes.get("iam_member") or "?")


def _reader_problem(member: str, allowed: list[str], own_accounts: str) -> str | None:
    if member in _PUBLIC_MEMBERS:
        return "a public principal; grant named groups instead"
    kind, _, name = member.partition(":")
    if kind == "domain":
        return "a whole domain; grant named groups instead"
    if name.endswith(own_accounts):
        return None
    if not allowed:
        return "no allowed domains are set for PII readers; set GcpProject(allowed_domains=[...]) or opt out with a reason"
    domain = _foreign_domain(member, allowed, own_accounts)
    if domain is not None:
        return f"{domain} is not an allowed domain ({', '.join(allowed)}); grant someone of an allowed domain or opt out"
    return None


class ColumnsDeclared(Policy):
    """Every captured table declares its columns: the policies can only follow columns they know."""

    name = "columns-declared"
    description = "Every captured table declares its columns (type and classification)"

    def check(self, stack: PipelineStack) -> Iterator[Violation]:
        for source in inventory.sources(stack):
            for table in source.tables:
                if not table.table.columns:
                    yield self.violation(
                        path_of(source),
                        f"table {table.qualified_name} declares no columns, so no policy can tell whether it carries PII "
                        "and none of its columns can be masked; declare Table(primary_key=..., columns=[Column(...), ...]) "
                        f"or opt_out({path_of(source)}, 'columns-declared', reason)",
                    )


def default_policies() -> list[Policy]:
    """The built-in policies every stack starts with."""
    return [
        PiiOnlyInPiiDatasets(),
        PiiDatasetRetention(),
        PiiTopicRetention(),
        NoPublicPrincipals(),
        AllowedDomains(),
        OwnerRequired(),
        ColumnsDeclared(),
        PiiReaders(),
    ]
