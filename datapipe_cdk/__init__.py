"""datapipe-cdk: CDK for Terraform constructs for real-time CDC pipelines (Kafka -> BigQuery).

Runs on CDK Terrain (``cdktn``) or CDK for Terraform 0.21 (``cdktf``): ``datapipe_cdk.App`` is the App of the
core installed (see :mod:`datapipe_cdk._cdk`).

Import cost matters (users synth on every commit). The public names below load on first use
(PEP 562), so ``import datapipe_cdk.runtime`` in a notebook never starts cdktf's Node.js
process, and the construct modules import cdktf, constructs and jinja2 only. Runtime helpers
live in ``datapipe_cdk.runtime`` and are never imported from here.
"""

from __future__ import annotations

import os as _os
from importlib import import_module as _import_module
from typing import TYPE_CHECKING, Any

# jsii (under cdktf) prints a banner on every run under Node 20; the project pins its own Node
# where it can, and silences the banner where it cannot.
_os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

if TYPE_CHECKING:  # the names below, for type checkers
    from ._cdk import App
    from .acl import AclOperation, KafkaAcl, PatternType, Permission, ResourceType
    from .errors import DatapipeError
    from .principal import Principal
    from .schema import Classification, Column, ColumnType, InfoType, Table, Treatment
    from .sink import BigQuerySink, ChangelogTable
    from .source import CdcSource, Engine, SnapshotMode
    from .stack import ConnectCluster, DataPipelineStack, GcpProject, KafkaCluster, SaslMechanism
    from .topic import CleanupPolicy, ImportedTopic, StreamingTopic
    from .units import FOREVER
    from .warehouse import MicroWarehouse, View

_EXPORTS = {
    "._cdk": ("App",),  # cdktn's or cdktf's App, whichever core is installed
    ".acl": ("AclOperation", "KafkaAcl", "PatternType", "Permission", "ResourceType"),
    ".errors": ("DatapipeError",),
    ".principal": ("Principal",),
    ".schema": ("Classification", "Column", "ColumnType", "InfoType", "Table", "Treatment"),
    ".sink": ("BigQuerySink", "ChangelogTable"),
    ".source": ("CdcSource", "Engine", "SnapshotMode"),
    ".stack": ("ConnectCluster", "DataPipelineStack", "GcpProject", "KafkaCluster", "SaslMechanism"),
    ".topic": ("CleanupPolicy", "ImportedTopic", "StreamingTopic"),
    ".units": ("FOREVER",),
    ".warehouse": ("MicroWarehouse", "View"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = [
    "FOREVER",
    "AclOperation",
    "App",
    "BigQuerySink",
    "CdcSource",
    "ChangelogTable",
    "Classification",
    "CleanupPolicy",
    "Column",
    "ColumnType",
    "ConnectCluster",
    "DataPipelineStack",
    "DatapipeError",
    "Engine",
    "GcpProject",
    "ImportedTopic",
    "InfoType",
    "KafkaAcl",
    "KafkaCluster",
    "MicroWarehouse",
    "PatternType",
    "Permission",
    "Principal",
    "ResourceType",
    "SaslMechanism",
    "SnapshotMode",
    "StreamingTopic",
    "Table",
    "Treatment",
    "View",
]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'datapipe_cdk' has no attribute {name!r}")
    value = getattr(_import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
