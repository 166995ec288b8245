"""datapipe-cdk: CDK for Terraform constructs for real-time CDC pipelines (Kafka -> BigQuery).

Import cost matters (users synth on every commit): this module imports cdktf, constructs and
jinja2 only. Runtime helpers live in ``datapipe_cdk.runtime`` and are never imported from here.
"""

import os as _os

# jsii (under cdktf) prints a banner on every run under Node 20; the project pins its own Node
# where it can, and silences the banner where it cannot.
_os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from .acl import AclOperation, KafkaAcl, PatternType, Permission, ResourceType
from .errors import DatapipeError
from .principal import Principal
from .schema import Classification, Column, ColumnType, InfoType, Table, Treatment
from .sink import BigQuerySink, ChangelogTable
from .source import CdcSource, DecimalHandling, Engine, SnapshotMode
from .stack import ConnectCluster, DataPipelineStack, GcpProject, KafkaCluster, SaslMechanism
from .topic import CleanupPolicy, ImportedTopic, StreamingTopic
from .units import FOREVER
from .warehouse import MicroWarehouse, View

__all__ = [
    "FOREVER",
    "AclOperation",
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
    "DecimalHandling",
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
