"""Change safety on the local stack: every class of change is classified live by ``datapipe plan``; run
state follows the code; teardown leaves nothing behind and a redeploy starts cleanly; stacks deployed
with the previous (numbered) addresses upgrade without replacing a grant.

One small app (``APP``), deployed once; variants of it are selected with ``CS_VARIANT`` and only planned.
"""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from datapipe_cdk.local import bigquery, databases
from datapipe_cdk.local.config import StackConfig
from integration.conftest import datapipe

pytestmark = pytest.mark.integration

APP = """
import os
from datetime import timedelta
from datapipe_cdk import App
from datapipe_cdk import (BigQuerySink, CdcSource, Column, ColumnType, ConnectCluster, DataPipelineStack, GcpProject,
                          KafkaCluster, MicroWarehouse, Principal, Table)

CHANGED = os.environ.get("CS_VARIANT") == "changed"
OWNER = Principal.group("owner@cs.example")


def table(*key):
    return Table(list(key), [Column("id", ColumnType.INT64), Column("name"), Column("price", ColumnType.INT64)])


def build(outdir):
    app = App(outdir=outdir)
    stack = DataPipelineStack(app, "cs", kafka=KafkaCluster(bootstrap_servers=["k:9092"], sasl_username="deployer"),
        connect=ConnectCluster(url="https://c", principal=Principal.kafka_user("connect"), basic_auth_username="d"),
        gcp=GcpProject(project="cs-data-prod", allowed_domains=["cs.example"]))
    # a: re-snapshot (snapshot mode always) and an in-place topic change (retention)
    a = CdcSource(stack, "a-db", engine="mariadb", host="db", database="cs", tables={"items": table("id")}, owner=OWNER,
                  partitions=3, retention=timedelta(days=3 if CHANGED else 7), snapshot_mode="always" if CHANGED else "initial")
    # b: a connector restart (a setting) and a table added (needs an incremental snapshot)
    b_tables = {"extras": table("id")} | ({"more": table("id")} if CHANGED else {})
    b = CdcSource(stack, "b-db", engine="mariadb", host="db", database="cs", tables=b_tables, owner=OWNER,
                  extra_config={"max.batch.size": "1024"} if CHANGED else None)
    # c: a table dropped (its topic and changelog: data loss) and the other one re-keyed
    c_tables = {"keyed": table("id", "name") if CHANGED else table("id")} | ({} if CHANGED else {"dropped": table("id")})
    c = CdcSource(stack, "c-db", engine="mariadb", host="db", database="cs", tables=c_tables, owner=OWNER)
    raw = BigQuerySink(stack, "a-raw", source=a, dataset="cs_raw", owners=[OWNER])
    BigQuerySink(stack, "b-raw", source=b, dataset="cs_b_raw", owners=[OWNER])
    BigQuerySink(stack, "c-raw", source=c, dataset="cs_c_raw", owners=[OWNER])
    # the warehouse: one reader swapped for another (access widened and narrowed), a view's columns changed
    readers = [Principal.group("new@cs.example" if CHANGED else "old@cs.example")]
    shop = MicroWarehouse(stack, "cs-wh", owners=[OWNER], readers=readers, dataset="cs_wh")
    shop.expose(raw.table("items"), columns=["id", "name"] if CHANGED else None)
    return app
"""
DDL = """
CREATE DATABASE IF NOT EXISTS cs;
CREATE TABLE IF NOT EXISTS cs.items (id BIGINT NOT NULL, name VARCHAR(40) NOT NULL, price BIGINT, PRIMARY KEY (id));
CREATE TABLE IF NOT EXISTS cs.extras (id BIGINT NOT NULL, name VARCHAR(40), price BIGINT, PRIMARY KEY (id));
CREATE TABLE IF NOT EXISTS cs.more (id BIGINT NOT NULL, name VARCHAR(40), price BIGINT, PRIMARY KEY (id));
CREATE TABLE IF NOT EXISTS cs.keyed (id BIGINT NOT NULL, name VARCHAR(40) NOT NULL, price BIGINT, PRIMARY KEY (id, name));
CREATE TABLE IF NOT EXISTS cs.dropped (id BIGINT NOT NULL, name VARCHAR(40), price BIGINT, PRIMARY KEY (id));
"""

EXPECTED = {
    # class -> the construct path (prefix) that causes it
    "re-snapshot": "cs/a-db/connector",
    "in-place": "cs/a-db/topic-items",
    "connector-restart": "cs/b-db/connector",
    "new-table-needs-snapshot": "cs/b-db/connector",
    "data-loss": "cs/c-db/topic-dropped",
    "re-keying": "cs/c-db/connector",
    "reader-visible": "cs/cs-wh/view-items",
    "access-widened": "cs/cs-wh/dataset/grant-reader-group-new@cs.example",
    "access-narrowed": "cs/cs-wh/dataset/grant-reader-group-old@cs.example",
}


@pytest.fixture(scope="module")
def cs_app(local_stack: StackConfig, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    project = tmp_path_factory.mktemp("change-safety")
    (project / "app.py").write_text(textwrap.dedent(APP))
    (project / "ddl.sql").write_text(DDL)
    datapipe("local", "sql", "--engine", "mariadb", "-f", str(project / "ddl.sql"))
    args = ["--local", "--app", str(project / "app.py"), "--out", str(project / "cdktf.out")]
    datapipe("deploy", *args, "--auto-approve")
    try:
        yield {"project": project, "args": args, "cfg": local_stack}
    finally:
        datapipe("destroy", *args, "--auto-approve", check=False)


def _plan(cs_app: dict[str, Any], variant: str, *extra: str) -> tuple[int, dict[str, Any]]:
    done = datapipe("plan", *cs_app["args"], "--json", *extra, check=False, env={"CS_VARIANT": variant})
    assert done.returncode in (0, 2, 3), f"plan failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.returncode, json.loads(done.stdout)


def test_an_unchanged_app_plans_no_changes(cs_app):
    code, report = _plan(cs_app, "base")
    assert code == 0, report
    assert not [c for c in report["stacks"][0]["changes"] if c["class"] != "no-op"]


def test_every_class_of_change_is_classified_with_the_construct_that_causes_it(cs_app):
    code, report = _plan(cs_app, "changed")
    changes = [c for c in report["stacks"][0]["changes"] if c["class"] != "no-op"]
    found = {(cls, str(c.get("path") or "")) for c in changes for cls in (c["class"], *c.get("also", []))}
    missing = {cls: path for cls, path in EXPECTED.items() if not any(f == cls and p.startswith(path) for f, p in found)}
    assert not missing, f"not classified: {missing}\n" + "\n".join(
        f"{c['class']} {c.get('path')}: {c['reason']}" for c in changes
    )
    assert code == 3, "data loss, re-snapshots and re-keying fail the plan unless allowed"
    allowed, _ = _plan(cs_app, "changed", "--allow", "data-loss,re-snapshot,re-keying")
    assert allowed == 2


def test_deploy_refuses_risky_changes_unless_allowed_and_asks_before_the_rest(cs_app):
    """`deploy` runs the same classification as `plan`: risky changes are refused without --allow, the rest is
    shown and confirmed unless --auto-approve; a refused or unconfirmed deploy changes nothing."""
    refused = datapipe("deploy", *cs_app["args"], "--auto-approve", check=False, env={"CS_VARIANT": "changed"})
    assert refused.returncode == 3, refused.stderr[-3000:]
    assert "risky changes not allowed (marked !)" in refused.stderr and "data-loss" in refused.stderr
    declined = datapipe("deploy", *cs_app["args"], "--allow", "data-loss,re-snapshot,re-keying", check=False,
                        env={"CS_VARIANT": "changed"}, answer="no\n")  # fmt: skip
    assert declined.returncode == 1 and "Only 'yes' applies" in declined.stdout + declined.stderr, declined.stderr[-3000:]
    assert "not deployed, nothing was changed; answer 'no'" in declined.stderr
    code, report = _plan(cs_app, "base")
    assert code == 0, f"a refused or declined deploy applied something: {report}"


def test_a_stopped_connector_is_drift_for_plan_and_resumed_by_deploy(cs_app):
    from datapipe_cdk.connect_api import ConnectClient
    from datapipe_cdk.local import connect

    cfg = cs_app["cfg"]
    client = ConnectClient(cfg.connect_url, connect.REST_USER, connect.rest_password(cfg))
    client.stop("a-db")
    deadline = time.monotonic() + 60
    while client.status("a-db").state != "STOPPED" and time.monotonic() < deadline:
        time.sleep(1)
    code, report = _plan(cs_app, "base")
    assert code == 2 and report["stacks"][0]["connectors_not_running"], report["stacks"][0]
    datapipe("deploy", *cs_app["args"], "--auto-approve")
    assert client.status("a-db").running


def _rows(cfg: StackConfig) -> dict[int, str]:
    client = bigquery.client(cfg)
    return {int(r["id"]): str(r["name"]) for r in client.query_and_wait(f"SELECT id, name FROM `{bigquery.PROJECT}.cs_wh.items`")}


def test_destroy_leaves_no_debris_and_a_redeploy_starts_cleanly(cs_app):
    cfg = cs_app["cfg"]
    conn = databases.mariadb_connect(cfg, database="cs")
    with conn.cursor() as cur:
        cur.execute("INSERT INTO items (id, name, price) VALUES (1, 'first', 10)")
    _wait(lambda: _rows(cfg).get(1) == "first")
    datapipe("destroy", *cs_app["args"], "--auto-approve")
    from confluent_kafka.admin import AdminClient

    from integration import flow

    admin = AdminClient(flow.kafka_config(cfg, "admin"))
    topics = set(admin.list_topics(timeout=15).topics)
    assert not {t for t in topics if t.startswith(("a-db.", "b-db.", "c-db.", "_schema-history.", "dlq."))}, topics
    groups = {g.group_id for g in admin.list_consumer_groups().result(timeout=15).valid}
    assert not {g for g in groups if g.startswith("connect-") and g.endswith("-raw")}, f"sink groups outlived them: {groups}"
    conn.close()
    conn = databases.mariadb_connect(cfg, database="cs")
    with conn.cursor() as cur:
        cur.execute("INSERT INTO items (id, name, price) VALUES (2, 'while away', 20)")
    conn.close()
    datapipe("deploy", *cs_app["args"], "--auto-approve")
    _wait(lambda: _rows(cfg) == {1: "first", 2: "while away"})


def test_bigquery_drops_a_repeated_insert_id_even_in_a_recreated_table(local_stack: StackConfig) -> None:
    """Why ``deploy`` waits after ``destroy`` (``datapipe_cdk.deploy.REDEPLOY_QUIET``): the sink's insertId is
    ``<topic>-<partition>-<offset>``, a re-created topic restarts at offset 0, and a row whose insertId was seen
    within the window is dropped without an error, even by a table created since."""
    from google.cloud.bigquery import SchemaField, Table

    client = bigquery.client(local_stack)
    dataset = f"{bigquery.PROJECT}.cs_insert_ids"
    table = f"{dataset}.items"
    client.create_dataset(dataset, exists_ok=True)
    try:
        for row_id in (1, 2):
            client.delete_table(table, not_found_ok=True)
            client.create_table(Table(table, schema=[SchemaField("id", "INT64")]))
            assert client.insert_rows_json(table, [{"id": row_id}], row_ids=["a-db.cs.items-0-0"]) == []
        assert [r["id"] for r in client.query_and_wait(f"SELECT id FROM `{table}`")] == []
    finally:
        client.delete_dataset(dataset, delete_contents=True, not_found_ok=True)


def _wait(check: Any, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(1.0)


LEGACY_APP = """
from datetime import UTC, datetime
from datapipe_cdk import App
from datapipe_cdk import ConnectCluster, DataPipelineStack, GcpProject, KafkaCluster, MicroWarehouse, Principal


def build(outdir):
    app = App(outdir=outdir)
    stack = DataPipelineStack(app, "legacy", kafka=KafkaCluster(bootstrap_servers=["k:9092"], sasl_username="deployer"),
        connect=ConnectCluster(url="https://c", principal=Principal.kafka_user("connect"), basic_auth_username="d"),
        gcp=GcpProject(project="legacy-data", allowed_domains=["cs.example"]))
    team = MicroWarehouse(stack, "team", owners=[Principal.group("owner@cs.example")], dataset="legacy_team",
                          readers=[Principal.group("a@cs.example"), Principal.group("b@cs.example")])
    team.grant_query(Principal.user("auditor@cs.example"), until=datetime(2030, 1, 1, tzinfo=UTC))
    return app
"""


def test_a_stack_deployed_with_the_previous_numbered_addresses_upgrades_without_replacing_a_grant(
    local_stack: StackConfig, tmp_path: Path
) -> None:
    """Deploy JSON whose grants carry the numbered addresses earlier versions gave them (the current synth with
    each ``moved`` block undone: the same ids, computed the same way), then plan the current JSON: moves only."""
    from datapipe_cdk.deploy import Runner, StackDir

    (tmp_path / "app.py").write_text(textwrap.dedent(LEGACY_APP))
    out = tmp_path / "cdktf.out"
    datapipe("synth", "--local", "--app", str(tmp_path / "app.py"), "--out", str(out))
    stack_file = out / "stacks" / "legacy" / "cdk.tf.json"
    current = json.loads(stack_file.read_text())
    moved = current.get("moved", [])
    assert len(moved) == 4, moved  # owner, two readers, the temporary grant
    legacy = json.loads(json.dumps(current))
    legacy.pop("moved")
    for move in moved:
        kind, new_id = move["to"].split(".", 1)
        legacy["resource"][kind][move["from"].split(".", 1)[1]] = legacy["resource"][kind].pop(new_id)
    runner = Runner(local=True)
    stack_file.write_text(json.dumps(legacy))
    runner.deploy(StackDir.read(out, "legacy"), auto_approve=True)
    try:
        stack_file.write_text(json.dumps(current))
        _, plan = runner.plan(StackDir.read(out, "legacy"))
        grants = [rc for rc in plan.get("resource_changes", []) if rc["type"] == "google_bigquery_dataset_access"]
        assert {tuple(rc["change"]["actions"]) for rc in grants} == {("no-op",)}, [rc["change"]["actions"] for rc in grants]
        assert {rc.get("previous_address") for rc in grants if rc.get("previous_address")} == {m["from"] for m in moved}
    finally:
        runner.destroy(StackDir.read(out, "legacy"), auto_approve=True)
