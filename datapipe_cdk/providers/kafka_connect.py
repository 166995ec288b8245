"""L1: the Mongey/kafka-connect provider (connectors)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from constructs import Construct

from .._cdk import ITerraformDependable
from ._base import Provider, Resource


class KafkaConnectProvider(Provider):
    TYPE = "kafka-connect"
    SOURCE = "Mongey/kafka-connect"
    VERSION = "0.5.0"

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        url: str,
        basic_auth_username: str | None = None,
        basic_auth_password: str | None = None,
        tls_root_ca_file: str | None = None,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            {
                "url": url,
                "basic_auth_username": basic_auth_username,
                "basic_auth_password": basic_auth_password,
                "tls_root_ca_file": tls_root_ca_file,
            },
        )


class Connector(Resource):
    """A connector. The provider refuses a ``config`` without ``name``, so it is always repeated there."""

    TYPE = "kafka-connect_connector"
    PROVIDER = "kafka-connect"

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        config: Mapping[str, str],
        config_sensitive: Mapping[str, str] | str | None = None,
        timeouts: Mapping[str, str] | None = None,
        depends_on: Sequence[ITerraformDependable] | None = None,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            {
                "name": name,
                "config": {"name": name, **config},
                "config_sensitive": config_sensitive,
                "timeouts": dict(timeouts) if timeouts else None,
            },
            depends_on=depends_on,
        )
