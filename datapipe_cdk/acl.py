"""L2: one Kafka ACL row, with typed enums instead of free strings."""

from __future__ import annotations

import hashlib
import re
from enum import Enum

from constructs import Construct

from . import _validate as check
from ._core import PipelineConstruct, pipeline_of
from .errors import DatapipeError
from .principal import Principal
from .providers.kafka import Acl


class ResourceType(Enum):
    TOPIC = "Topic"
    GROUP = "Group"
    CLUSTER = "Cluster"
    TRANSACTIONAL_ID = "TransactionalID"


class PatternType(Enum):
    LITERAL = "Literal"
    PREFIXED = "Prefixed"


class AclOperation(Enum):
    ALL = "All"
    READ = "Read"
    WRITE = "Write"
    CREATE = "Create"
    DELETE = "Delete"
    ALTER = "Alter"
    DESCRIBE = "Describe"
    CLUSTER_ACTION = "ClusterAction"
    DESCRIBE_CONFIGS = "DescribeConfigs"
    ALTER_CONFIGS = "AlterConfigs"
    IDEMPOTENT_WRITE = "IdempotentWrite"


class Permission(Enum):
    ALLOW = "Allow"
    DENY = "Deny"


_RESOURCE_NAME = r"[A-Za-z0-9._-]{1,249}|\*"
_HOST = r"\*|[0-9.]{7,15}|[0-9A-Fa-f:]{2,39}"


class KafkaAcl(PipelineConstruct):
    """One Kafka ACL (a ``kafka_acl`` resource): ``principal`` may (or may not) do ``operation`` on a
    topic, group, cluster or transactional id.

    Prefer the intent methods (``topic.grant_read``, ``topic.grant_write``): they write the minimal set.

    Args:
        scope: the stack or a construct under it.
        acl_id: the construct id.
        principal: a Kafka user (``Principal.kafka_user``).
        resource_type: ``ResourceType`` (or its value: ``"Topic"``, ``"Group"``, ``"Cluster"``, ``"TransactionalID"``).
        resource_name: the topic, group or transactional id, a prefix (with ``pattern=PREFIXED``), or
            ``kafka-cluster`` for the cluster. ``'*'`` (everything) needs ``allow_public=True``.
        operation: ``AclOperation`` (``Read``, ``Write``, ``Describe`` ...).
        pattern: ``PatternType.LITERAL`` (default) or ``PREFIXED``.
        permission: ``Permission.ALLOW`` (default) or ``DENY``.
        host: ``'*'`` or the one IP address the grant is limited to.
        allow_public: accept an Allow ACL on every resource (``'*'``).
    """

    def __init__(
        self,
        scope: Construct,
        acl_id: str,
        *,
        principal: Principal,
        resource_type: ResourceType,
        resource_name: str,
        operation: AclOperation,
        pattern: PatternType = PatternType.LITERAL,
        permission: Permission = Permission.ALLOW,
        host: str = "*",
        allow_public: bool = False,
    ) -> None:
        path = check.child_path(scope, acl_id, "KafkaAcl")
        stack = pipeline_of(scope, path)
        principal = check.instance(path, "principal", principal, Principal)
        if not principal.is_kafka:
            raise DatapipeError(path, "principal must be a Kafka user (Principal.kafka_user)", str(principal))
        resource_type = check.choice(path, "resource_type", resource_type, ResourceType)
        operation = check.choice(path, "operation", operation, AclOperation)
        pattern = check.choice(path, "pattern", pattern, PatternType)
        permission = check.choice(path, "permission", permission, Permission)
        check.text(path, "resource_name", resource_name, pattern=_RESOURCE_NAME, rule="must be a Kafka resource name or '*'")
        check.text(path, "host", host, pattern=_HOST, rule="must be '*' or an IP address")
        if resource_type is ResourceType.CLUSTER and resource_name != "kafka-cluster":
            raise DatapipeError(path, "a Cluster ACL's resource_name must be 'kafka-cluster'", resource_name)
        if resource_name == "*" and permission is Permission.ALLOW and not check.flag(path, "allow_public", allow_public):
            raise DatapipeError(path, "an Allow ACL on every resource ('*') needs allow_public=True", resource_name)
        super().__init__(scope, acl_id, pipeline=stack, path=path)
        self.principal = principal
        self.resource_type = resource_type
        self.resource_name = resource_name
        self.operation = operation
        self.pattern = pattern
        self.permission = permission
        self.host = host
        self.resource = Acl(
            self,
            "acl",
            resource_name=resource_name,
            resource_type=resource_type.value,
            resource_pattern_type_filter=pattern.value,
            acl_principal=principal.kafka,
            acl_host=host,
            acl_operation=operation.value,
            acl_permission_type=permission.value,
        )

    @property
    def key(self) -> tuple[str, ...]:
        return _key(
            self.principal, self.resource_type, self.resource_name, self.operation, self.pattern, self.permission, self.host
        )

    @classmethod
    def ensure(
        cls,
        scope: Construct,
        principal: Principal,
        resource_type: ResourceType,
        resource_name: str,
        operation: AclOperation,
        *,
        pattern: PatternType = PatternType.LITERAL,
    ) -> KafkaAcl:
        """The stack's Allow ACL with these fields, created once however many grants ask for it."""
        stack = pipeline_of(scope)
        key = _key(principal, resource_type, resource_name, operation, pattern, Permission.ALLOW, "*")
        existing = stack.registry.acls.get(key)
        if existing is not None:
            return existing
        acl = cls(
            stack,
            _acl_id(key),
            principal=principal,
            resource_type=resource_type,
            resource_name=resource_name,
            operation=operation,
            pattern=pattern,
        )
        stack.registry.acls[key] = acl
        return acl


def _key(
    principal: Principal,
    resource_type: ResourceType,
    resource_name: str,
    operation: AclOperation,
    pattern: PatternType,
    permission: Permission,
    host: str,
) -> tuple[str, ...]:
    return (principal.kafka, resource_type.value, resource_name, operation.value, pattern.value, permission.value, host)


def _acl_id(key: tuple[str, ...]) -> str:
    """A readable, stable construct id: acl-<user>-<op>-<type>-<name>-<hash>."""
    principal, resource_type, name, operation = key[0], key[1], key[2], key[3]
    readable = re.sub(r"[^A-Za-z0-9_.-]", "_", f"acl-{principal[5:]}-{operation}-{resource_type}-{name}")[:100]
    digest = hashlib.sha256("|".join(key).encode()).hexdigest()[:8]
    return f"{readable}-{digest}"
