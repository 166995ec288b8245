"""Self-serve team files: valid files compile to warehouses; bad ones fail with file, line and what was expected."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from datapipe_cdk import DatapipeError, MicroWarehouse
from datapipe_cdk.teamspec import SCHEMA, compile_team, compile_teams, load, schema_json
from tests.governance.helpers import example_stacks, make_sink, make_source, make_stack, messages

ROOT = Path(__file__).resolve().parents[2]
VALID = """\
team: fraud-analytics
stack: test
owners:
  - group:fraud-eng@acme.com
readers: [group:fraud@acme.com]
retention_days: 365
tables:
  - sink: raw
    table: orders
    columns: [id, account_id, amount]
  - sink: raw
    table: accounts
    columns: [id, country]
    as: account_geo
views:
  - name: big_orders
    sql: SELECT * FROM {{ ref('orders') }} WHERE amount > 1000
temporary_grants:
  - principal: user:investigator@acme.com
    until: 2030-01-31T00:00:00Z
"""


def _pipeline(*, masked: bool = True):
    stack = make_stack()
    source = make_source(stack, masked={"accounts": ["email", "phone"]} if masked else {})
    make_sink(stack, source, holds_pii=not masked, retention=timedelta(days=365))
    return stack


def _write(tmp_path: Path, text: str, name: str = "team.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def _error(tmp_path: Path, text: str) -> str:
    path = _write(tmp_path, text)
    with pytest.raises(DatapipeError) as caught:
        compile_team(_pipeline(), load(path, display="teams/team.yaml"))
    return str(caught.value)


def test_a_valid_team_file_compiles_to_a_microwarehouse(tmp_path):
    stack = _pipeline()
    [warehouse] = compile_teams(stack, _write(tmp_path, VALID).parent)
    assert isinstance(warehouse, MicroWarehouse) and warehouse.node.path == "test/fraud-analytics"
    assert warehouse.dataset.dataset_id == "fraud_analytics"
    assert warehouse.dataset.retention == timedelta(days=365)
    assert [str(p) for p in warehouse.dataset.readers] == ["group:fraud@acme.com"]
    assert list(warehouse.views) == ["orders", "account_geo", "big_orders"]
    assert warehouse.views["account_geo"].columns == ("id", "country")
    assert warehouse.views["big_orders"].depends_on == ("orders",)
    assert warehouse.temporary_grants == [{"principal": "user:investigator@acme.com", "until": "2030-01-31T00:00:00Z"}]
    assert messages(stack) == []


def test_files_for_other_stacks_are_skipped(tmp_path):
    _write(tmp_path, VALID.replace("stack: test", "stack: ledger"))
    assert compile_teams(_pipeline(), tmp_path) == []


def test_the_example_team_file_is_compiled_into_the_payments_stack():
    stack = example_stacks()["payments"]
    warehouse = stack.node.find_child("fraud-analytics")
    assert isinstance(warehouse, MicroWarehouse)
    assert list(warehouse.views) == ["orders", "accounts", "large_orders_by_country"]
    assert warehouse.temporary_grants[0]["principal"] == "user:external-investigator@acme.com"


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            VALID.replace("    as: account_geo", "    alias: account_geo"),
            "teams/team.yaml:14: tables[1]: Additional properties are not allowed ('alias' was unexpected) "
            "(allowed: as, columns, sink, table), got {",
        ),
        (
            VALID.replace("until: 2030-01-31T00:00:00Z", "until: 9999-12-31T23:59:59Z"),
            "teams/team.yaml:19: test/fraud-analytics/dataset: until is more than 5 years away: a temporary grant that "
            "long is a permanent one in disguise",
        ),
        (
            VALID.replace("until: 2030-01-31T00:00:00Z", 'until: "2030-01-31T00:00:00"'),
            "teams/team.yaml:20: temporary_grants[0].until: has the wrong format (expected when access ends, as an RFC 3339 time",
        ),
        (
            VALID + '<<: {readers: ["group:x@acme.com"]}\n',
            "teams/team.yaml:21: is not valid YAML: merge keys (<<) are not allowed in team files",
        ),
        (
            VALID.replace("team: fraud-analytics", 'team: fraud-analytics\ndescription: "a\\e]0;x\\ab"'),
            "teams/team.yaml:2: description: control and format characters (escape sequences, bidi overrides",
        ),
        (
            VALID.replace("team: fraud-analytics", 'team: fraud-analytics\ndescription: "a\\u202eb"'),
            "teams/team.yaml:2: description: control and format characters",
        ),
        (
            VALID.replace("owners:", "ownres:"),
            "teams/team.yaml:3: file: Additional properties are not allowed ('ownres' was unexpected) "
            "(did you mean 'owners'?) (allowed: ",
        ),
        (
            VALID.replace("    table: accounts", "    tabel: accounts"),
            "teams/team.yaml:12: tables[1]: Additional properties are not allowed ('tabel' was unexpected) "
            "(did you mean 'table'?)",
        ),
        (
            VALID.replace("retention_days: 365", "retention_days: one year"),
            "teams/team.yaml:6: retention_days: must be of type integer (expected days before a partition expires "
            "(required when holds_pii is true)), got 'one year'",
        ),
        (
            VALID.replace("readers: [group:fraud@acme.com]", "readers: [fraud@acme.com]"),
            "teams/team.yaml:5: readers[0]: has the wrong format (expected a Google identity: user:, group: or "
            "serviceAccount:<e-mail>, or domain:<domain> (never public)), got 'fraud@acme.com'",
        ),
        (
            VALID.replace("readers: [group:fraud@acme.com]", "readers: [allUsers]"),
            "teams/team.yaml:5: readers[0]: has the wrong format",
        ),
        (
            VALID.replace("owners:\n  - group:fraud-eng@acme.com\n", ""),
            "teams/team.yaml:1: file: 'owners' is a required property, got {",
        ),
        (
            VALID.replace("    until: 2030-01-31T00:00:00Z", "    until: next tuesday"),
            "teams/team.yaml:20: temporary_grants[0].until: has the wrong format (expected when access ends, as an RFC 3339 time",
        ),
        (
            VALID.replace("tables:\n", "tables:\n  - sink: raw\n    table: [oops\n"),
            "teams/team.yaml:10: is not valid YAML: expected ',' or ']', but got ':' (while parsing a flow sequence at line 9)",
        ),
        (VALID + "team: again\n", "teams/team.yaml:21: file: key is given twice, got 'team'"),
    ],
)
def test_bad_files_fail_with_file_line_and_what_was_expected(tmp_path, text, expected):
    assert _error(tmp_path, text).startswith(expected)


@pytest.mark.parametrize(
    "old, new, expected",
    [
        (
            "  - sink: raw\n    table: accounts",
            "  - sink: rwa\n    table: accounts",
            "teams/team.yaml:11: no BigQuerySink with this id in stack test (sinks: raw), got 'rwa'",
        ),
        (
            "    table: accounts",
            "    table: acounts",
            "teams/team.yaml:12: sink raw has no such table (tables: accounts, orders), got 'acounts'",
        ),
        (
            "columns: [id, country]",
            "columns: [id, contry]",
            "teams/team.yaml:13: raw/accounts carries no such column (columns: id, email, phone, country), got 'contry'",
        ),
        ("stack: test", "stack: ledger", "teams/team.yaml:2: this file is for stack 'ledger', not 'test', got 'ledger'"),
        (
            "{{ ref('orders') }}",
            "{{ ref('order') }}",
            "teams/team.yaml:16: test/fraud-analytics/big_orders: ref() names an unknown view (known: ['account_geo', 'orders'])",
        ),
    ],
)
def test_requests_the_stack_cannot_serve_fail_at_their_line(tmp_path, old, new, expected):
    assert _error(tmp_path, VALID.replace(old, new)).startswith(expected)


def test_a_request_that_breaks_a_policy_is_refused_with_the_policy_message_and_its_line(tmp_path):
    stack = _pipeline(masked=False)
    spec = load(_write(tmp_path, VALID.replace("columns: [id, country]", "columns: [id, email]")), display="teams/team.yaml")
    compile_team(stack, spec)
    assert messages(stack) == [
        "test/fraud-analytics/view-account_geo: PII column accounts.email (EMAIL_ADDRESS) reaches dataset fraud_analytics "
        "unmasked; mask or exclude it at test/payments-db or declare the dataset holds_pii=True "
        "(requested in teams/team.yaml:11)"
    ]


def test_the_published_schema_is_the_one_the_compiler_uses():
    import jsonschema

    published = json.loads((ROOT / "schemas" / "team.schema.json").read_text())
    assert published == SCHEMA
    assert (ROOT / "schemas" / "team.schema.json").read_text() == schema_json()
    jsonschema.Draft202012Validator.check_schema(published)
    for file in sorted((ROOT / "stacks" / "teams").glob("*.yaml")):
        load(file)  # every committed team file validates


def test_building_a_stack_imports_no_team_file_cli_or_runtime_dependencies():
    code = textwrap.dedent(
        """
        import sys
        from tests.governance.helpers import make_sink, make_source, make_stack, messages

        stack = make_stack()
        make_sink(stack, make_source(stack))
        assert messages(stack), "the stack was built and its policies ran"
        unwanted = ("yaml", "jsonschema", "datapipe_cdk.cli", "confluent_kafka", "google.cloud", "pandas")
        print(sorted(m for m in unwanted if m in sys.modules))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_team_cannot_declare_its_own_warehouse_fit_for_pii(tmp_path: Path):
    text = VALID.replace("retention_days: 365", "retention_days: 365\nholds_pii: true")
    assert _error(tmp_path, text) == (
        "teams/team.yaml:7: holds_pii: true needs holds_pii_approved_by: <an owner of the raw datasets it exposes> "
        "(a team cannot declare itself fit for unmasked PII), got True"
    )
    approved_by_self = text.replace("holds_pii: true", "holds_pii: true\nholds_pii_approved_by: group:fraud-eng@acme.com")
    assert _error(tmp_path, approved_by_self) == (
        "teams/team.yaml:8: holds_pii_approved_by must be an owner of payments_raw (tables[0]): its owners are "
        "group:data-eng@acme.com, got 'group:fraud-eng@acme.com'"
    )
    approved = text.replace("holds_pii: true", "holds_pii: true\nholds_pii_approved_by: group:data-eng@acme.com")
    stack = _pipeline()
    warehouse = compile_team(stack, load(_write(tmp_path, approved), display="teams/team.yaml"))
    assert warehouse.dataset.holds_pii is True


def test_a_symlinked_team_file_is_refused_and_its_target_never_printed(tmp_path: Path):
    secret = tmp_path / "outside" / "secrets.env"
    secret.parent.mkdir()
    secret.write_text("DB_PASSWORD=hunter2-secret\n")
    teams = tmp_path / "teams"
    teams.mkdir()
    (teams / "evil.yaml").symlink_to(secret)
    with pytest.raises(DatapipeError) as caught:
        compile_teams(_pipeline(), teams)
    assert "not a symlink" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_yaml_aliases_are_refused_before_they_expand(tmp_path: Path):
    laughs = "".join(f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]\n" for n in range(1, 30))
    message = _error(tmp_path, VALID + 'a0: &a0 ["x"]\n' + laughs)
    assert "aliases (*a0) are not allowed in team files" in message
    assert "teams/team.yaml:22" in message


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("x: !!python/object/apply:os.system ['touch pwned']\n", "is not valid YAML: could not determine a constructor"),
        ("? [a, b]\n: c\n", "is not valid YAML: found unhashable key"),
        ("note: \x00\n", "plain text"),
    ],
)
def test_hostile_yaml_is_a_clear_error_naming_the_file(tmp_path: Path, extra: str, expected: str):
    message = _error(tmp_path, VALID + extra)
    assert message.startswith("teams/team.yaml:") and expected in message
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()


def test_an_oversized_team_file_is_refused(tmp_path: Path):
    assert "more than the limit" in _error(tmp_path, VALID + "# " + "x" * 300_000 + "\n")


@pytest.mark.parametrize("name", ["team.yaml.txt", "team.json", "sub"])
def test_a_file_that_is_not_a_team_file_in_the_team_directory_is_an_error(tmp_path: Path, name: str):
    teams = tmp_path / "teams"
    teams.mkdir()
    (teams / "README.md").write_text("team files live here\n")
    (teams / ".gitkeep").write_text("")
    if name == "sub":
        (teams / name).mkdir()
        (teams / name / "t.yaml").write_text(VALID)
    else:
        (teams / name).write_text(VALID)
    with pytest.raises(DatapipeError) as caught:
        compile_teams(_pipeline(), teams)
    assert "not a team file" in str(caught.value) and name in str(caught.value)


def test_an_upper_case_extension_is_still_a_team_file(tmp_path: Path):
    teams = tmp_path / "teams"
    teams.mkdir()
    (teams / "team.YAML").write_text(VALID)
    assert [w.node.id for w in compile_teams(_pipeline(), teams)] == ["fraud-analytics"]


def test_raw_bidi_overrides_are_refused_and_a_byte_order_mark_is_not_content(tmp_path):
    assert "this line holds control characters" in _error(tmp_path, VALID.replace("fraud-analytics", "fraud\u202e-analytics"))
    stack = _pipeline()
    (tmp_path / "team.yaml").write_text("\ufeff" + VALID, encoding="utf-8")
    [warehouse] = compile_teams(stack, tmp_path)
    assert warehouse.node.path == "test/fraud-analytics"
