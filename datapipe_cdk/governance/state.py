"""Per-stack governance: the policies a stack runs at synth, its written opt-outs, its expiring grants."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import jsii
from constructs import Construct, IValidation

from .._core import PipelineStack, path_of, pipeline_of
from ..errors import DatapipeError
from ..manifest import Manifest
from . import inventory
from .policy import Policy, Violation, default_policies

MIN_REASON = 10


@dataclass(frozen=True)
class OptOut:
    """``path`` (and everything under it) is exempt from ``policy``, for a written ``reason``."""

    policy: str
    path: str
    reason: str

    def covers(self, violation: Violation) -> bool:
        return violation.policy == self.policy and _under(violation.path, self.path)

    def as_dict(self) -> dict[str, str]:
        return {"policy": self.policy, "path": self.path, "reason": self.reason}


@jsii.implements(IValidation)
class _PolicyValidation:
    """Runs the stack's policies when cdktf validates the tree (every synth)."""

    def __init__(self, governance: Governance) -> None:
        self._governance = governance

    def validate(self) -> list[str]:
        return [str(v) for v in self._governance.violations()]


class Governance:
    """The policies of one stack: checked at synth, with their opt-outs and grants in the manifest.

    Every ``DataPipelineStack`` creates its own; reach it with ``Governance.of(construct)``.
    """

    def __init__(self, stack: PipelineStack) -> None:
        self.stack = stack
        self.policies: list[Policy] = default_policies()
        self.opt_outs: list[OptOut] = []
        self.origins: dict[str, str] = {}
        """Construct path -> where it was requested (``stacks/teams/x.yaml:12``), quoted in violations."""
        self.checks: list[Callable[[], Iterable[Violation]]] = []
        """Configuration checks that need the whole app (e.g. team files naming a stack); no opt-out."""
        stack.node.add_validation(_PolicyValidation(self))
        stack.registry.manifest_parts.append(self.describe)

    @staticmethod
    def of(scope: Construct) -> Governance:
        governance = getattr(pipeline_of(scope), "governance", None)
        if not isinstance(governance, Governance):
            raise DatapipeError(path_of(scope), "governance needs a DataPipelineStack", scope)
        return governance

    @property
    def policy_names(self) -> list[str]:
        return [p.name for p in self.policies]

    def add_policy(self, policy: Policy) -> None:
        if not isinstance(policy, Policy):
            raise DatapipeError(path_of(self.stack), "add_policy needs a governance.Policy", policy)
        if policy.name in self.policy_names:
            raise DatapipeError(path_of(self.stack), "a policy with this name is already active; use replace_policy", policy.name)
        self.policies.append(policy)

    def replace_policy(self, policy: Policy) -> None:
        """Swap a built-in for a configured one, e.g. ``PiiDatasetRetention(maximum=timedelta(days=365))``."""
        if policy.name not in self.policy_names:
            raise DatapipeError(path_of(self.stack), f"no active policy named so (active: {self.policy_names})", policy.name)
        self.policies = [policy if p.name == policy.name else p for p in self.policies]

    def opt_out(self, construct: Construct, policy: str | Policy | type[Policy], reason: str) -> OptOut:
        """Exempt ``construct`` (and what is under it) from ``policy``; the reason is published in the manifest."""
        path = path_of(construct) if isinstance(construct, Construct) else str(construct)
        name = policy if isinstance(policy, str) else policy.name
        if name not in self.policy_names:
            raise DatapipeError(path, f"opt_out names an unknown policy (active: {', '.join(self.policy_names)})", name)
        if not isinstance(reason, str) or len(reason.strip()) < MIN_REASON:
            raise DatapipeError(path, f"opt_out from {name} needs a written reason (at least {MIN_REASON} characters)", reason)
        entry = OptOut(name, path, reason.strip())
        self.opt_outs.append(entry)
        return entry

    def declare_origin(self, path: str, origin: str) -> None:
        """Say where the constructs under ``path`` were requested, so violations can point there."""
        self.origins[path] = origin

    def all_violations(self) -> list[Violation]:
        """Every violation, including those opted out."""
        with inventory.snapshot(self.stack):
            return [v for policy in self.policies for v in policy.check(self.stack)]

    def violations(self) -> list[Violation]:
        """Violations nobody opted out of, and configuration errors: any of these fails synth."""
        found = [self._located(v) for v in self.all_violations() if not any(o.covers(v) for o in self.opt_outs)]
        return found + [v for check in self.checks for v in check()]

    def _located(self, violation: Violation) -> Violation:
        paths = [p for p in self.origins if _under(violation.path, p)]
        if not paths:
            return violation
        origin = self.origins[max(paths, key=len)]
        return Violation(violation.policy, violation.path, f"{violation.message} (requested in {origin})")

    def describe(self, manifest: Manifest) -> None:
        """Manifest part: active policies, opt-outs with their reasons, temporary grants and their expiry."""
        with inventory.snapshot(self.stack):
            self._describe(manifest)

    def _describe(self, manifest: Manifest) -> None:
        kafka = [grant for topic in inventory.topic_references(self.stack) for grant in topic.temporary_grants]
        bigquery = [
            {**grant, "dataset": w.dataset.dataset_id, "path": path_of(w)}
            for w in inventory.warehouses(self.stack)
            for grant in w.temporary_grants
        ]
        manifest.governance.policies = self.policy_names
        manifest.governance.opt_outs = [o.as_dict() for o in self.opt_outs]
        manifest.governance.temporary_grants = {"kafka": kafka, "bigquery": bigquery}


def opt_out(construct: Construct, policy: str | Policy | type[Policy], reason: str) -> OptOut:
    """Exempt ``construct`` from ``policy`` with a written ``reason`` (recorded in the synthesized manifest)."""
    return Governance.of(construct).opt_out(construct, policy, reason)


def _under(path: str, prefix: str) -> bool:
    """``path`` is ``prefix`` itself or a construct under it (``test/raw2`` is not under ``test/raw``)."""
    return path == prefix or path.startswith(prefix + "/")
