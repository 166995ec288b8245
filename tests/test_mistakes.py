"""Realistic mistakes, each with the exact error a user gets: the place, the bad value, the rule and the fix.

Never silence, never a KeyError or a jsii traceback. Each test is one mistake someone made.
"""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from datapipe_cdk import (
    CdcSource,
    Classification,
    Column,
    ColumnType,
    ConnectCluster,
    DatapipeError,
    DataPipelineStack,
    Engine,
    GcpProject,
    KafkaCluster,
    MicroWarehouse,
    Principal,
    SnapshotMode,
    StreamingTopic,
    Table,
)
from datapipe_cdk._cdk import App
from datapipe_cdk.cli import USAGE, main
from datapipe_cdk.teamspec import compile_teams

from .conftest import make_stack
from .governance.helpers import messages

CUSTOMERS = Table(["id"], [Column("id", ColumnType.INT64), Column("email", ColumnType.STRING, Classification.PII)])
OWNER = Principal.group("owner@acme.com")


def _source(stack: DataPipelineStack, **overrides: object) -> CdcSource:
    kwargs: dict[str, object] = {"engine": "mysql", "host": "db", "database": "shop", "tables": {"customers": CUSTOMERS}}
    kwargs.update(overrides)
    return CdcSource(stack, "shop-db", **kwargs)  # type: ignore[arg-type]


def _error(build: object) -> str:
    with pytest.raises(DatapipeError) as caught:
        build()  # type: ignore[operator]
    return str(caught.value)


# --- columns and their treatments -----------------------------------------------------------------


def test_a_misspelt_masked_column_is_refused_naming_the_declared_ones(stack):
    assert _error(lambda: _source(stack, masked={"customers": ["emial"]})) == (
        "test/shop-db: masked['customers'] names a column the table does not declare (columns: id, email), got 'emial'"
    )


def test_treating_a_column_of_a_table_without_declared_columns_is_refused(stack):
    keyed = Table(["id"])
    assert _error(lambda: _source(stack, tables={"customers": keyed}, masked={"customers": ["email"]})) == (
        "test/shop-db: masked['customers'] needs the table's columns: declare Table(primary_key=..., columns=[...]) "
        "so 'email' can be checked, got 'email'"
    )


def test_a_table_without_declared_columns_fails_the_columns_declared_policy():
    stack = make_stack()
    stack.governance.opt_outs.clear()
    _source(stack, tables={"customers": Table(["id"])}, owner=OWNER)
    assert messages(stack) == [
        "test/shop-db: table shop.customers declares no columns, so no policy can tell whether it carries PII and none of "
        "its columns can be masked; declare Table(primary_key=..., columns=[Column(...), ...]) or "
        "opt_out(test/shop-db, 'columns-declared', reason)"
    ]


def test_masking_a_column_that_is_not_text_is_refused_with_the_alternative(stack):
    table = Table(["id"], [Column("id", ColumnType.INT64), Column("birth_year", ColumnType.INT64, Classification.PII)])
    assert _error(lambda: _source(stack, tables={"customers": table}, hashed={"customers": ["birth_year"]})) == (
        "test/shop-db: column customers.birth_year is INT64: Debezium hashes only string columns and passes others through "
        "unchanged; use excluded={'customers': ['birth_year']}, got 'birth_year'"
    )


def test_a_bare_list_for_a_table_is_refused_as_ambiguous(stack):
    assert _error(lambda: _source(stack, tables={"orders": ["id", "amount", "status"]})) == (
        "test/shop-db: tables['orders'] must be a Table(primary_key=[...], columns=[Column(...), ...]); a bare list would be "
        "ambiguous (primary key or columns?), got ['id', 'amount', 'status']"
    )


# --- strings where an enum is expected ---------------------------------------------------------------


def test_enum_strings_are_converted_whatever_their_case_never_half_accepted():
    column = Column("email", "string", "pii", "email_address")  # type: ignore[arg-type]
    assert (column.type, column.classification) == (ColumnType.STRING, Classification.PII)
    assert column.is_pii
    stack = make_stack()
    source = _source(stack, engine="MySQL", snapshot_mode="INITIAL")
    assert source.engine is Engine.MYSQL
    assert source.connector.attributes["config"]["snapshot.mode"] == SnapshotMode.INITIAL.value
    warehouse = MicroWarehouse(stack, "wh", owners=[OWNER])
    entry = warehouse.dataset.grant_role("reader", Principal.group("r@acme.com"))
    assert entry.attributes["role"] == "READER"


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Column("email", ColumnType.STRING, "PIII"),  # type: ignore[arg-type]
         "Column('email'): classification must be one of 'PUBLIC', 'INTERNAL', 'CONFIDENTIAL', 'PII' (or the Classification "
         "member), got 'PIII'"),
        (lambda: Column("n", "INTEGER"),  # type: ignore[arg-type]
         "Column('n'): type must be one of 'STRING', 'INT64', 'UINT64', 'FLOAT64', 'NUMERIC', 'BOOL', 'BYTES', 'DATE', 'TIME', "
         "'DATETIME', 'TIMESTAMP', 'JSON', 'INTERVAL' "
         "(or the ColumnType member), got 'INTEGER'"),
    ],
)  # fmt: skip
def test_an_unknown_enum_string_is_refused(build, message):
    assert _error(build) == message


def test_an_unknown_engine_or_role_is_refused(stack):
    assert _error(lambda: _source(stack, engine="oracle")) == (
        "test/shop-db: engine must be one of 'mysql', 'mariadb', 'postgresql' (or the Engine member), got 'oracle'"
    )
    warehouse = MicroWarehouse(stack, "wh", owners=[OWNER])
    assert _error(lambda: warehouse.dataset.grant_role("viewer", OWNER)) == (
        "test/wh/dataset: role must be one of READER, WRITER, OWNER (any case), got 'viewer'"
    )


# --- settings that only fit one engine, places that do not exist ------------------------------------


def test_engine_specific_settings_on_the_wrong_engine_are_refused(stack):
    assert _error(lambda: _source(stack, schema="sales")) == (
        "test/shop-db: schema= is for PostgreSQL; a mysql database is its own namespace (use database=), got 'sales'"
    )
    assert _error(lambda: _source(stack, engine="postgresql", server_id=5400)) == (
        "test/shop-db: server_id is a MySQL/MariaDB replication setting; PostgreSQL sources use a replication slot, got 5400"
    )


def test_a_bigquery_location_that_does_not_exist_is_refused():
    with pytest.raises(DatapipeError) as caught:
        DataPipelineStack(
            App(),
            "s",
            kafka=KafkaCluster(bootstrap_servers=["k:9092"]),
            connect=ConnectCluster(url="http://c:8083", principal=Principal.kafka_user("c"), basic_auth_username="u"),
            gcp=GcpProject(project="acme-data", location="US-EAST"),
        )
    assert str(caught.value) == (
        "s: gcp.location must be a BigQuery location such as US, EU or europe-west1 "
        "(https://cloud.google.com/bigquery/docs/locations), got 'US-EAST'"
    )


def test_two_stacks_of_one_app_creating_the_same_dataset_in_one_project_are_refused():
    app = App()
    first = make_stack(app=app, stack_id="first")
    second = make_stack(app=app, stack_id="second", manage_acls=False)
    MicroWarehouse(first, "finance", owners=[OWNER])
    assert _error(lambda: MicroWarehouse(second, "finance", owners=[OWNER])) == (
        "second/finance: dataset acme-data.finance is already created by first/finance/dataset (another stack of this app); "
        "choose another dataset id, got 'finance'"
    )


def test_two_stacks_of_one_app_managing_the_same_workers_acls_are_refused():
    """Kafka ACLs have no owner: destroying one stack would revoke the workers' ACLs the other relies on."""
    app = App()
    make_stack(app=app, stack_id="first")
    assert _error(lambda: make_stack(app=app, stack_id="second")) == (
        "second: connect.manage_acls: stack 'first' already manages the ACLs of the Connect workers at "
        "http://connect:8083 (group connect-cluster); destroying either stack would revoke them from both. Set "
        "ConnectCluster(manage_acls=False) in every stack but one, got True"
    )
    assert app.node.try_find_child("second") is None
    make_stack(app=app, stack_id="third", manage_acls=False)


# --- connector configuration the construct owns, secrets in plain config ----------------------------


def test_extra_config_may_not_override_what_the_construct_owns_or_carry_a_secret(stack):
    assert _error(lambda: _source(stack, extra_config={"table.include.list": "shop.other"})).startswith(
        "test/shop-db: extra_config must not set 'table.include.list': CdcSource writes it from its typed arguments"
    )
    assert _error(lambda: _source(stack, extra_config={"database.password": "hunter2"})).startswith(
        "test/shop-db: extra_config must not set 'database.password'"
    )
    assert _error(lambda: _source(stack, extra_config={"database.ssl.truststore.password": "hunter2"})) == (
        "test/shop-db: extra_config['database.ssl.truststore.password'] looks like a secret and would be stored in plain "
        "connector config (returned by Connect's REST API and kept in Terraform state); put it in a file on the workers "
        "and reference it as ${file:<secrets_dir>/<file>:<key>}, got 'database.ssl.truststore.password'"
    )
    reference = "${file:/etc/kafka-connect/secrets/tls.properties:truststore.password}"
    source = _source(stack, extra_config={"database.ssl.truststore.password": reference})
    assert source.connector.attributes["config"]["database.ssl.truststore.password"] == "$" + reference


@pytest.mark.parametrize(
    ("key", "value", "why"),
    [
        ("include.query", "true", "copies each change's SQL statement, values of masked and excluded columns included"),
        ("event.processing.failure.handling.mode", "skip", "would be skipped or only logged: lost"),
        ("errors.tolerance", "all", "would be dropped: lost"),
        ("snapshot.select.statement.overrides", "shop.orders", "a custom snapshot query"),
        ("snapshot.select.statement.overrides.shop.orders", "SELECT id, password AS email FROM shop.users", "a custom snapshot"),
    ],
)
def test_extra_config_that_would_defeat_masking_or_lose_events_is_refused(stack, key, value, why):
    message = _error(lambda: _source(stack, extra_config={key: value}))
    assert message.startswith(f"test/shop-db: extra_config must not set {key!r} to {value!r}: ") and why in message


def test_the_safe_value_of_a_guarded_setting_is_accepted(stack):
    source = _source(stack, extra_config={"include.query": "false", "errors.tolerance": "none"})
    assert source.connector.attributes["config"]["errors.tolerance"] == "none"


# --- arguments -------------------------------------------------------------------------------------------


def test_a_misspelt_argument_names_the_close_match_and_the_known_ones(stack):
    message = _error(lambda: CdcSource(stack, "db", engine="mysql", host="h", database="d", tabels={}))  # type: ignore[call-arg]
    assert message.startswith("test/db: CdcSource has no argument 'tabels' (did you mean 'tables'?); its arguments are engine")


def test_a_missing_argument_is_named(stack):
    assert _error(lambda: CdcSource(stack, "db", engine="mysql", host="h", database="d")) == (  # type: ignore[call-arg]
        "test/db: CdcSource: missing a required argument: 'tables' (see help(CdcSource)), got ['tables']"
    )


def test_a_construct_created_on_the_app_instead_of_a_stack_is_refused():
    app = App()
    assert _error(lambda: StreamingTopic(app, "t", name="orders")) == (
        "t: datapipe-cdk constructs must be created inside a DataPipelineStack (directly or in your own constructs under "
        "it), got ''"
    )


# --- expiring grants -----------------------------------------------------------------------------------


def test_a_grant_that_already_expired_or_a_naive_time_is_refused(stack):
    source = _source(stack)
    past = datetime.now(UTC) - timedelta(days=1)
    message = _error(lambda: source.topic("customers").grant_read(Principal.kafka_user("x"), consumer_group="g", until=past))
    assert message.startswith("test/shop-db/topic-customers: until is already past (")
    assert message.endswith("): remove the grant instead, got " + repr(past))
    warehouse = MicroWarehouse(stack, "wh", owners=[OWNER])
    naive = datetime(2030, 1, 1)
    assert _error(lambda: warehouse.grant_query(Principal.user("a@acme.com"), until=naive)) == (
        "test/wh/dataset: until must be timezone-aware (e.g. datetime(2027, 3, 31, tzinfo=UTC)); a naive time is ambiguous, "
        f"got {naive!r}"
    )


# --- team files -------------------------------------------------------------------------------------------


def test_a_team_file_naming_a_stack_the_app_does_not_have_fails_at_its_line(tmp_path: Path):
    (tmp_path / "shop.yaml").write_text(
        textwrap.dedent("""\
            team: shop-analytics
            stack: shopp
            owners: [group:shop@acme.com]
            tables:
              - {sink: raw, table: customers}
        """)
    )
    stack = make_stack(stack_id="shop")
    compile_teams(stack, tmp_path)
    [violation] = stack.governance.violations()
    assert str(violation) == (
        f"{tmp_path / 'shop.yaml'}:2: names stack 'shopp', which this app does not have (stacks: shop); fix the stack name"
    )


# --- app files ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("x = 1\n", "defines no build(outdir) function; add `def build(outdir: str) -> App:` returning your cdktf App"),
        ("def build():\n    pass\n", "build must take one argument, the output directory: def build(outdir: str) -> App"),
        ("def build(outdir):\n    return None\n", "build(outdir) returned NoneType, not a cdktf App; end it with `return app`"),
        ("from datapipe_cdk import App\ndef build(outdir):\n    return App(outdir=outdir)\n",
         "build(outdir) created no DataPipelineStack; add at least one stack to the app"),
    ],
)  # fmt: skip
def test_a_broken_app_file_gets_one_clear_error(tmp_path: Path, capsys, source: str, message: str):
    app = tmp_path / "app.py"
    app.write_text(source)
    assert main(["validate", "--app", str(app), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["error"]["message"] == f"{app}: {message}"


def test_an_app_that_ignores_outdir_is_refused(tmp_path: Path, capsys):
    app = tmp_path / "app.py"
    app.write_text(
        "from datapipe_cdk import App\nfrom tests.conftest import make_stack\n"
        "def build(outdir):\n    return make_stack().node.scope\n"
    )
    assert main(["synth", "--app", str(app), "--out", str(tmp_path / "out")]) == 1
    assert "build(outdir) ignored outdir" in capsys.readouterr().err


def test_an_app_file_that_does_not_exist_is_a_usage_error(tmp_path: Path, capsys):
    assert main(["validate", "--app", str(tmp_path / "nope.py")]) == USAGE
    assert "not found: pass --app <file.py>" in capsys.readouterr().err


def test_columns_differing_only_in_case_and_a_key_listed_twice_are_refused(stack):
    twice = Table(["id"], [Column("id", ColumnType.INT64), Column("ID", ColumnType.INT64)])
    assert "lists a column twice (BigQuery column names ignore case): ID, id" in _error(
        lambda: _source(stack, tables={"customers": twice})
    )
    key_twice = Table(["id", "id"], [Column("id", ColumnType.INT64)])
    assert "primary_key lists a column twice" in _error(lambda: _source(stack, tables={"customers": key_twice}))


def test_postgres_is_accepted_as_the_engine_name_the_cli_uses(stack):
    assert _source(stack, engine="postgres").engine.value == "postgresql"


def test_synth_prints_every_warning_with_its_construct_path(tmp_path: Path, capsys):
    """cdktf only records warnings in manifest.json; `datapipe synth` prints them (and lists them in --json)."""
    app = tmp_path / "app.py"
    app.write_text(
        "from datapipe_cdk import App, StreamingTopic\nfrom tests.conftest import make_stack\n"
        "def build(outdir):\n    app = App(outdir=outdir)\n    stack = make_stack(app=app)\n"
        "    StreamingTopic(stack, 't', name='t', replication_factor=3, min_in_sync_replicas=3)\n    return app\n"
    )
    assert main(["synth", "--app", str(app), "--out", str(tmp_path / "out")]) == 0
    assert "warning: test/t: topic 't': min_in_sync_replicas equals replication_factor (3)" in capsys.readouterr().err
    assert main(["synth", "--app", str(app), "--out", str(tmp_path / "out"), "--json"]) == 0
    [warning] = json.loads(capsys.readouterr().out)["warnings"]
    assert warning.startswith("test/t: topic 't': min_in_sync_replicas equals")


def test_text_shaped_like_a_terraform_reference_is_refused_where_only_text_belongs(stack):
    """A description reading '${TfToken[TOKEN.0]}' would be resolved by cdktf: the Kafka password in dataset metadata."""
    from datapipe_cdk import Column, ColumnType, MicroWarehouse, Table

    token = "${TfToken[TOKEN.0]}"
    assert "description must be plain text" in _error(
        lambda: MicroWarehouse(stack, "wh", owners=[OWNER], description=f"docs {token}")
    )
    table = Table(["id"], [Column("id", ColumnType.INT64, description=f"id {token}")])
    assert "column 'id' description must be plain text" in _error(lambda: _source(stack, tables={"orders": table}))
    assert "extra_config['poll.interval.ms'] must be plain text" in _error(
        lambda: _source(stack, extra_config={"poll.interval.ms": token})
    )


def test_errors_from_a_hostile_team_file_cannot_drive_the_terminal(tmp_path: Path, capsys):
    """An escaped key in YAML ('\\e[2J...') reaches the error message: it is printed escaped, never sent raw."""
    teams = tmp_path / "teams"
    teams.mkdir()
    (teams / "t.yaml").write_text('team: t\nstack: test\nowners: [group:o@acme.com]\n"\\e[2J\\e[32mall policies pass": 1\n')
    app = tmp_path / "app.py"
    app.write_text(
        "from datapipe_cdk import App\nfrom datapipe_cdk.teamspec import compile_teams\nfrom tests.conftest import make_stack\n"
        f"def build(outdir):\n    app = App(outdir=outdir)\n    compile_teams(make_stack(app=app), {str(teams)!r})\n"
        "    return app\n"
    )
    assert main(["validate", "--app", str(app)]) == 1
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\\x1b[2J" in err, err


@pytest.mark.parametrize(
    ("url", "shown"),
    [("https://terraform:S3CRET@connect.acme.com", "user:password@"), ("https://connect.acme.com/?token=S3CRET", "token")],
)
def test_a_url_carrying_credentials_is_refused_without_echoing_them(url: str, shown: str):
    from datapipe_cdk import ConnectCluster

    connect = ConnectCluster(url=url, principal=Principal.kafka_user("connect"), basic_auth_username="terraform")
    with pytest.raises(DatapipeError) as caught:
        stack = make_stack()
        DataPipelineStack(App(), "s", kafka=stack.kafka, connect=connect, gcp=stack.gcp)
    assert f"connect.url must not carry credentials ({shown})" in str(caught.value)
    assert "S3CRET" not in str(caught.value)


def test_a_temporary_grant_years_away_is_refused_as_a_permanent_one_in_disguise(stack):
    from datapipe_cdk import MicroWarehouse

    warehouse = MicroWarehouse(stack, "wh", owners=[OWNER])
    far = datetime.now(UTC) + timedelta(days=6 * 365)
    assert "until is more than 5 years away" in _error(lambda: warehouse.grant_query(Principal.user("a@acme.com"), until=far))
    warehouse.grant_query(Principal.user("a@acme.com"), until=datetime.now(UTC) + timedelta(days=4 * 365))


def test_validate_prints_the_warnings_without_synthesizing(tmp_path: Path, capsys):
    app = tmp_path / "app.py"
    app.write_text(
        "from datapipe_cdk import App, StreamingTopic\nfrom tests.conftest import make_stack\n"
        "def build(outdir):\n    app = App(outdir=outdir)\n    stack = make_stack(app=app)\n"
        "    StreamingTopic(stack, 't', name='t', replication_factor=3, min_in_sync_replicas=3)\n    return app\n"
    )
    assert main(["validate", "--app", str(app)]) == 0
    assert "warning: test/t: topic 't': min_in_sync_replicas equals replication_factor (3)" in capsys.readouterr().err
    assert main(["validate", "--app", str(app), "--json"]) == 0
    [warning] = json.loads(capsys.readouterr().out)["warnings"]
    assert warning.startswith("test/t: topic 't': min_in_sync_replicas equals")
