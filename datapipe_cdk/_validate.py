"""Argument checks shared by every construct; each failure is a DatapipeError naming path, value, rule."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import timedelta
from enum import Enum
from typing import Any, TypeVar

from constructs import Construct, IConstruct

from .errors import DatapipeError

E = TypeVar("E", bound=Enum)

_NON_WORD = re.compile(r"[^A-Za-z0-9_]")
_CONSTRUCT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def path_of(construct: IConstruct) -> str:
    """A construct's path, asked of jsii once and then remembered (synth speed: one round trip each)."""
    cached: str | None = getattr(construct, "_datapipe_path", None)
    if cached is None:
        cached = str(construct.node.path)
        construct._datapipe_path = cached  # type: ignore[attr-defined]
    return cached


def word(name: str) -> str:
    """``name`` with every character outside letters, digits and '_' turned into '_'
    (Terraform variable names, dataset ids and KCBQ table names derived from ids and topics)."""
    return _NON_WORD.sub("_", name)


def adopt(scope: Construct, child: Construct, construct_id: str, *, owns_children: bool = False) -> None:
    """Remember a new construct on the Python side, so synth-time code needs no jsii round trips:
    its path, its id among its parent's children, and its place in the stack's registry.

    ``owns_children`` marks a datapipe-cdk construct whose children are all created (and adopted)
    by this library, so duplicate ids below it are found without asking jsii.
    """
    parent = path_of(scope)
    child._datapipe_path = f"{parent}/{construct_id}" if parent else construct_id  # type: ignore[attr-defined]
    known: set[str] | None = getattr(scope, "_datapipe_children", None)
    if known is not None:
        known.add(construct_id)
    if owns_children:
        child._datapipe_children = set()  # type: ignore[attr-defined]
    registry = getattr(getattr(scope, "pipeline", None), "registry", None)
    if registry is not None:
        registry.constructs.append(child)


def child_path(scope: object, construct_id: object, kind: str) -> str:
    """Path the construct *will* have; checked before anything is added to the tree."""
    if not isinstance(scope, Construct):
        raise DatapipeError(kind, "scope must be a construct (a stack or a construct inside one)", scope)
    parent = path_of(scope)
    if not isinstance(construct_id, str) or not _CONSTRUCT_ID.match(construct_id):
        raise DatapipeError(f"{parent}/{kind}", "id must be 1-128 characters of letters, digits, '_', '.', '-'", construct_id)
    known: set[str] | None = getattr(scope, "_datapipe_children", None)
    taken = construct_id in known if known is not None else scope.node.try_find_child(construct_id) is not None
    if taken:
        raise DatapipeError(f"{parent}/{construct_id}", "id is already used in this scope", construct_id)
    return f"{parent}/{construct_id}" if parent else construct_id


def integer(path: str, name: str, value: object, *, minimum: int | None = None, maximum: int | None = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise DatapipeError(path, f"{name} must be an integer", value)
    if minimum is not None and value < minimum:
        raise DatapipeError(path, f"{name} must be >= {minimum}", value)
    if maximum is not None and value > maximum:
        raise DatapipeError(path, f"{name} must be <= {maximum}", value)
    return value


def text(path: str, name: str, value: object, *, pattern: str | None = None, rule: str = "", max_length: int = 1024) -> str:
    if not isinstance(value, str):
        raise DatapipeError(path, f"{name} must be a string", value)
    if not value:
        raise DatapipeError(path, f"{name} must not be empty", value)
    if len(value) > max_length:
        raise DatapipeError(path, f"{name} must be at most {max_length} characters", value)
    if pattern is not None and not re.fullmatch(pattern, value):
        raise DatapipeError(path, f"{name} {rule or 'must match ' + pattern}", value)
    return value


def flag(path: str, name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise DatapipeError(path, f"{name} must be True or False", value)
    return value


def duration(path: str, name: str, value: object, *, minimum: timedelta = timedelta(0)) -> timedelta:
    if not isinstance(value, timedelta):
        raise DatapipeError(path, f"{name} must be a datetime.timedelta", value)
    if value <= minimum:
        raise DatapipeError(path, f"{name} must be longer than {minimum}", value)
    return value


def choice(path: str, name: str, value: object, enum: type[E]) -> E:
    """An enum member, or the string value of one (``"mysql"`` for ``Engine.MYSQL``)."""
    if isinstance(value, enum):
        return value
    for member in enum:
        if value == member.value:
            return member
    allowed = ", ".join(repr(m.value) for m in enum)
    raise DatapipeError(path, f"{name} must be one of {allowed}", value)


def instance(path: str, name: str, value: object, kind: type[Any]) -> Any:
    if not isinstance(value, kind):
        raise DatapipeError(path, f"{name} must be a {kind.__name__}", value)
    return value


def sequence(path: str, name: str, value: object) -> Sequence[Any]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise DatapipeError(path, f"{name} must be a list", value)
    return value


def mapping(path: str, name: str, value: object) -> Mapping[Any, Any]:
    if not isinstance(value, Mapping):
        raise DatapipeError(path, f"{name} must be a mapping", value)
    return value


def string_map(path: str, name: str, value: object) -> dict[str, str]:
    """A map of string keys to string values (Terraform ``map(string)``)."""
    result: dict[str, str] = {}
    for key, item in mapping(path, name, value).items():
        text(path, f"{name} key", key, max_length=256)
        if not isinstance(item, str):
            raise DatapipeError(path, f"{name}[{key!r}] must be a string", item)
        result[key] = item
    return result
