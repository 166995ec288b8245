"""Connector secrets stay on the Kafka Connect workers.

A connector config never holds a password, a JAAS line or a key: it names a file on the workers through
Kafka Connect's ``file`` config provider, ``${file:<secrets_dir>/<file>:<key>}``, which each worker
resolves when it starts the connector. ``GET /connectors/<name>/config`` then returns the reference,
not the value, and nothing secret reaches the Terraform JSON, its plan or its state.

The workers must enable the provider and restrict it to the secrets directory::

    config.providers=file
    config.providers.file.class=org.apache.kafka.common.config.provider.FileConfigProvider
    config.providers.file.param.allowed.paths=<secrets_dir>

Every file and key a stack needs is listed in its manifest (``worker_secrets``) and by
``datapipe worker-secrets``; the local stack writes them itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from .settings import ConnectCluster


@dataclass(frozen=True)
class SecretFile:
    """One properties file in the workers' secrets directory, read by one connector."""

    directory: str
    name: str
    used_by: str
    what: str

    @property
    def path(self) -> str:
        return f"{self.directory.rstrip('/')}/{self.name}"

    def reference(self, key: str) -> str:
        """The config value that makes the worker read ``key`` from this file (escaped for Terraform JSON)."""
        return "$${file:" + self.path + ":" + key + "}"


def connector_secrets(connect: ConnectCluster, connector: str, what: str) -> SecretFile:
    """The properties file holding ``connector``'s secrets (``<secrets_dir>/<connector>.properties``)."""
    return SecretFile(connect.secrets_dir, f"{connector}.properties", connector, what)


def unescaped(value: str) -> str:
    """A config value as the worker receives it (Terraform turns ``$${`` into ``${``)."""
    return value.replace("$${", "${")
