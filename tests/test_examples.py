"""The example stacks: golden files (regenerate on purpose with UPDATE_GOLDEN=1), secrets, import cost."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from datapipe_cdk._cdk import Testing as CdktfTesting

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).with_name("golden")


def _example_docs(target: str) -> dict[str, dict]:
    """The example app synthesized for ``target`` (``production`` or ``local``), in memory."""
    old = os.environ.get("DATAPIPE_TARGET")
    os.environ["DATAPIPE_TARGET"] = target
    try:
        from stacks.main import build

        with tempfile.TemporaryDirectory() as outdir:
            app = build(outdir=outdir)
            docs = {}
            for stack in app.node.children:
                doc = json.loads(CdktfTesting.synth(stack, run_validations=True))
                doc.get("terraform", {}).pop("backend", None)  # holds this machine's absolute path
                docs[stack.node.id] = doc
        return docs
    finally:
        if old is None:
            del os.environ["DATAPIPE_TARGET"]
        else:
            os.environ["DATAPIPE_TARGET"] = old


@pytest.fixture(scope="module")
def production() -> dict[str, dict]:
    return _example_docs("production")


@pytest.mark.parametrize("stack", ["payments", "ledger"])
def test_example_stack_matches_golden_file(production, stack):
    golden = GOLDEN / f"{stack}.json"
    rendered = json.dumps(production[stack], indent=2, sort_keys=True) + "\n"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.write_text(rendered)
    assert golden.exists(), "run UPDATE_GOLDEN=1 pytest tests/test_examples.py to create the golden files"
    assert rendered == golden.read_text(), f"{stack} changed: review the diff, then UPDATE_GOLDEN=1 to accept it"


def test_local_target_points_the_same_app_at_the_local_stack():
    docs = _example_docs("local")
    payments = docs["payments"]
    assert payments["provider"]["google"][0]["big_query_custom_endpoint"].startswith("http://127.0.0.1:")
    assert "google_service_account" not in payments["resource"]
    source = next(iter(payments["resource"]["kafka-connect_connector"].values()))
    assert source["config"]["connector.class"] == "io.debezium.connector.mariadb.MariaDbConnector"


def test_no_secret_value_reaches_synthesized_json(production):
    text = json.dumps(production)
    for doc in production.values():
        for name, variable in doc.get("variable", {}).items():
            if any(word in name for word in ("password", "keyfile", "token")):
                assert variable["sensitive"] is True, name
        for connector in doc["resource"]["kafka-connect_connector"].values():
            assert "config_sensitive" not in connector
            for key, value in connector["config"].items():
                if any(word in key.lower() for word in ("password", "jaas")):
                    assert value.startswith("$${file:/etc/kafka-connect/secrets/"), (key, value)
                assert "BEGIN PRIVATE KEY" not in value
    assert "private_key" not in text


def test_import_does_not_load_heavy_or_runtime_modules():
    code = (
        "import sys\nfrom datapipe_cdk import *\n"
        "bad = [m for m in sys.modules if m.startswith(('cdktf_cdktf_provider', 'confluent_kafka', 'google.cloud',"
        " 'pandas', 'yaml', 'jsonschema', 'datapipe_cdk.runtime'))]\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert result.stdout.strip() == ""


def test_every_public_name_loads_lazily_from_its_module():
    import datapipe_cdk

    for name in datapipe_cdk.__all__:
        value = getattr(datapipe_cdk, name)
        module = importlib.import_module(datapipe_cdk._MODULE_OF[name], "datapipe_cdk")
        assert value is getattr(module, name), name
    assert set(datapipe_cdk.__all__) == set(datapipe_cdk._MODULE_OF)
    with pytest.raises(AttributeError):
        datapipe_cdk.NotAConstruct  # noqa: B018
