"""The L1 base: a Terraform resource or provider whose attributes are a plain dict.

L1 classes are boring on purpose: one class per Terraform type, keyword-only typed arguments,
no logic. ``None`` means "not set" and is left out of the JSON.

Synth speed: a resource does not hand its attributes to cdktf one callback at a time (cdktf asks
each resource twice per synth, a jsii round trip each). The stack's :class:`ResourceTable` hands
every resource's attributes over in one piece; cdktf merges them with what each resource emits
itself (meta-arguments, metadata, escape-hatch overrides, which win).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import jsii
from constructs import Construct

from .._cdk import (
    ITerraformDependable,
    TerraformElement,
    TerraformProvider,
    TerraformProviderGeneratorMetadata,
    TerraformResource,
    TerraformStack,
)
from .._core import note_child, path_of, pipeline_of, remember_path

_TEMPLATE = re.compile(r"(?<!\$)\$\{(?!TfToken\[|Token\[)|(?<!%)%\{")
"""Terraform template syntax in a literal string (``${...}``, ``%{...}``) that is not a cdktf token."""


def _literal(value: Any) -> Any:
    """``value`` with literal Terraform template syntax escaped (``$${``, ``%%{``), in strings at any depth.

    cdktf writes strings to Terraform as they are, and Terraform evaluates ``${...}`` in them: a
    description or a column comment reading ``${file("/etc/passwd")}`` would read that file at plan
    time. cdktf's own tokens (references, variables) are left for cdktf to resolve.
    """
    if isinstance(value, str):
        return _TEMPLATE.sub(lambda m: m.group(0)[0] + m.group(0), value) if ("{" in value) else value
    if isinstance(value, Mapping):
        return {_literal(k): _literal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_literal(v) for v in value]
    return value


def _present(attributes: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _literal(value) for key, value in attributes.items() if value is not None}


_DISALLOWED = re.compile(r"[^A-Za-z0-9_-]")


def logical_id(components: Sequence[str]) -> str:
    """cdktf's default logical id for a construct path below its stack (``makeUniqueId`` in
    cdktf/lib/private/unique.js): readable components, deduplicated, then an md5 suffix."""
    components = [c for c in components if c != "Default"]
    if len(components) == 1 and len(candidate := _DISALLOWED.sub("", components[0])) <= 255:
        return candidate
    digest = hashlib.md5("/".join(components).encode()).hexdigest()[:8].upper()
    human: list[str] = []
    for component in components:
        if not human or not human[-1].endswith(component):
            human.append(component)
    readable = "_".join(_DISALLOWED.sub("", c) for c in human if c != "Resource")[:240]
    return f"{readable}_{digest}"


def _names_resources_its_own_way(stack: TerraformStack) -> bool:
    """True for a stack class overriding cdktf's logical-id allocation (then only cdktf knows the ids)."""
    kind = type(stack)
    return kind.get_logical_id is not TerraformStack.get_logical_id or (
        kind._allocate_logical_id is not TerraformStack._allocate_logical_id
    )


class ResourceTable(TerraformElement):
    """The attributes of every datapipe-cdk resource in one stack, handed to cdktf in one piece.

    It is the stack's first child, so each resource's own fragment (meta-arguments, metadata and
    ``add_override`` escape hatches) is merged after it and wins.
    """

    def __init__(self, stack: TerraformStack) -> None:
        super().__init__(stack, "datapipe-resources")
        self._stack_path = path_of(stack)
        self._ask_cdktf_for_ids = _names_resources_its_own_way(stack)
        self._resources: list[Resource] = []
        self._moved: list[tuple[str, Resource]] = []

    @staticmethod
    def of(scope: Construct) -> ResourceTable:
        """The table of the DataPipelineStack that ``scope`` lives in (at any depth)."""
        return pipeline_of(scope).resource_table

    def add(self, resource: Resource) -> None:
        self._resources.append(resource)

    def add_moved(self, previous_logical_id: str, current: Resource) -> None:
        """Record that earlier versions named ``current`` ``previous_logical_id`` (an OpenTofu ``moved`` block)."""
        self._moved.append((previous_logical_id, current))

    def logical_id(self, resource: Resource) -> str:
        """The resource's Terraform name, computed here as cdktf would (no round trip per resource)."""
        if resource.logical_id_overridden or self._ask_cdktf_for_ids:
            return str(resource.friendly_unique_id)
        return logical_id(path_of(resource)[len(self._stack_path) + 1 :].split("/"))

    def to_terraform(self) -> Any:
        blocks: dict[str, dict[str, Any]] = {}
        for resource in self._resources:
            blocks.setdefault(resource.TYPE, {})[self.logical_id(resource)] = resource.synthesized_attributes()
        result: dict[str, Any] = {"resource": blocks} if blocks else {}
        moved = [
            {"from": f"{current.TYPE}.{previous}", "to": f"{current.TYPE}.{self.logical_id(current)}"}
            for previous, current in self._moved
            if previous != self.logical_id(current)
        ]
        if moved:
            result["moved"] = moved
        return result

    def paths(self) -> dict[str, str]:
        """Each resource's Terraform address and construct path (so a later plan can name what it deletes)."""
        return {f"{r.TYPE}.{self.logical_id(r)}": path_of(r) for r in self._resources}

    def previous_logical_id(self, scope: Construct, construct_id: str) -> str:
        """The logical id a resource with ``construct_id`` under ``scope`` had (for ``moved`` blocks)."""
        path = f"{path_of(scope)}/{construct_id}"
        return logical_id(path[len(self._stack_path) + 1 :].split("/"))


class Resource(TerraformResource):
    """One Terraform resource of type ``TYPE`` served by provider ``PROVIDER``."""

    TYPE: ClassVar[str]
    PROVIDER: ClassVar[str]

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        attributes: Mapping[str, Any],
        *,
        depends_on: Sequence[ITerraformDependable] | None = None,
        ignore_changes: Sequence[str] | None = None,
    ) -> None:
        stack = pipeline_of(scope)
        table = stack.resource_table
        # jsii.create is what cdktf's generated __init__ calls after its per-call typeguard checks
        # (a third of the creation cost); our L1 arguments are typed and checked already.
        config: dict[str, Any] = {
            "terraformResourceType": self.TYPE,
            "terraformGeneratorMetadata": {"providerName": self.PROVIDER},
        }
        if depends_on:
            config["dependsOn"] = list(depends_on)
        if ignore_changes:
            config["lifecycle"] = {"ignoreChanges": list(ignore_changes)}
        jsii.create(self.__class__, self, [scope, construct_id, config])
        remember_path(self, f"{path_of(scope)}/{construct_id}")
        note_child(scope, construct_id)
        self.attributes: dict[str, Any] = _present(attributes)
        self.logical_id_overridden = False
        table.add(self)
        stack.registry.constructs.append(self)

    def synthesized_attributes(self) -> Mapping[str, Any]:
        """The attributes written to the Terraform JSON (the stack's ResourceTable asks at synth)."""
        return self.attributes

    def override_logical_id(self, new_logical_id: str) -> None:
        super().override_logical_id(new_logical_id)
        self.logical_id_overridden = True  # cdktf decides when it takes effect: the table asks it


class Provider(TerraformProvider):
    """A provider configuration; ``SOURCE`` keeps the public registry address so the JSON works anywhere."""

    TYPE: ClassVar[str]
    SOURCE: ClassVar[str]
    VERSION: ClassVar[str]

    def __init__(self, scope: Construct, construct_id: str, attributes: Mapping[str, Any]) -> None:
        super().__init__(
            scope,
            construct_id,
            terraform_resource_type=self.TYPE,
            terraform_provider_source=self.SOURCE,
            terraform_generator_metadata=TerraformProviderGeneratorMetadata(
                provider_name=self.TYPE, provider_version_constraint=self.VERSION
            ),
        )
        remember_path(self, f"{path_of(scope)}/{construct_id}")
        note_child(scope, construct_id)
        self.attributes: dict[str, Any] = _present(attributes)

    def _synthesize_attributes(self) -> Mapping[str, Any]:
        return self.attributes
