"""What a stack holds, found by walking its construct tree: sources, sinks, warehouses, topics, datasets.

Each jsii call costs a round trip to node, so one walk serves a whole policy run: inside
``with snapshot(stack):`` every lookup reuses a single ``find_all`` and a topic -> parent map.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from constructs import Construct, IConstruct

from .._core import path_of
from ..dataset import Dataset
from ..schema import CapturedTable
from ..sink import BigQuerySink
from ..source import CdcSource
from ..topic import StreamingTopic, TopicReference
from ..warehouse import MicroWarehouse
from .classification import ClassifiedColumn, captured_columns, changelog_columns

T = TypeVar("T")


class Inventory:
    """One walk of a stack's tree, and which source or sink created each topic."""

    def __init__(self, scope: Construct) -> None:
        registry = getattr(scope, "registry", None)
        # A pipeline stack lists what the library created in it: no walk of the jsii tree needed.
        self.nodes: list[Any] = [scope, *registry.constructs] if registry is not None else list(scope.node.find_all())
        self.parents: dict[int, CdcSource | BigQuerySink] = {}
        self.captured: dict[int, CapturedTable] = {}
        """Topic (by id) -> the captured table it carries."""
        self.owning: dict[int, BigQuerySink | MicroWarehouse] = {}
        """Dataset (by id) -> the sink or warehouse it belongs to."""
        for node in self.nodes:
            if isinstance(node, CdcSource):
                self.captured.update({id(node.topic(t.name)): t for t in node.tables})
                topics = [node.topic(t.name) for t in node.tables] + [node.history_topic, node.heartbeat_topic]
                self.parents.update({id(t): node for t in topics if t is not None})
            elif isinstance(node, BigQuerySink):
                self.parents[id(node.dead_letter_topic)] = node
            if isinstance(node, (BigQuerySink, MicroWarehouse)):
                self.owning.setdefault(id(node.dataset), node)

    def find(self, kind: type[T]) -> list[T]:
        return [node for node in self.nodes if isinstance(node, kind)]


_CURRENT: ContextVar[tuple[int, Inventory] | None] = ContextVar("datapipe_inventory", default=None)


@contextmanager
def snapshot(scope: Construct) -> Iterator[Inventory]:
    """Reuse one walk of ``scope`` for every lookup inside the block (the tree must not change)."""
    inventory = Inventory(scope)
    token = _CURRENT.set((id(scope), inventory))
    try:
        yield inventory
    finally:
        _CURRENT.reset(token)


def _inventory(scope: Construct) -> Inventory:
    current = _CURRENT.get()
    if current is not None and current[0] == id(scope):
        return current[1]
    return Inventory(scope)


def _stack_of(construct: Any) -> Construct:
    stack = getattr(construct, "pipeline", None)
    return stack if isinstance(stack, Construct) else construct


def find(scope: Construct, kind: type[T]) -> list[T]:
    """Every construct of ``kind`` under ``scope``, in tree order."""
    return _inventory(scope).find(kind)


def sources(scope: Construct) -> list[CdcSource]:
    return find(scope, CdcSource)


def sinks(scope: Construct) -> list[BigQuerySink]:
    return find(scope, BigQuerySink)


def warehouses(scope: Construct) -> list[MicroWarehouse]:
    return find(scope, MicroWarehouse)


def topics(scope: Construct) -> list[StreamingTopic]:
    return find(scope, StreamingTopic)


def topic_references(scope: Construct) -> list[TopicReference]:
    return find(scope, TopicReference)


def datasets(scope: Construct) -> list[Dataset]:
    return find(scope, Dataset)


def owning_construct(dataset: Dataset) -> Construct:
    """The sink or warehouse a dataset belongs to (what a user declared), or the dataset itself."""
    return _inventory(_stack_of(dataset)).owning.get(id(dataset), dataset)


def declared_at(topic: IConstruct) -> str:
    """Path of the construct where a topic's settings are given: its source or sink, else the topic itself."""
    parent = _inventory(_stack_of(topic)).parents.get(id(topic))
    return path_of(parent) if parent is not None else path_of(topic)


def topic_columns(topic: StreamingTopic) -> list[ClassifiedColumn]:
    """Classified columns a topic carries: a source's table topic, or a sink's dead letters."""
    inventory = _inventory(_stack_of(topic))
    parent = inventory.parents.get(id(topic))
    if isinstance(parent, CdcSource) and id(topic) in inventory.captured:
        return captured_columns(inventory.captured[id(topic)], path_of(parent))
    if isinstance(parent, BigQuerySink):
        return [c for table in parent.tables for c in changelog_columns(table)]
    return []


def topic_owner(topic: StreamingTopic) -> str | None:
    """The captured table's owner, else the topic's (a source passes its own), else its sink dataset's."""
    inventory = _inventory(_stack_of(topic))
    captured = inventory.captured.get(id(topic))
    if captured is not None and captured.table.owner:
        return captured.table.owner
    if topic.owner is not None:
        return str(topic.owner)
    parent = inventory.parents.get(id(topic))
    if isinstance(parent, BigQuerySink) and parent.dataset.owners:
        return str(parent.dataset.owners[0])
    return None


def dataset_owners(dataset: Dataset) -> list[str]:
    return [str(p) for p in dataset.owners]
