"""What an editor, ``help()`` and Jupyter's ``?`` show of the public API, and what a type checker sees of a user's
app in a folder of its own."""

from __future__ import annotations

import inspect
import pydoc
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import datapipe_cdk

CONSTRUCTS = ["CdcSource", "BigQuerySink", "MicroWarehouse", "StreamingTopic", "DataPipelineStack", "KafkaAcl"]


@pytest.mark.parametrize("name", CONSTRUCTS)
def test_every_construct_shows_its_real_parameters_and_documents_each(name: str) -> None:
    construct = getattr(datapipe_cdk, name)
    parameters = [p for p in inspect.signature(construct).parameters.values() if p.name not in ("self",)]
    assert len(parameters) >= 3 and not any(p.kind is p.VAR_POSITIONAL for p in parameters), inspect.signature(construct)
    text = pydoc.render_doc(construct, renderer=pydoc.plaintext)
    assert "*args, **kwargs" not in text.split("\n\n")[1]
    documented = construct.__doc__ or ""
    undocumented = [p.name for p in parameters if f"{p.name}:" not in documented]
    assert not undocumented, f"{name} does not document {undocumented}"


def test_help_of_cdc_source_shows_its_parameters() -> None:
    text = pydoc.render_doc(datapipe_cdk.CdcSource, renderer=pydoc.plaintext)
    assert "CdcSource(scope: 'Construct', source_id: 'str', *, engine: 'Engine | str', host: 'str'" in text
    assert "masked: ``{table: [column, ...]}`` replaced by ``********`` before Kafka" in text


def test_a_user_app_outside_the_repository_type_checks_against_the_installed_package(tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    app.write_text(
        textwrap.dedent(
            """
            from datapipe_cdk import (App, BigQuerySink, CdcSource, Column, ColumnType, ConnectCluster, DataPipelineStack,
                                      GcpProject, KafkaCluster, Principal, Table)


            def build(outdir: str) -> App:
                app = App(outdir=outdir)
                stack = DataPipelineStack(app, "shop", kafka=KafkaCluster(bootstrap_servers=["k:9092"]),
                                          connect=ConnectCluster(url="https://c", principal=Principal.kafka_user("c"),
                                                                 basic_auth_username="d"),
                                          gcp=GcpProject(project="shop-data"))
                source = CdcSource(stack, "db", engine="mysql", host="db", database="shop",
                                   tables={"orders": Table(["id"], [Column("id", ColumnType.INT64)])})
                BigQuerySink(stack, "raw", source=source, dataset="shop_raw")
                return app
            """
        )
    )
    wrong = tmp_path / "wrong.py"
    wrong.write_text("from datapipe_cdk import CdcSource\n\nCdcSource.topic(None, 42)\n")
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(app)], cwd=tmp_path, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    refused = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", str(wrong)], cwd=tmp_path, capture_output=True, text=True
    )
    assert refused.returncode == 1 and 'incompatible type "int"; expected "str"' in refused.stdout, refused.stdout
