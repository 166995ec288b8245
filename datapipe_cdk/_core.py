"""The spine every datapipe-cdk construct shares: the stack it belongs to, its path, the stack's registry.

Constructs work at any depth under a ``DataPipelineStack``, including inside a user's own
``Construct`` subclasses: :func:`pipeline_of` walks up the tree (CDK's ``Stack.of``) and remembers
the answer. Library constructs subclass :class:`PipelineConstruct`, which records what synth-time code
needs on the Python side (path, child ids, the stack) so synth makes no per-construct jsii round trips.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import re
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from constructs import Construct, IConstruct
from jsii.errors import JSIIError

from ._cdk import Annotations, TerraformStack, TerraformVariable, TerraformVariableValidationConfig
from .errors import DatapipeError

if TYPE_CHECKING:
    from .providers._base import ResourceTable
    from .settings import ConnectCluster, GcpProject, KafkaCluster

_PATHS: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
_APP_CLAIMS: weakref.WeakKeyDictionary[Any, dict[tuple[str, ...], str]] = weakref.WeakKeyDictionary()
"""Names that must be unique across every stack of one app (a dataset in one project), per app root."""
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
    warnings: list[tuple[str, str]] = field(default_factory=list)
    """(construct path, message) of every warning the library gave (see :func:`warn`)."""

    def claim(self, kind: str, name: str, path: str) -> None:
        """Register a unique name (topic, connector, dataset) or fail naming both claimants."""
        table = {"topic": self.topics, "connector": self.connectors, "dataset": self.datasets}[kind]
        if name in table:
            raise DatapipeError(path, f"{kind} name is already used in this stack by {table[name]}", name)
        table[name] = path


def show_signature(cls: type) -> None:
    """Make ``help()``, ``inspect.signature`` and Jupyter's ``?`` show ``cls``'s real parameters, and turn a
    misspelt or missing argument into the library's error (path, the argument, the fix).

    jsii's metaclass defines ``__call__(*args, **kwargs)``, which hides ``__init__`` from introspection.
    """
    if "__init__" not in cls.__dict__:
        return
    original = cls.__dict__["__init__"]
    init = inspect.signature(original)
    cls.__signature__ = init.replace(parameters=list(init.parameters.values())[1:])  # type: ignore[attr-defined]

    @functools.wraps(original)
    def checked_init(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            init.bind(self, *args, **kwargs)
        except TypeError as error:
            raise _argument_error(cls, init, args, kwargs, error) from None
        original(self, *args, **kwargs)

    cls.__init__ = checked_init  # type: ignore[misc]


def _argument_error(
    cls: type, init: inspect.Signature, args: tuple[Any, ...], kwargs: dict[str, Any], error: TypeError
) -> DatapipeError:
    names = [n for n in init.parameters if n != "self"]
    scope = args[0] if args else kwargs.get("scope")
    construct_id = args[1] if len(args) > 1 else kwargs.get(names[1] if len(names) > 1 else "", None)
    try:
        where = f"{path_of(scope)}/{construct_id}" if isinstance(scope, Construct) else cls.__name__
    except Exception:
        where = cls.__name__
    unknown = [k for k in kwargs if k not in init.parameters]
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, names, n=1)
            hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        return DatapipeError(
            where, f"{cls.__name__} has no argument {', '.join(hints)}; its arguments are {', '.join(names[2:])}", unknown
        )
    missing = re.findall(r"'(\w+)'", str(error))
    return DatapipeError(where, f"{cls.__name__}: {error} (see help({cls.__name__}))", missing or None)


class PipelineStack(TerraformStack):
    """What every datapipe-cdk construct needs of its stack; ``DataPipelineStack`` is the one to use."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        show_signature(cls)

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
        self.app_claims = _APP_CLAIMS.setdefault(self.node.root, {})
        """Names unique across the whole app, shared by its stacks: (kind, *key) -> the claimant's path."""
        self.app_claims[("stack", stack_id)] = path
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

    @property
    def app_stack_ids(self) -> list[str]:
        """The ids of every pipeline stack of this app created so far."""
        return [key[1] for key in self.app_claims if key[0] == "stack"]

    def claim_in_app(self, key: tuple[str, ...], path: str, what: str) -> None:
        """Register a name unique across every stack of the app (e.g. a dataset in a project)."""
        other = self.app_claims.get(key)
        if other is not None and other != path:
            raise DatapipeError(path, f"{what} is already created by {other} (another stack of this app)", key[-1])
        self.app_claims[key] = path

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

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        show_signature(cls)

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


def warn(scope: Construct, message: str) -> None:
    """A warning on ``scope``: cdktf's annotation (``datapipe synth`` prints it from the synth manifest), and kept on
    the stack's registry so ``datapipe validate`` prints it without synthesizing."""
    Annotations.of(scope).add_warning(message)
    pipeline_of(scope).registry.warnings.append((path_of(scope), message))
