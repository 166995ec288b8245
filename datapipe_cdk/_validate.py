"""Argument checks shared by every construct; each failure is a DatapipeError naming path, value, rule.

Terraform values (variables, references, functions) are unresolved tokens at synth time. A check of a
value Terraform will decide is skipped for a token (CDK does the same); where the library itself needs
the literal value (it decides resource names or which resources exist), :func:`literal` says so.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any, TypeVar

from constructs import Construct

from ._core import child_ids_of, path_of
from .errors import DatapipeError

E = TypeVar("E", bound=Enum)

_NON_WORD = re.compile(r"[^A-Za-z0-9_]")
_CONSTRUCT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_TOKEN = re.compile(r"\$\{(TfToken\[|Token\[)")
_NUMBER_TOKEN_LIMIT = -1e280
"""cdktf encodes a number token as a huge negative double (``Token.as_number``)."""

__all__ = ["is_token", "literal", "path_of"]


def is_token(value: object) -> bool:
    """True for a Terraform value unknown until plan (``TerraformVariable(...).string_value`` and the like)."""
    if isinstance(value, str):
        return _TOKEN.search(value) is not None
    if isinstance(value, float):
        return value < _NUMBER_TOKEN_LIMIT
    return False


def literal(path: str, name: str, value: object, why: str) -> None:
    """Refuse a Terraform token where the library needs the value itself (``why`` says what it decides)."""
    if is_token(value):
        raise DatapipeError(path, f"{name} must be a literal value, not a Terraform token: {why}", value)


def word(name: str) -> str:
    """``name`` with every character outside letters, digits and '_' turned into '_'
    (Terraform variable names, dataset ids and KCBQ table names derived from ids and topics)."""
    return _NON_WORD.sub("_", name)


def child_path(scope: object, construct_id: object, kind: str) -> str:
    """Path the construct *will* have; checked before anything is added to the tree."""
    if not isinstance(scope, Construct):
        raise DatapipeError(kind, "scope must be a construct (a stack or a construct inside one)", scope)
    parent = path_of(scope)
    if not isinstance(construct_id, str) or not _CONSTRUCT_ID.fullmatch(construct_id):
        raise DatapipeError(f"{parent}/{kind}", "id must be 1-128 characters of letters, digits, '_', '.', '-'", construct_id)
    known = child_ids_of(scope)
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


def port(path: str, name: str, value: object) -> int:
    """A TCP port, or a Terraform number token (checked by Terraform)."""
    if is_token(value):
        return value  # type: ignore[return-value]
    return integer(path, name, value, minimum=1, maximum=65535)


def prose(path: str, name: str, value: object, *, max_length: int = 16384) -> str:
    """Free text that goes to Terraform as a literal (descriptions): ``${`` and ``%{`` are escaped, so
    Terraform never evaluates them (a description reading ``${file("/etc/passwd")}`` stays text)."""
    if is_token(value):
        return value  # type: ignore[return-value]
    written = text(path, name, value, max_length=max_length)
    return written.replace("${", "$${").replace("%{", "%%{")


def text(path: str, name: str, value: object, *, pattern: str | None = None, rule: str = "", max_length: int = 1024) -> str:
    """A non-empty string matching ``pattern``; a Terraform string token passes (Terraform decides it)."""
    if not isinstance(value, str):
        raise DatapipeError(path, f"{name} must be a string", value)
    if is_token(value):
        return value
    if not value:
        raise DatapipeError(path, f"{name} must not be empty", value)
    if len(value) > max_length:
        raise DatapipeError(path, f"{name} must be at most {max_length} characters", value)
    if pattern is not None and not re.fullmatch(pattern, value):
        raise DatapipeError(path, f"{name} {rule or 'must match ' + pattern}", value)
    return value


def plain(path: str, name: str, value: str) -> str:
    """Free text (a description, a config value) that must not carry a Terraform reference: a string that merely
    looks like a cdktf token (``${TfToken[TOKEN.0]}``) would be resolved, writing a password variable there."""
    if is_token(value):
        raise DatapipeError(
            path,
            f"{name} must be plain text, without a Terraform reference ('${{TfToken[...]}}'): Terraform would write the "
            "referenced value (a password, say) there; remove it",
            value,
        )
    return value


def name(path: str, what: str, value: object, *, pattern: str, rule: str, why: str, max_length: int = 1024) -> str:
    """A literal name the library derives resources from (a token is refused with ``why``)."""
    literal(path, what, value, why)
    return text(path, what, value, pattern=pattern, rule=rule, max_length=max_length)


def flag(path: str, name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise DatapipeError(path, f"{name} must be True or False", value)
    return value


def duration(path: str, name: str, value: object, *, minimum: timedelta = timedelta(0), at_least: bool = False) -> timedelta:
    """A ``timedelta`` longer than ``minimum`` (or equal to it, with ``at_least``)."""
    if not isinstance(value, timedelta):
        raise DatapipeError(path, f"{name} must be a datetime.timedelta", value)
    if value < minimum or (value == minimum and not at_least):
        raise DatapipeError(path, f"{name} must be {'at least' if at_least else 'longer than'} {minimum}", value)
    return value


def future_moment(path: str, name: str, value: object, *, now: datetime | None = None) -> datetime:
    """A timezone-aware ``datetime`` still in the future (an expiry in the past grants nothing but confusion)."""
    if not isinstance(value, datetime):
        raise DatapipeError(path, f"{name} must be a datetime.datetime", value)
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise DatapipeError(
            path, f"{name} must be timezone-aware (e.g. datetime(2027, 3, 31, tzinfo=UTC)); a naive time is ambiguous", value
        )
    moment = now or datetime.now(UTC)
    if value <= moment:
        raise DatapipeError(path, f"{name} is already past ({moment:%Y-%m-%dT%H:%M:%SZ}): remove the grant instead", value)
    if value > moment + MAX_TEMPORARY:
        raise DatapipeError(
            path,
            f"{name} is more than {MAX_TEMPORARY.days // 365} years away: a temporary grant that long is a permanent one "
            "in disguise; grant it permanently (readers=, grant_read) or choose an earlier date",
            value,
        )
    return value


MAX_TEMPORARY = timedelta(days=5 * 365 + 1)
"""The furthest a temporary grant may end."""


def choice(path: str, name: str, value: object, enum: type[E]) -> E:
    """An enum member, or the string value (or member name) of one, case-insensitively:
    ``"mysql"``, ``"MYSQL"`` and ``Engine.MYSQL`` are the same. Anything else is refused."""
    if isinstance(value, enum):
        return value
    if isinstance(value, str):
        wanted = value.strip().casefold()
        for member in enum:
            if wanted in (str(member.value).casefold(), member.name.casefold()):
                return member
    allowed = ", ".join(repr(m.value) for m in enum)
    raise DatapipeError(path, f"{name} must be one of {allowed} (or the {enum.__name__} member)", value)


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
