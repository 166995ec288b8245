"""Who gets access: one typed principal, rendered as a Kafka principal or a Google IAM member."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from .errors import DatapipeError

_KAFKA_USER = r"[A-Za-z0-9][A-Za-z0-9._@=,+-]{0,254}"
_EMAIL = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"
_DOMAIN = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,}"


class PrincipalKind(Enum):
    KAFKA_USER = "kafka_user"
    USER = "user"
    GROUP = "group"
    SERVICE_ACCOUNT = "serviceAccount"
    DOMAIN = "domain"
    ALL_USERS = "allUsers"
    ALL_AUTHENTICATED_USERS = "allAuthenticatedUsers"


@dataclass(frozen=True)
class Principal:
    """A Kafka user (``User:name``) or a Google identity (``group:x@y``). Build with the class methods."""

    kind: PrincipalKind
    name: str

    @classmethod
    def kafka_user(cls, name: str) -> Principal:
        return cls._make(PrincipalKind.KAFKA_USER, name, _KAFKA_USER, "must be a SASL user name or mTLS DN")

    @classmethod
    def user(cls, email: str) -> Principal:
        return cls._make(PrincipalKind.USER, email, _EMAIL, "must be an e-mail address")

    @classmethod
    def group(cls, email: str) -> Principal:
        return cls._make(PrincipalKind.GROUP, email, _EMAIL, "must be an e-mail address")

    @classmethod
    def service_account(cls, email: str) -> Principal:
        return cls._make(PrincipalKind.SERVICE_ACCOUNT, email, _EMAIL, "must be a service account e-mail")

    @classmethod
    def domain(cls, domain: str) -> Principal:
        return cls._make(PrincipalKind.DOMAIN, domain, _DOMAIN, "must be a DNS domain")

    @classmethod
    def all_users(cls) -> Principal:
        """Anyone on the internet. Refused by grants unless ``allow_public=True`` is passed."""
        return cls(PrincipalKind.ALL_USERS, "")

    @classmethod
    def all_authenticated_users(cls) -> Principal:
        return cls(PrincipalKind.ALL_AUTHENTICATED_USERS, "")

    @classmethod
    def parse_iam_member(cls, member: str) -> Principal:
        """``group:finance@acme.com`` -> ``Principal.group("finance@acme.com")``."""
        if not isinstance(member, str):
            raise DatapipeError("Principal", "an IAM member must be a string", member)
        if member in ("allUsers", "allAuthenticatedUsers"):
            return cls(PrincipalKind(member), "")
        prefix, _, rest = member.partition(":")
        makers = {"user": cls.user, "group": cls.group, "serviceAccount": cls.service_account, "domain": cls.domain}
        if prefix not in makers:
            raise DatapipeError("Principal", "an IAM member must start with user:, group:, serviceAccount: or domain:", member)
        return makers[prefix](rest)

    @classmethod
    def parse_kafka(cls, principal: str) -> Principal:
        """``User:fraud-detector`` -> ``Principal.kafka_user("fraud-detector")``."""
        if not isinstance(principal, str) or not principal.startswith("User:"):
            raise DatapipeError("Principal", "a Kafka principal must look like 'User:<name>'", principal)
        return cls.kafka_user(principal[len("User:") :])

    @classmethod
    def _make(cls, kind: PrincipalKind, name: object, pattern: str, rule: str) -> Principal:
        if not isinstance(name, str) or not re.fullmatch(pattern, name):
            raise DatapipeError(f"Principal.{kind.value}", f"name {rule}", name)
        return cls(kind, name)

    @property
    def is_kafka(self) -> bool:
        return self.kind is PrincipalKind.KAFKA_USER

    @property
    def is_public(self) -> bool:
        return self.kind in (PrincipalKind.ALL_USERS, PrincipalKind.ALL_AUTHENTICATED_USERS)

    @property
    def kafka(self) -> str:
        """The principal as Kafka ACLs spell it."""
        if not self.is_kafka:
            raise DatapipeError("Principal", "only a Kafka user can be given Kafka ACLs", str(self))
        return f"User:{self.name}"

    @property
    def iam_member(self) -> str:
        """The principal as Google IAM spells it."""
        if self.is_kafka:
            raise DatapipeError("Principal", "a Kafka user cannot be given Google IAM roles", str(self))
        if self.is_public:
            return self.kind.value
        return f"{self.kind.value}:{self.name}"

    def __str__(self) -> str:
        return self.kafka if self.is_kafka else self.iam_member
