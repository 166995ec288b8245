"""L2: a Kafka topic, owned (``StreamingTopic``) or imported (``StreamingTopic.from_name``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from enum import Enum
from functools import cached_property

from constructs import Construct

from . import _validate as check
from ._core import PipelineConstruct, pipeline_of, warn
from .acl import AclOperation, KafkaAcl, PatternType, ResourceType
from .errors import DatapipeError
from .principal import Principal
from .providers.kafka import Topic
from .units import FOREVER, to_millis, to_rfc3339

_TOPIC = r"[A-Za-z0-9._-]{1,249}"
_GROUP = r"[A-Za-z0-9._-]{1,249}"
MANAGED_CONFIG = {
    "cleanup.policy": "cleanup_policy",
    "retention.ms": "retention",
    "min.compaction.lag.ms": "min_compaction_lag",
    "min.insync.replicas": "min_in_sync_replicas",
}
"""Topic config keys a typed argument owns: key -> the argument."""


class CleanupPolicy(Enum):
    DELETE = "delete"
    COMPACT = "compact"
    COMPACT_DELETE = "compact,delete"


def check_topic_name(path: str, name: object) -> str:
    name = check.name(
        path,
        "topic name",
        name,
        pattern=_TOPIC,
        max_length=249,
        rule="may hold only letters, digits, '.', '_', '-' (1-249 characters)",
        why="connectors, grants and the collision check need the topic's name",
    )
    if name in (".", ".."):
        raise DatapipeError(path, "topic name cannot be '.' or '..'", name)
    return name


class TopicReference(PipelineConstruct):
    """Anything with a topic name that grants can target."""

    name: str
    owner: Principal | None = None
    temporary_grants: list[dict[str, object]]
    """Grants with an expiry: Kafka ACLs have none, so it is recorded (manifest, ``datapipe expired-grants``)."""

    def grant_read(
        self,
        principal: Principal,
        *,
        consumer_group: str | None = None,
        consumer_group_prefix: str | None = None,
        until: datetime | None = None,
    ) -> list[KafkaAcl]:
        """Let ``principal`` consume: Read+Describe on the topic, Read on its consumer group(s).

        Args:
            principal: a Kafka user (``Principal.kafka_user("fraud-detector")``).
            consumer_group: the one consumer group it reads with (a literal group ACL), or
            consumer_group_prefix: a group-id prefix (a prefixed group ACL); give exactly one of the two.
            until: a timezone-aware ``datetime`` when the grant ends. Kafka ACLs cannot expire by
                themselves: the expiry is recorded in the manifest and ``datapipe expired-grants``
                lists it once past (remove the grant then). A time already past is refused.

        Returns the ``KafkaAcl`` constructs (shared with other grants asking for the same ACL).
        """
        path = check.path_of(self)
        principal = _kafka_principal(path, principal)
        if (consumer_group is None) == (consumer_group_prefix is None):
            raise DatapipeError(
                path,
                "grant_read needs exactly one of consumer_group or consumer_group_prefix",
                (consumer_group, consumer_group_prefix),
            )
        group = consumer_group if consumer_group is not None else consumer_group_prefix
        check.text(path, "consumer group", group, pattern=_GROUP, rule="must be a Kafka group id")
        assert group is not None
        if until is not None:
            check.future_moment(path, "until", until)
        pattern = PatternType.LITERAL if consumer_group is not None else PatternType.PREFIXED
        acls = [
            KafkaAcl.ensure(self, principal, ResourceType.TOPIC, self.name, AclOperation.READ),
            KafkaAcl.ensure(self, principal, ResourceType.TOPIC, self.name, AclOperation.DESCRIBE),
            KafkaAcl.ensure(self, principal, ResourceType.GROUP, group, AclOperation.READ, pattern=pattern),
        ]
        if until is not None:
            self.temporary_grants.append(
                {
                    "principal": principal.kafka,
                    "topic": self.name,
                    "access": "read",
                    "until": to_rfc3339(until),
                    "acls": [list(a.key) for a in acls],
                }
            )
        return acls

    def grant_write(
        self,
        principal: Principal,
        *,
        idempotent: bool = False,
        transactional_id: str | None = None,
    ) -> list[KafkaAcl]:
        """Let ``principal`` produce: Write+Describe on the topic.

        Args:
            principal: a Kafka user.
            idempotent: also IdempotentWrite on the cluster (producers with ``enable.idempotence``).
            transactional_id: also Write+Describe on this transactional id (transactional producers).
        """
        path = check.path_of(self)
        principal = _kafka_principal(path, principal)
        acls = [
            KafkaAcl.ensure(self, principal, ResourceType.TOPIC, self.name, AclOperation.WRITE),
            KafkaAcl.ensure(self, principal, ResourceType.TOPIC, self.name, AclOperation.DESCRIBE),
        ]
        if check.flag(path, "idempotent", idempotent):
            acls.append(KafkaAcl.ensure(self, principal, ResourceType.CLUSTER, "kafka-cluster", AclOperation.IDEMPOTENT_WRITE))
        if transactional_id is not None:
            check.text(path, "transactional_id", transactional_id, pattern=_GROUP, rule="must be a transactional id")
            for operation in (AclOperation.WRITE, AclOperation.DESCRIBE):
                acls.append(KafkaAcl.ensure(self, principal, ResourceType.TRANSACTIONAL_ID, transactional_id, operation))
        return acls


class StreamingTopic(TopicReference):
    """A Kafka topic this stack creates (a ``kafka_topic`` resource).

    Args:
        scope: the stack or a construct under it.
        topic_id: the construct id.
        name: the topic's name (letters, digits, '.', '_', '-'); never reused by another topic.
        partitions: the partition count (Terraform increases it in place; a decrease recreates the topic).
        replication_factor: copies of each partition; default ``min(3, brokers)``, at most the broker count.
        min_in_sync_replicas: ``min.insync.replicas``, the copies an ``acks=all`` write (Connect's producers)
            must reach before it counts as written; default 2 with 3 or more replicas (a write survives losing
            its leader; one broker may be down), else 1. Set on the topic, never left to the broker default.
        retention: how long records are kept (``retention.ms``), a ``timedelta``; ``FOREVER`` keeps them;
            ``None`` leaves the broker default.
        cleanup_policy: ``CleanupPolicy.DELETE`` (default), ``COMPACT`` or ``COMPACT_DELETE``.
        min_compaction_lag: ``min.compaction.lag.ms`` for compacted topics.
        config: any other topic config (string values); keys the typed arguments own are refused.
        owner: who to ask about the topic (policy ``owner-required``).

    ``topic.resource`` is the L1 ``kafka_topic`` (escape hatch: ``topic.resource.add_override(...)``).
    """

    def __init__(
        self,
        scope: Construct,
        topic_id: str,
        *,
        name: str,
        partitions: int = 1,
        replication_factor: int | None = None,
        min_in_sync_replicas: int | None = None,
        retention: timedelta | None = None,
        cleanup_policy: CleanupPolicy = CleanupPolicy.DELETE,
        min_compaction_lag: timedelta | None = None,
        config: Mapping[str, str] | None = None,
        owner: Principal | None = None,
    ) -> None:
        path = check.child_path(scope, topic_id, "StreamingTopic")
        if owner is not None:
            check.instance(path, "owner", owner, Principal)
        stack = pipeline_of(scope, path)
        name = check_topic_name(path, name)
        check.integer(path, "partitions", partitions, minimum=1, maximum=100_000)
        if replication_factor is None:
            replication_factor = stack.default_replication_factor
        check.integer(path, "replication_factor", replication_factor, minimum=1)
        if stack.kafka.brokers is not None and replication_factor > stack.kafka.brokers:
            raise DatapipeError(
                path,
                f"replication_factor must be <= the cluster's broker count ({stack.kafka.brokers}, "
                "KafkaCluster(brokers=...); on the local stack DATAPIPE_KAFKA_BROKERS, default 1): each copy needs "
                "its own broker; lower it or omit it (default min(3, brokers))",
                replication_factor,
            )
        if min_in_sync_replicas is None:
            min_in_sync_replicas = 2 if replication_factor >= 3 else 1
        check.integer(path, "min_in_sync_replicas", min_in_sync_replicas)
        if min_in_sync_replicas < 1:
            raise DatapipeError(
                path,
                "min_in_sync_replicas must be >= 1: it counts the copies a write must reach, the leader's included; "
                "use 2 with 3 or more replicas, else 1 (or omit it)",
                min_in_sync_replicas,
            )
        if min_in_sync_replicas > replication_factor:
            raise DatapipeError(
                path,
                f"min_in_sync_replicas must be <= replication_factor ({replication_factor}): no write could ever reach "
                "more copies than exist, so every write would fail; lower it or add replicas",
                min_in_sync_replicas,
            )
        cleanup_policy = check.choice(path, "cleanup_policy", cleanup_policy, CleanupPolicy)
        settings = check.string_map(path, "config", config or {})
        for key, value in settings.items():
            if not re.fullmatch(r"[a-z][a-z0-9.]*[a-z0-9]", key):
                raise DatapipeError(path, "config keys are Kafka topic config names (lowercase, dotted, no spaces)", key)
            check.plain(path, f"config[{key!r}]", value)
            if key in MANAGED_CONFIG:
                raise DatapipeError(
                    path, f"config must not set {key!r}: use the typed argument {MANAGED_CONFIG[key]}= instead", key
                )
            if key == "unclean.leader.election.enable" and value.strip().lower() != "false":
                raise DatapipeError(
                    path,
                    "config must not enable unclean.leader.election.enable: a replica that missed writes could become "
                    "leader and drop writes already acknowledged (and change events with them); leave it unset",
                    value,
                )
        if retention is not None and retention != FOREVER:
            check.duration(path, "retention", retention)
        if min_compaction_lag is not None:
            check.duration(path, "min_compaction_lag", min_compaction_lag)
            if cleanup_policy is CleanupPolicy.DELETE:
                raise DatapipeError(path, "min_compaction_lag needs a compacting cleanup_policy", min_compaction_lag)
        collision = _collision_key(name)
        other = stack.registry.topic_collision_keys.get(collision)
        if other is not None and other != name:
            raise DatapipeError(
                path,
                f"topic name collides with {other!r} ({stack.registry.topics[other]}): "
                "Kafka treats '.' and '_' alike in metric names",
                name,
            )
        stack.claim("topic", name, path)
        stack.registry.topic_collision_keys[collision] = name

        super().__init__(scope, topic_id, pipeline=stack, path=path)
        self.name = name
        self.owner = owner
        self.temporary_grants = []
        self.partitions = partitions
        self.replication_factor = replication_factor
        self.min_in_sync_replicas = min_in_sync_replicas
        self.retention = retention
        self.cleanup_policy = cleanup_policy
        topic_config = {"cleanup.policy": cleanup_policy.value, "min.insync.replicas": str(min_in_sync_replicas), **settings}
        if retention is not None:
            topic_config["retention.ms"] = str(to_millis(retention))
        if min_compaction_lag is not None:
            topic_config["min.compaction.lag.ms"] = str(to_millis(min_compaction_lag))
        self.config = topic_config
        self.resource = Topic(
            self, "topic", name=name, partitions=partitions, replication_factor=replication_factor, config=topic_config
        )
        if 1 < replication_factor == min_in_sync_replicas:
            warn(
                self,
                f"topic {name!r}: min_in_sync_replicas equals replication_factor ({replication_factor}): writes stop "
                "whenever one broker holding a copy is down",
            )
        derived = getattr(scope, "derives_topic_names", False)  # e.g. Debezium's <prefix>.<database>.<table>
        if "." in name and "_" in name.lstrip("_") and not derived:  # leading '_' marks internal topics
            warn(self, f"topic {name!r} mixes '.' and '_': Kafka metric names would collide with a topic differing only there")

    @cached_property
    def name_ref(self) -> str:
        """The name as a Terraform reference, so Terraform creates the topic before its users."""
        return self.resource.get_string_attribute("name")

    @staticmethod
    def from_name(scope: Construct, topic_id: str, name: str) -> ImportedTopic:
        """A topic this stack does not own, usable by grants and sinks."""
        return ImportedTopic(scope, topic_id, name=name)


class ImportedTopic(TopicReference):
    """An existing topic: nothing is created, grants still work."""

    def __init__(self, scope: Construct, topic_id: str, *, name: str) -> None:
        path = check.child_path(scope, topic_id, "StreamingTopic.from_name")
        stack = pipeline_of(scope, path)
        name = check_topic_name(path, name)
        super().__init__(scope, topic_id, pipeline=stack, path=path)
        self.name = name
        self.temporary_grants = []

    @property
    def name_ref(self) -> str:
        return self.name


def _kafka_principal(path: str, value: object) -> Principal:
    principal: Principal = check.instance(path, "principal", value, Principal)
    if not principal.is_kafka:
        raise DatapipeError(path, "Kafka grants need a Kafka user (Principal.kafka_user)", str(principal))
    return principal


def _collision_key(name: str) -> str:
    return name.replace(".", "_")
