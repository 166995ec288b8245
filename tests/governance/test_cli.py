"""The ``datapipe`` CLI, in-process: exit codes 0 ok / 1 policy failure / 64 usage error, and its outputs."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from datapipe_cdk.cli import USAGE, main

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "stacks" / "main.py")


@pytest.fixture(autouse=True)
def _production(monkeypatch):
    monkeypatch.delenv("DATAPIPE_TARGET", raising=False)


@pytest.fixture
def failing_app(tmp_path) -> str:
    app = tmp_path / "app.py"
    app.write_text(
        textwrap.dedent("""
        from datapipe_cdk._cdk import App
        from tests.governance.helpers import make_sink, make_source, make_stack

        def build(outdir):
            stack = make_stack(app=App(outdir=outdir))
            make_sink(stack, make_source(stack))
            return stack.node.scope
    """)
    )
    return str(app)


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "cdktf.out"
    assert main(["synth", "--app", APP, "--out", str(out)]) == 0
    return out


def test_validate_passes_on_the_example(capsys):
    assert main(["validate", "--app", APP]) == 0
    assert capsys.readouterr().out == "payments: all policies pass\nledger: all policies pass\n"


def test_validate_fails_with_the_policy_messages(failing_app, capsys):
    assert main(["validate", "--app", failing_app, "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert [v["policy"] for v in report["violations"]["test"]] == ["pii-in-clean-dataset"] * 2
    assert report["violations"]["test"][0]["path"] == "test/raw/changelog-accounts"


def test_synth_refuses_a_stack_that_breaks_a_policy(failing_app, tmp_path, capsys):
    assert main(["synth", "--app", failing_app, "--out", str(tmp_path / "out")]) == 1
    assert "PII column accounts.email (EMAIL_ADDRESS) reaches dataset payments_raw unmasked" in capsys.readouterr().err
    assert not list((tmp_path / "out").rglob("cdk.tf.json")), "nothing is synthesized when a policy fails"


def test_usage_errors_exit_64(tmp_path, capsys):
    assert main(["validate", "--app", str(tmp_path / "missing.py")]) == USAGE
    assert "app file" in capsys.readouterr().err
    assert main(["access", "--out", str(tmp_path)]) == USAGE
    assert "run `datapipe synth` first" in capsys.readouterr().err
    assert main([]) == USAGE
    with pytest.raises(SystemExit) as exited:
        main(["no-such-command"])
    assert exited.value.code == USAGE
    assert main(["lineage", "--app", APP, "--stack", "nope"]) == USAGE


def test_with_json_an_error_is_json_on_stdout(tmp_path, capsys):
    assert main(["validate", "--json", "--app", str(tmp_path / "missing.py")]) == USAGE
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and report["error"]["kind"] == "usage"
    assert "app file" in report["error"]["message"]


def test_synth_writes_lineage_and_catalog_beside_the_terraform_json(synthesized):
    payments = synthesized / "stacks" / "payments"
    names = {p.name for p in payments.iterdir()} - {"lineage.svg"}  # the SVG only where Graphviz is installed
    assert names == {"cdk.tf.json", "catalog.json", "lineage.dot", "lineage.json", "lineage.mmd", "openlineage.json"}
    assert json.loads((payments / "catalog.json").read_text())["stack"] == "payments"
    assert (payments / "lineage.mmd").read_text().startswith("flowchart LR")


def test_access_prints_who_can_read_what(synthesized, capsys):
    assert main(["access", "--out", str(synthesized), "--stack", "payments", "--principal", "User:chargeback-audit"]) == 0
    assert capsys.readouterr().out == (
        "== payments: who can read what ==\n"
        "User:chargeback-audit\n"
        "  kafka    Read                   Topic:payments.payments.refunds  (until 2030-03-31T00:00:00Z)\n"
    )
    assert main(["access", "--out", str(synthesized), "--json", "--all"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["stack"] for r in rows} == {"payments", "ledger"}
    assert any(r["principal"] == "group:fraud-analysts@acme.com" and r["resource"] == "dataset:fraud_analytics" for r in rows)


def test_expired_grants_lists_expired_kafka_grants_and_exits_1(synthesized, capsys):
    assert main(["expired-grants", "--out", str(synthesized), "--at", "2030-01-01T00:00:00Z"]) == 0
    assert capsys.readouterr().out == "no expired temporary grants\n"
    assert main(["expired-grants", "--out", str(synthesized), "--at", "2030-04-01T00:00:00Z", "--json"]) == 1
    found = json.loads(capsys.readouterr().out)
    kafka = [g for g in found if g["system"] == "kafka"]
    assert kafka == [
        {
            "stack": "payments",
            "principal": "User:chargeback-audit",
            "system": "kafka",
            "resource": "Topic:payments.payments.refunds",
            "until": "2030-03-31T00:00:00Z",
            "acls_present": 3,
            "where": "synthesized stack",
            "remedy": "3 ACL(s) still in the synthesized stack (Kafka ACLs do not expire): "
            "remove the grant_read(..., until=...) and deploy",
        }
    ]
    bigquery = {(g["principal"], g["resource"]) for g in found if g["system"] == "bigquery"}
    assert bigquery == {
        ("user:auditor@acme.com", "dataset:risk"),
        ("user:external-investigator@acme.com", "dataset:fraud_analytics"),
    }
    assert main(["expired-grants", "--out", str(synthesized), "--at", "soon"]) == USAGE


def test_lineage_and_catalog_commands_have_one_json_shape_for_one_or_many_stacks(capsys):
    assert main(["lineage", "--app", APP, "--stack", "ledger", "--format", "dot"]) == 0
    assert capsys.readouterr().out.startswith('digraph "ledger" {')
    assert main(["lineage", "--app", APP, "--stack", "ledger"]) == 0
    [ledger] = json.loads(capsys.readouterr().out)
    assert len(ledger["edges"]) == 9
    assert main(["lineage", "--app", APP]) == 0
    assert [g["stack"] for g in json.loads(capsys.readouterr().out)] == ["payments", "ledger"]
    assert main(["catalog", "--app", APP, "--stack", "ledger"]) == 0
    assert [c["stack"] for c in json.loads(capsys.readouterr().out)] == ["ledger"]
    assert main(["catalog", "--app", APP]) == 0
    assert [c["stack"] for c in json.loads(capsys.readouterr().out)] == ["payments", "ledger"]


def test_worker_secrets_lists_every_file_the_workers_need(synthesized, capsys):
    assert main(["worker-secrets", "--out", str(synthesized), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    files = {(r["stack"], r["file"]): r["keys"] for r in rows}
    assert files[("payments", "/etc/kafka-connect/secrets/payments-db.properties")] == [
        "database.password",
        "kafka.sasl.jaas.config",
    ]
    assert files[("ledger", "/etc/kafka-connect/secrets/ledger-raw-gcp-key.json")] == []


def test_schema_command_prints_the_published_schema(capsys):
    assert main(["schema"]) == 0
    assert capsys.readouterr().out == (ROOT / "schemas" / "team.schema.json").read_text()
