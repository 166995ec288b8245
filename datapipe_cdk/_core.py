"""The spine every datapipe-cdk construct shares: the stack it belongs to, its path, the stack's registry.

Constructs work at any depth under a ``DataPipelineStack``, including inside a user's own
``Construct`` subclasses: :func:`pipeline_of` walks up the tree (CDK's ``Stack.of``) and remembers
the answer. Library constructs subclass :class:`PipelineConstruct`, which records what synth-time code
needs on the Python side (path, child ids, the stack) so synth makes no per-construct jsii round trips.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cdktf import TerraformStack, TerraformVariable, TerraformVariableValidationConfig
from constructs import Construct, IConstruct
from jsii.errors import JSIIError

from .errors import DatapipeError

if TYPE_CHECKING:
    from .providers._base import ResourceTable
    from .settings import ConnectCluster, GcpProject, KafkaCluster

_PATHS: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
_STACKS: weakref.WeakKeyDictionary[Any, PipelineStack] = weakref.WeakKeyDictionary()


@dataclass
class Registry:
    """What one stack holds: unique names, shared ACLs, manifest writers and every library construct."""

    topics: dict[str, str] = field(default_factory=dict)
    topic_collision_keys: dict[str, str] = field(default_factory=dict)
    """Topic names with '.' read as '_' (how Kafka metric names see them), to the topic claiming each."""
    connectors: dict[str, str] = field(default_factory=dict)
    datasets: dict[str, str] = field(default_factory=dict)
    acls: dict[tuple[str, ...], Any] = field(default_factory=dict)
    manifest_parts: list[Callable[[Any], None]] = field(default_factory=list)
    constructs: list[Construct] = field(default_factory=list)
    """Every construct datapipe-cdk created in the stack, in creation order (no jsii walk needed)."""
    moved: list[tuple[str, str]] = field(default_factory=list)
    """Terraform addresses renamed by this version of the library: (previous address, current address)."""

    def claim(self, kind: str, name: str, path: str) -> None:
        """Register a unique name (topic, connector, dataset) or fail naming both claimants."""
        table = {"topic": self.topics, "connector": self.connectors, "dataset": self.datasets}[kind]
        if name in table:
            raise DatapipeError(path, f"{kind} name is already used in this stack by {table[name]}", name)
        table[name] = path


class PipelineStack(TerraformStack):
    """What every datapipe-cdk construct needs of its stack; ``DataPipelineStack`` is the one to use."""

    kafka: KafkaCluster
    connect: ConnectCluster
    gcp: GcpProject
    registry: Registry
    resource_table: ResourceTable
    target: str
    """``production`` (the settings the code declares) or ``local`` (the local stack; see ``datapipe_cdk.target``)."""

    def __init__(self, scope: Construct, stack_id: str, path: str) -> None:
        super().__init__(scope, stack_id)
        _PATHS[self] = path
        self.child_ids: set[str] = set()
        """Ids of the children datapipe-cdk created directly in this stack."""
        self._variables: dict[str, TerraformVariable] = {}
        self.variable_specs: dict[str, tuple[bool, str]] = {}
        """Every variable the library declared: name -> (sensitive, description)."""

    @property
    def pipeline(self) -> PipelineStack:
        return self

    @property
    def default_replication_factor(self) -> int:
        """For topics that set none: ``KafkaCluster.default_replication_factor``, else ``min(3, brokers)``."""
        if self.kafka.default_replication_factor is not None:
            return self.kafka.default_replication_factor
        return min(3, self.kafka.brokers) if self.kafka.brokers else 3

    def claim(self, kind: str, name: str, path: str) -> None:
        """Register a unique name (topic, connector, dataset) or fail naming both claimants."""
        self.registry.claim(kind, name, path)

    def sensitive_variable(self, name: str, description: str) -> TerraformVariable:
        """A sensitive string variable named exactly ``name`` (set it with ``TF_VAR_<name>``)."""
        return self.variable(name, description, sensitive=True)

    def variable(self, name: str, description: str, *, sensitive: bool, min_length: int = 0) -> TerraformVariable:
        """A string variable named exactly ``name`` (``TF_VAR_<name>``), created once per stack.

        ``min_length`` adds a Terraform validation, so a too-short value fails at plan, not silently later.
        """
        existing = self._variables.get(name)
        if existing is not None:
            return existing
        validation = (
            [
                TerraformVariableValidationConfig(
                    condition=f"${{length(var.{name}) >= {min_length}}}",
                    error_message=f"{name} must be at least {min_length} characters long.",
                )
            ]
            if min_length
            else None
        )
        variable = TerraformVariable(
            self, f"var-{name}", type="string", sensitive=sensitive, description=description, validation=validation
        )
        self.variable_specs[name] = (sensitive, description)
        variable.override_logical_id(name)
        self.child_ids.add(f"var-{name}")
        self._variables[name] = variable
        return variable


class PipelineConstruct(Construct):
    """Base of every library construct: created after its arguments are checked, remembered by its stack."""

    def __init__(self, scope: Construct, construct_id: str, *, pipeline: PipelineStack, path: str) -> None:
        try:
            super().__init__(scope, construct_id)
        except JSIIError as error:  # an id a user's own construct already took (our checks cannot see those)
            raise DatapipeError(path, f"cannot be created: {str(error).splitlines()[0]}", construct_id) from None
        self.pipeline = pipeline
        self.construct_path = path
        self.child_ids: set[str] = set()
        _PATHS[self] = path
        _note_child(scope, construct_id)
        pipeline.registry.constructs.append(self)


def path_of(construct: IConstruct) -> str:
    """A construct's path; asked of jsii once per construct, then remembered."""
    try:
        return _PATHS[construct]
    except KeyError:
        pass
    except TypeError:  # not weak-referenceable: ask every time
        return str(construct.node.path)
    path = str(construct.node.path)
    _PATHS[construct] = path
    return path


def remember_path(construct: IConstruct, path: str) -> None:
    """Record the path of a construct created by the library but not derived from PipelineConstruct."""
    _PATHS[construct] = path


def pipeline_of(scope: object, path: str | None = None) -> PipelineStack:
    """The stack a construct lives in, at any depth (user constructs included); a clear error if none."""
    found = getattr(scope, "pipeline", None)
    if isinstance(found, PipelineStack):
        return found
    if not isinstance(scope, Construct):
        raise DatapipeError(path or "scope", "scope must be a construct (a stack or a construct inside one)", scope)
    try:
        return _STACKS[scope]
    except (KeyError, TypeError):
        pass
    stack = next((s for s in reversed(scope.node.scopes) if isinstance(s, PipelineStack)), None)
    if stack is None:
        raise DatapipeError(
            path or path_of(scope),
            "datapipe-cdk constructs must be created inside a DataPipelineStack (directly or in your own constructs under it)",
            path_of(scope),
        )
    try:
        _STACKS[scope] = stack
    except TypeError:
        pass
    return stack


def child_ids_of(scope: object) -> set[str] | None:
    """Child ids the library tracks for ``scope`` (a stack or library construct); None for other constructs."""
    ids = getattr(scope, "child_ids", None)
    return ids if isinstance(ids, set) else None


def _note_child(scope: object, construct_id: str) -> None:
    ids = child_ids_of(scope)
    if ids is not None:
        ids.add(construct_id)


def note_child(scope: object, construct_id: str) -> None:
    """Record that the library created ``construct_id`` directly under ``scope``."""
    _note_child(scope, construct_id)
