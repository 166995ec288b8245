"""The ``datapipe`` CLI, in-process: exit codes 0 ok / 1 policy failure / 2 usage error, and its outputs."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from datapipe_cdk.cli import main, terraform_commands

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "stacks" / "main.py")


@pytest.fixture(autouse=True)
def _production(monkeypatch):
    monkeypatch.setenv("DATAPIPE_PROFILE", "production")


@pytest.fixture
def failing_app(tmp_path) -> str:
    app = tmp_path / "app.py"
    app.write_text(
        textwrap.dedent("""
        from cdktf import App
        from tests.governance.helpers import make_sink, make_source, make_stack

        def build(outdir):
            stack = make_stack()
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
    assert not (tmp_path / "out" / "stacks").exists()


def test_usage_errors_exit_2(tmp_path, capsys):
    assert main(["validate", "--app", str(tmp_path / "missing.py")]) == 2
    assert "app file" in capsys.readouterr().err
    assert main(["access", "--out", str(tmp_path)]) == 2
    assert "run `datapipe synth` first" in capsys.readouterr().err
    assert main([]) == 2
    with pytest.raises(SystemExit) as exited:
        main(["no-such-command"])
    assert exited.value.code == 2
    assert main(["lineage", "--app", APP, "--stack", "nope"]) == 2


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
    assert main(["expired-grants", "--out", str(synthesized), "--at", "2030-03-30T00:00:00Z"]) == 0
    assert capsys.readouterr().out == "no expired temporary Kafka grants\n"
    assert main(["expired-grants", "--out", str(synthesized), "--at", "2030-04-01T00:00:00Z", "--json"]) == 1
    assert json.loads(capsys.readouterr().out) == [
        {
            "stack": "payments",
            "principal": "User:chargeback-audit",
            "system": "kafka",
            "resource": "Topic:payments.payments.refunds",
            "until": "2030-03-31T00:00:00Z",
            "acls_present": 3,
            "where": "synthesized stack",
        }
    ]
    assert main(["expired-grants", "--out", str(synthesized), "--at", "soon"]) == 2


def test_lineage_and_catalog_commands(capsys):
    assert main(["lineage", "--app", APP, "--stack", "ledger", "--format", "dot"]) == 0
    assert capsys.readouterr().out.startswith('digraph "ledger" {')
    assert main(["lineage", "--app", APP, "--stack", "ledger"]) == 0
    assert len(json.loads(capsys.readouterr().out)["edges"]) == 9
    assert main(["catalog", "--app", APP, "--stack", "ledger"]) == 0
    assert json.loads(capsys.readouterr().out)["stack"] == "ledger"


def test_plan_deploy_destroy_wrap_tofu_or_cdktf(capsys, tmp_path):
    assert main(["plan", "--app", APP, "--out", str(tmp_path), "--stack", "ledger", "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert f"$ (cd {tmp_path}/stacks/ledger && tofu init -input=false -no-color)" in err  # not a terminal: no colors
    assert f"$ (cd {tmp_path}/stacks/ledger && tofu plan -input=false -no-color)" in err
    assert terraform_commands("deploy", "payments", "cdktf.out", tool="tofu", auto_approve=True)[1] == (
        ["tofu", "apply", "-input=false", "-auto-approve"],
        "cdktf.out/stacks/payments",
    )
    assert terraform_commands("deploy", "payments", "cdktf.out", tool="cdktf", auto_approve=True) == [
        (["cdktf", "deploy", "payments", "--skip-synth", "--output", "cdktf.out", "--skip-provider-lock", "--auto-approve"], ".")
    ]
    assert terraform_commands("plan", "payments", "out", tool="cdktf", auto_approve=False)[0][0][:2] == ["cdktf", "diff"]


def test_schema_command_prints_the_published_schema(capsys):
    assert main(["schema"]) == 0
    assert capsys.readouterr().out == (ROOT / "schemas" / "team.schema.json").read_text()
