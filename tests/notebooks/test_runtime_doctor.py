"""``datapipe doctor``: every check against fake sessions, Kafka and Connect (no live service): each problem
gives an error or warning naming the source, the bad value and the rule, with the statement that fixes it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from datapipe_cdk import cli
from datapipe_cdk.connect_api import ConnectError, ConnectorState
from datapipe_cdk.deploy import StackDir
from datapipe_cdk.manifest import Manifest, Source
from datapipe_cdk.runtime import doctor
from datapipe_cdk.runtime.doctor import (
    ERROR,
    INFO,
    OK,
    WARNING,
    Finding,
    MySqlServer,
    Reach,
    check_acls,
    check_binlog_format,
    check_binlog_retention,
    check_binlog_row_image,
    check_columns,
    check_connector,
    check_dead_letters,
    check_gtid,
    check_mysql_grants,
    check_postgres_privileges,
    check_publication,
    check_replica_identity,
    check_replication_capacity,
    check_server_id,
    check_signal_table,
    check_slot_lag,
    check_topics,
    check_wal_level,
    examine,
    mysql_checks,
    parse_duration,
    render,
)
from datapipe_cdk.runtime.sink_health import DeadLetter
from datapipe_cdk.runtime.source import SourceColumn

RAW: dict[str, Any] = {
    "version": 3,
    "stack": "clinic",
    "target": "production",
    "kafka": {"bootstrap_servers": ["broker:9093"], "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512"},
    "connect": {"url": "https://connect:8083", "basic_auth_username": "deployer"},
    "bigquery": {"project": "clinic-data"},
    "sources": [
        {
            "name": "clinic-stock",
            "engine": "mariadb",
            "host": "stock-db",
            "port": 3306,
            "database": "pharmacy",
            "schema": None,
            "connector": "clinic-stock",
            "topic_prefix": "clinic-stock",
            "username": "debezium",
            "signal_table": "pharmacy.debezium_signal",
            "tables": [{"name": "stock", "primary_key": ["sku"], "topic": "clinic-stock.pharmacy.stock"}],
        },
        {
            "name": "clinic-visits",
            "engine": "postgresql",
            "host": "visits-db",
            "port": 5432,
            "database": "clinic",
            "schema": "care",
            "connector": "clinic-visits",
            "topic_prefix": "clinic-visits",
            "username": "debezium",
            "signal_table": "care.debezium_signal",
            "tables": [
                {
                    "name": "visits",
                    "primary_key": ["id"],
                    "topic": "clinic-visits.care.visits",
                    "columns": [{"name": "id", "type": "INT64"}, {"name": "note", "type": "STRING"}],
                }
            ],
        },
    ],
    "sinks": [
        {
            "name": "stock-raw",
            "connector": "stock-raw",
            "dataset": "clinic_stock_raw",
            "dead_letter_topic": "dlq.stock-raw",
            "tables": [{"source_table": "stock", "topic": "clinic-stock.pharmacy.stock", "table": "stock"}],
        }
    ],
}


def _acl(operation: str, kind: str, name: str) -> dict[str, str]:
    return {"acl_principal": "User:connect", "acl_host": "*", "acl_operation": operation, "acl_permission_type": "Allow",
            "resource_name": name, "resource_pattern_type_filter": "Literal", "resource_type": kind}  # fmt: skip


SYNTHESIZED: dict[str, Any] = {
    "resource": {
        "kafka_topic": {
            "stock_topic": {"name": "clinic-stock.pharmacy.stock", "partitions": 3, "config": {"cleanup.policy": "delete"}},
            "history_topic": {"name": "_schema-history.clinic-stock", "partitions": 1, "config": {"retention.ms": "-1"}},
            "visits_topic": {"name": "clinic-visits.care.visits", "partitions": 1, "config": {}},
            "dlq_topic": {"name": "dlq.stock-raw", "partitions": 1, "config": {"retention.ms": "1209600000"}},
        },
        "kafka_acl": {
            "w_stock": _acl("Write", "Topic", "clinic-stock.pharmacy.stock"),
            "dc_cluster": _acl("DescribeConfigs", "Cluster", "kafka-cluster"),
            "w_visits": _acl("Write", "Topic", "clinic-visits.care.visits"),
            "r_stock": _acl("Read", "Topic", "clinic-stock.pharmacy.stock"),
            "w_dlq": _acl("Write", "Topic", "dlq.stock-raw"),
        },
        "kafka-connect_connector": {
            "stock_connector": {
                "name": "clinic-stock",
                "config": {"database.server.id": "5400"},
                "depends_on": [
                    "kafka_topic.stock_topic",
                    "kafka_topic.history_topic",
                    "kafka_acl.w_stock",
                    "kafka_acl.dc_cluster",
                ],
            },
            "visits_connector": {
                "name": "clinic-visits",
                "config": {"slot.name": "clinic_visits", "publication.name": "clinic_visits_publication"},
                "depends_on": ["kafka_topic.visits_topic", "kafka_acl.w_visits"],
            },
            "sink_connector": {
                "name": "stock-raw",
                "config": {},
                "depends_on": ["kafka_topic.stock_topic", "kafka_topic.dlq_topic", "kafka_acl.r_stock", "kafka_acl.w_dlq"],
            },
        },
    }
}
LIVE_ACLS = [("User:connect", "TOPIC", "clinic-", "ALL", "PREFIXED", "ALLOW", "*"),
             ("User:connect", "BROKER", "kafka-cluster", "DESCRIBE_CONFIGS", "LITERAL", "ALLOW", "*"),
             ("User:connect", "TOPIC", "dlq.stock-raw", "WRITE", "LITERAL", "ALLOW", "*")]  # fmt: skip
HEALTHY_MARIADB = {"log_bin": "ON", "binlog_format": "ROW", "binlog_row_image": "FULL", "server_id": "184054",
                   "gtid_strict_mode": "ON", "gtid_domain_id": "0", "binlog_expire_logs_seconds": "86400",
                   "expire_logs_days": "1.000000"}  # fmt: skip
CDC_GRANTS = [
    "GRANT RELOAD, SHOW DATABASES, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `debezium`@`10.0.0.%` IDENTIFIED BY PASSWORD 'x'",
    "GRANT SELECT ON `pharmacy`.* TO `debezium`@`10.0.0.%`",
    "GRANT SELECT, INSERT ON `pharmacy`.`debezium_signal` TO `debezium`@`10.0.0.%`",
]


def _manifest() -> Manifest:
    return Manifest.from_dict(json.loads(json.dumps(RAW)))


def _source(name: str) -> Source:
    return _manifest().source(name)


def _column(name: str, data_type: str) -> SourceColumn:
    return SourceColumn(name, data_type, True, False, None, False, data_type)


class FakeSession:
    """Answers queries by the first rule whose key occurs in the SQL: a value, or a function of the parameters."""

    def __init__(self, rules: Mapping[str, Any], identities: Mapping[str, str | None] | None = None) -> None:
        self.rules = dict(rules)
        self.identities = dict(identities or {})
        self.queries: list[tuple[str, tuple[Any, ...]]] = []

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self.queries.append((sql, tuple(params)))
        for key, answer in self.rules.items():
            if key in sql:
                if isinstance(answer, Exception):
                    raise answer
                return list(answer(tuple(params)) if callable(answer) else answer)
        raise AssertionError(f"unexpected query: {sql}")

    def columns(self, table: str) -> list[SourceColumn]:
        return [_column("id", "bigint"), _column("note", "text")]

    def replica_identity(self, table: str) -> str | None:
        return self.identities.get(table)


def _mariadb_session(variables: Mapping[str, str] = HEALTHY_MARIADB, grants: Sequence[str] = CDC_GRANTS) -> FakeSession:
    return FakeSession({
        "VERSION()": [("10.11.19-MariaDB-0+deb12u1-log",)],
        "SHOW GLOBAL VARIABLES": list(variables.items()),
        "CURRENT_USER()": [("datapipe_admin@10.0.0.1",)],
        "mysql.user": [("10.0.0.%",)],
        "SHOW GRANTS FOR": [(g,) for g in grants],
        "information_schema.tables": [(1,)],
    })  # fmt: skip


def _severities(findings: Sequence[Finding]) -> dict[str, str]:
    return {f.component: f.severity for f in findings}


# --- durations and output -------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [("24h", timedelta(hours=24)), ("90m", timedelta(minutes=90)),
                                                ("2d", timedelta(days=2)), ("1h30m", timedelta(minutes=90)),
                                                ("45s", timedelta(seconds=45))])  # fmt: skip
def test_outage_budgets_read_as_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "24", "h", "0m", "1x", "24 hours", "-1h"])
def test_a_budget_that_is_not_a_duration_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"duration|longer than zero"):
        parse_duration(text)


def test_render_prints_a_table_with_the_fix_under_each_problem() -> None:
    findings = [
        Finding(OK, "clinic-stock: binlog_format", "binlog_format is ROW"),
        Finding(
            ERROR, "clinic-stock: CDC user grants", "debezium lacks RELOAD", "GRANT RELOAD ON *.* TO 'debezium'@'%';\nFLUSH;"
        ),
    ]
    lines = render(findings).splitlines()
    assert lines[0].split() == ["SEVERITY", "COMPONENT", "FINDING"]
    assert lines[2].startswith("error     clinic-stock: CDC user grants  debezium lacks RELOAD")
    assert lines[3].strip() == "fix: GRANT RELOAD ON *.* TO 'debezium'@'%';" and lines[4].strip() == "FLUSH;"
    assert lines[-1] == "1 error, 0 warnings, 0 info, 1 ok"


# --- MySQL / MariaDB ------------------------------------------------------------------------------


def test_a_healthy_mariadb_source_passes_every_check() -> None:
    session = _mariadb_session()
    found = mysql_checks(_source("clinic-stock"), session, {"database.server.id": "5400"}, timedelta(hours=24), {})
    assert {f.severity for f in found} == {OK}, render(found)
    assert all(q[0].lstrip().upper().startswith(("SELECT", "SHOW")) for q in session.queries)  # reads only


def test_binlog_row_image_minimal_is_an_error_with_the_statement_that_fixes_it() -> None:
    mariadb = MySqlServer(True, {**HEALTHY_MARIADB, "binlog_row_image": "MINIMAL"})
    [finding] = check_binlog_row_image(_source("clinic-stock"), mariadb)
    assert finding.severity == ERROR and "MINIMAL" in finding.message and "FULL" in finding.message
    assert finding.fix == "SET GLOBAL binlog_row_image = 'FULL';" and "config file" in finding.message
    mysql = MySqlServer(False, {**HEALTHY_MARIADB, "binlog_row_image": "NOBLOB"})
    assert check_binlog_row_image(_source("clinic-stock"), mysql)[0].fix == "SET PERSIST binlog_row_image = 'FULL';"


@pytest.mark.parametrize(("changed", "fix"), [({"binlog_format": "MIXED"}, "SET GLOBAL binlog_format = 'ROW';"),
                                              ({"log_bin": "OFF"}, "log_bin=ON")])  # fmt: skip
def test_a_binlog_that_is_off_or_not_row_based_is_an_error(changed: dict[str, str], fix: str) -> None:
    [finding] = check_binlog_format(_source("clinic-stock"), MySqlServer(True, {**HEALTHY_MARIADB, **changed}))
    assert finding.severity == ERROR and fix in finding.fix


@pytest.mark.parametrize(
    ("variables", "budget", "severity", "fix"),
    [
        ({"binlog_expire_logs_seconds": "3600"}, "24h", ERROR, "SET GLOBAL binlog_expire_logs_seconds = 86400;"),
        ({"binlog_expire_logs_seconds": "0", "expire_logs_days": "0.5"}, "24h", ERROR, "binlog_expire_logs_seconds = 86400"),
        ({"binlog_expire_logs_seconds": "172800"}, "24h", OK, ""),
        ({"binlog_expire_logs_seconds": "86400"}, "90m", OK, ""),
        ({"binlog_expire_logs_seconds": "0", "expire_logs_days": "0"}, "24h", OK, ""),  # never purged
    ],
)
def test_binlog_retention_shorter_than_the_outage_budget_is_an_error(
    variables: dict[str, str], budget: str, severity: str, fix: str
) -> None:
    server = MySqlServer(True, {**HEALTHY_MARIADB, **variables})
    [finding] = check_binlog_retention(_source("clinic-stock"), server, parse_duration(budget))
    assert finding.severity == severity and fix in finding.fix
    if severity == ERROR:
        assert "less than the outage budget of 24 hours" in finding.message


def test_an_old_server_without_binlog_expire_logs_seconds_is_fixed_with_expire_logs_days() -> None:
    server = MySqlServer(False, {"expire_logs_days": "1"})
    [finding] = check_binlog_retention(_source("clinic-stock"), server, timedelta(hours=36))
    assert finding.severity == ERROR and finding.fix == "SET PERSIST expire_logs_days = 2;"
    assert "kept 24 hours, less than the outage budget of 36 hours" in finding.message


def test_gtids_are_reported_as_information() -> None:
    source = _source("clinic-stock")
    [loose] = check_gtid(source, MySqlServer(True, {**HEALTHY_MARIADB, "gtid_strict_mode": "OFF", "gtid_domain_id": "3"}))
    assert loose.severity == INFO and "gtid_domain_id=3" in loose.message and loose.fix == "SET GLOBAL gtid_strict_mode = ON;"
    [off] = check_gtid(source, MySqlServer(False, {"gtid_mode": "OFF"}))
    assert off.severity == INFO and "gtid_mode is OFF" in off.message and "gtid_mode" in off.fix
    assert check_gtid(source, MySqlServer(False, {"gtid_mode": "ON"}))[0].severity == OK


def test_the_connector_server_id_must_differ_from_the_servers_and_other_connectors() -> None:
    source, server = _source("clinic-stock"), MySqlServer(True, HEALTHY_MARIADB)
    [same] = check_server_id(source, server, {"database.server.id": "184054"}, {})
    assert same.severity == ERROR and "184054" in same.message and "server_id=" in same.fix
    [clash] = check_server_id(source, server, {"database.server.id": "5400"}, {"clinic-stock": "5400", "other-db": "5400"})
    assert clash.severity == ERROR and "other-db" in clash.message
    assert check_server_id(source, server, {"database.server.id": "5400"}, {"clinic-stock": "5400"})[0].severity == OK
    assert check_server_id(source, server, {"database.server.id": "${var.id}"}, {})[0].severity == INFO


@pytest.mark.parametrize(
    "grants",
    [
        ["GRANT ALL PRIVILEGES ON *.* TO `debezium`@`%` WITH GRANT OPTION"],
        ["GRANT SELECT, INSERT, RELOAD, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO `debezium`@`%`"],
        [CDC_GRANTS[0], "GRANT SELECT ON `pharm%`.* TO `debezium`@`%`", CDC_GRANTS[2]],
        [CDC_GRANTS[0], "GRANT SELECT ON `pharmacy`.`stock` TO `debezium`@`%`", CDC_GRANTS[2]],
        [CDC_GRANTS[0], "GRANT SELECT (`sku`, `on_hand`), INSERT ON `pharmacy`.* TO `debezium`@`%`"],
    ],
)
def test_grants_that_cover_what_debezium_needs_pass(grants: list[str]) -> None:
    [finding] = check_mysql_grants(_source("clinic-stock"), _mariadb_session(grants=grants))
    assert finding.severity == OK, finding


def test_a_revoked_grant_is_an_error_with_the_grant_statement() -> None:
    grants = ["GRANT RELOAD, REPLICATION SLAVE ON *.* TO `debezium`@`10.0.0.%`", CDC_GRANTS[1]]
    [finding] = check_mysql_grants(_source("clinic-stock"), _mariadb_session(grants=grants))
    assert finding.severity == ERROR
    assert "debezium@10.0.0.% lacks REPLICATION CLIENT on *.*; INSERT on `pharmacy`.`debezium_signal`" in finding.message
    assert finding.fix.splitlines() == [  # SELECT on `pharmacy`.* covers the signal table
        "GRANT REPLICATION CLIENT ON *.* TO 'debezium'@'10.0.0.%';",
        "GRANT INSERT ON `pharmacy`.`debezium_signal` TO 'debezium'@'10.0.0.%';",
    ]


def test_select_on_another_database_does_not_count() -> None:
    grants = [CDC_GRANTS[0], "GRANT SELECT ON `pharmacy_old`.* TO `debezium`@`10.0.0.%`", CDC_GRANTS[2]]
    [finding] = check_mysql_grants(_source("clinic-stock"), _mariadb_session(grants=grants))
    assert finding.severity == ERROR and finding.fix == "GRANT SELECT ON `pharmacy`.* TO 'debezium'@'10.0.0.%';"


def test_a_missing_cdc_user_gets_create_user_and_every_grant() -> None:
    session = _mariadb_session()
    session.rules["mysql.user"] = []
    [finding] = check_mysql_grants(_source("clinic-stock"), session)
    assert finding.severity == ERROR and "does not exist" in finding.message
    assert finding.fix.splitlines()[0] == "CREATE USER 'debezium'@'%' IDENTIFIED BY '<password>';"
    assert "GRANT RELOAD, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'debezium'@'%';" in finding.fix


def test_the_doctor_logged_in_as_the_cdc_user_reads_its_own_grants() -> None:
    session = _mariadb_session()
    session.rules = {"CURRENT_USER()": [("debezium@10.0.0.%",)], "SHOW GRANTS": [(g,) for g in CDC_GRANTS]}
    assert check_mysql_grants(_source("clinic-stock"), session)[0].severity == OK
    assert not any("mysql.user" in q for q, _ in session.queries)


def test_a_check_that_fails_becomes_an_error_finding_and_the_others_still_run() -> None:
    session = _mariadb_session()
    session.rules = {"SHOW GRANTS": PermissionError("SELECT command denied"), **session.rules}
    found = mysql_checks(_source("clinic-stock"), session, {"database.server.id": "5400"}, timedelta(hours=24), {})
    grants = [f for f in found if f.component == "clinic-stock: CDC user grants"]
    assert [g.severity for g in grants] == [ERROR] and "SELECT command denied" in grants[0].message
    assert _severities(found)["clinic-stock: binlog_row_image"] == OK


# --- PostgreSQL -----------------------------------------------------------------------------------


def test_wal_level_must_be_logical() -> None:
    [finding] = check_wal_level(_source("clinic-visits"), {"wal_level": "replica"})
    assert finding.severity == ERROR and "replica" in finding.message and "restarts" in finding.message
    assert finding.fix == "ALTER SYSTEM SET wal_level = logical;"
    assert check_wal_level(_source("clinic-visits"), {"wal_level": "logical"})[0].severity == OK


def test_replication_slots_and_senders_must_have_room_for_the_connector() -> None:
    settings = {"max_replication_slots": "2", "max_wal_senders": "2"}
    full = FakeSession({"pg_replication_slots": [("a", True), ("b", False)], "pg_stat_replication": [(2,)]})
    slots, senders = check_replication_capacity(_source("clinic-visits"), full, settings, "clinic_visits")
    assert slots.severity == ERROR and "all max_replication_slots=2 are used (a, b)" in slots.message
    assert slots.fix == "ALTER SYSTEM SET max_replication_slots = 6;"
    assert senders.severity == ERROR and senders.fix == "ALTER SYSTEM SET max_wal_senders = 6;"
    ours = FakeSession({"pg_replication_slots": [("clinic_visits", True), ("b", False)], "pg_stat_replication": [(2,)]})
    assert {f.severity for f in check_replication_capacity(_source("clinic-visits"), ours, settings, "clinic_visits")} == {OK}


@pytest.mark.parametrize(
    ("identity", "columns", "severity"),
    [("full", None, OK), ("default", None, ERROR), ("nothing", [_column("id", "bigint")], ERROR),
     ("default", [_column("id", "bigint")], WARNING), (None, None, ERROR)],
)  # fmt: skip
def test_replica_identity_full_is_required_where_values_are_stored_out_of_line(
    identity: str | None, columns: list[SourceColumn] | None, severity: str
) -> None:
    session = FakeSession({}, {"visits": identity})
    if columns is not None:
        session.columns = lambda table: columns  # type: ignore[method-assign]
    [finding] = check_replica_identity(_source("clinic-visits"), session)
    assert finding.severity == severity and finding.component == "clinic-visits: replica identity care.visits"
    if severity != OK and identity is not None:
        assert finding.fix == 'ALTER TABLE "care"."visits" REPLICA IDENTITY FULL;'
    if identity == "default" and columns is None:
        assert "__debezium_unavailable_value" in finding.message and "['note']" in finding.message


def _publication(held: list[tuple[str, str]], flags: tuple[bool, ...] = (False, True, True, True)) -> FakeSession:
    return FakeSession({"FROM pg_publication WHERE": [flags], "pg_publication_tables": held})


def test_the_publication_holds_exactly_the_captured_tables_and_the_signal_table() -> None:
    source, name = _source("clinic-visits"), "clinic_visits_publication"
    listed = '"care"."debezium_signal", "care"."visits"'
    exact = [("care", "visits"), ("care", "debezium_signal")]
    assert check_publication(source, _publication(exact), name)[0].severity == OK
    [missing] = check_publication(source, _publication([("care", "debezium_signal")]), name)
    assert missing.severity == ERROR and "care.visits" in missing.message
    assert missing.fix == f'ALTER PUBLICATION "clinic_visits_publication" SET TABLE {listed};'
    [extra] = check_publication(source, _publication([*exact, ("care", "audit")]), name)
    assert extra.severity == WARNING and "care.audit" in extra.message
    [absent] = check_publication(source, FakeSession({"FROM pg_publication WHERE": []}), name)
    assert absent.severity == ERROR and absent.fix == f'CREATE PUBLICATION "clinic_visits_publication" FOR TABLE {listed};'
    [everything] = check_publication(source, _publication([], (True, True, True, True)), name)
    assert everything.severity == WARNING and "FOR ALL TABLES" in everything.message
    [no_deletes] = check_publication(source, _publication(exact, (False, True, True, False)), name)
    assert no_deletes.severity == ERROR and "publish =" in no_deletes.fix


def test_slot_lag_above_the_threshold_is_a_warning() -> None:
    source = _source("clinic-visits")
    [behind] = check_slot_lag(source, FakeSession({"pg_wal_lsn_diff": [(False, 3 * 1024**3)]}), "clinic_visits", 1024**3)
    assert behind.severity == WARNING and "3.0 GiB" in behind.message and "active=False" in behind.message
    assert "pg_drop_replication_slot('clinic_visits')" in behind.fix
    assert check_slot_lag(source, FakeSession({"pg_wal_lsn_diff": [(True, 4096)]}), "clinic_visits", 1024**3)[0].severity == OK
    assert check_slot_lag(source, FakeSession({"pg_wal_lsn_diff": []}), "clinic_visits", 1024**3)[0].severity == INFO


def _privileges(role: list[tuple[bool, ...]], allowed: Callable[[tuple[Any, ...]], bool]) -> FakeSession:
    return FakeSession({
        "pg_roles": role,
        "has_database_privilege": [(True,)],
        "has_schema_privilege": [(True,)],
        "has_table_privilege": lambda params: [(allowed(params),)],
    })  # fmt: skip


def test_the_cdc_role_needs_login_replication_and_its_table_privileges() -> None:
    source = _source("clinic-visits")
    assert check_postgres_privileges(source, _privileges([(True, True, False)], lambda p: True))[0].severity == OK
    no_select = _privileges([(True, False, False)], lambda p: not (p[1] == "SELECT" and p[3] == "visits"))
    [finding] = check_postgres_privileges(source, no_select)
    assert finding.severity == ERROR and "LOGIN REPLICATION" in finding.message and "SELECT on care.visits" in finding.message
    assert finding.fix.splitlines() == ['ALTER ROLE "debezium" WITH LOGIN REPLICATION;',
                                        'GRANT SELECT ON "care"."visits" TO "debezium";']  # fmt: skip
    [absent] = check_postgres_privileges(source, _privileges([], lambda p: True))
    assert absent.severity == ERROR and absent.fix.startswith('CREATE ROLE "debezium" WITH LOGIN REPLICATION')
    assert 'GRANT SELECT, INSERT ON "care"."debezium_signal" TO "debezium";' in absent.fix


def test_a_missing_signal_table_is_an_error_with_its_create_statement() -> None:
    [finding] = check_signal_table(_source("clinic-visits"), FakeSession({"information_schema.tables": []}))
    assert finding.severity == ERROR and finding.fix.startswith('CREATE TABLE "care"."debezium_signal" (id VARCHAR(42)')
    [mysql] = check_signal_table(_source("clinic-stock"), FakeSession({"information_schema.tables": [(1,)]}))
    assert mysql.severity == OK


# --- Kafka and Connect ----------------------------------------------------------------------------


class FakeKafka:
    def __init__(self, topics: Mapping[str, int], configs: Mapping[str, Mapping[str, str]] | None = None,
                 acls: Sequence[tuple[str, ...]] = LIVE_ACLS) -> None:  # fmt: skip
        self._topics, self._configs, self._acls = dict(topics), dict(configs or {}), list(acls)

    def topics(self) -> Mapping[str, int]:
        return self._topics

    def topic_config(self, topic: str) -> Mapping[str, str]:
        declared = {"cleanup.policy": "delete", "retention.ms": "-1" if "history" in topic else "1209600000"}
        return self._configs.get(topic, declared)

    def acls(self) -> Sequence[tuple[str, ...]]:
        return self._acls


ALL_TOPICS = {"clinic-stock.pharmacy.stock": 3, "_schema-history.clinic-stock": 1, "clinic-visits.care.visits": 1,
              "dlq.stock-raw": 1}  # fmt: skip


def test_topics_exist_with_their_declared_partitions_and_configs() -> None:
    live = {**ALL_TOPICS, "clinic-stock.pharmacy.stock": 2, "clinic-visits.care.visits": 4}
    del live["dlq.stock-raw"]
    found = check_topics(_manifest(), SYNTHESIZED, FakeKafka(live), live)
    by = {f.component: f for f in found}
    assert by["clinic-stock: topic clinic-stock.pharmacy.stock"].severity == ERROR  # 2 < 3, owned by the source
    assert "2 partition(s), 3 declared" in by["clinic-stock: topic clinic-stock.pharmacy.stock"].message
    assert by["clinic-visits: topic clinic-visits.care.visits"].severity == WARNING
    assert by["stock-raw: topic dlq.stock-raw"].severity == ERROR
    assert by["stock-raw: topic dlq.stock-raw"].fix.startswith("datapipe deploy --stack clinic")
    assert by["clinic-stock: topic _schema-history.clinic-stock"].severity == OK
    drifted = check_topics(_manifest(), SYNTHESIZED, FakeKafka(ALL_TOPICS, {"_schema-history.clinic-stock": {}}), ALL_TOPICS)
    [history] = [f for f in drifted if "_schema-history" in f.component]
    assert history.severity == WARNING and "retention.ms=None (declared -1)" in history.message


def test_the_connect_principals_acls_must_be_present() -> None:
    assert {f.severity for f in check_acls(_manifest(), SYNTHESIZED, LIVE_ACLS)} == {OK}  # prefixed ALL, CLUSTER as BROKER
    found = check_acls(_manifest(), SYNTHESIZED, LIVE_ACLS[:1])
    by = {f.component: f for f in found}
    assert by["clinic-stock: Kafka ACLs"].severity == ERROR
    assert "User:connect lacks DescribeConfigs on Cluster:kafka-cluster" in by["clinic-stock: Kafka ACLs"].message
    assert by["stock-raw: Kafka ACLs"].severity == ERROR and "Write on Topic:dlq.stock-raw" in by["stock-raw: Kafka ACLs"].message
    assert by["clinic-visits: Kafka ACLs"].severity == OK


@pytest.mark.parametrize(
    ("state", "severity", "fix"),
    [
        (ConnectorState("c", "RUNNING", ("RUNNING",)), OK, ""),
        (ConnectorState("c", "RUNNING", ("FAILED",), "java.lang.IllegalStateException: binlog purged\n\tat ..."), ERROR,
         "POST /connectors/c/restart?includeTasks=true&onlyFailed=true"),
        (ConnectorState("c", "PAUSED", ("PAUSED",)), WARNING, "PUT /connectors/c/resume"),
        (ConnectorState("c", "MISSING", ()), ERROR, "datapipe deploy"),
        (ConnectorState("c", "UNASSIGNED", ()), WARNING, "logs"),
    ],
)  # fmt: skip
def test_connector_states(state: ConnectorState, severity: str, fix: str) -> None:
    [finding] = check_connector(state)
    assert finding.severity == severity and fix in finding.fix
    if state.trace:
        assert "binlog purged" in finding.message and "\tat" not in finding.message


def test_dead_letters_are_a_warning_naming_the_first_reason() -> None:
    assert check_dead_letters("stock-raw", "dlq.stock-raw", [])[0].severity == OK
    letter = DeadLetter("clinic-stock.pharmacy.stock", 0, 41, {"sku": "A-1"}, "Cannot convert field on_hand")
    [finding] = check_dead_letters("stock-raw", "dlq.stock-raw", [letter, letter])
    assert finding.severity == WARNING and "2 record(s)" in finding.message and "Cannot convert field on_hand" in finding.message
    assert finding.fix.endswith("datapipe dlq replay --sink stock-raw")


# --- the whole stack ------------------------------------------------------------------------------


class FakeConnect:
    def __init__(self, states: Mapping[str, str]) -> None:
        self.states = dict(states)

    def status(self, name: str) -> ConnectorState:
        state = self.states.get(name, "MISSING")
        return ConnectorState(name, state, () if state == "MISSING" else (state,))


def _reach(
    sessions: Mapping[str, FakeSession | Exception], connect: Any, kafka: Any, letters: Sequence[DeadLetter] = ()
) -> Reach:
    @contextmanager
    def database(source: Source) -> Iterator[FakeSession]:
        session = sessions[source.name]
        if isinstance(session, Exception):
            raise session
        yield session

    def fail(what: Any) -> Any:
        if isinstance(what, Exception):
            raise what
        return what

    return Reach(database=database, kafka=lambda: fail(kafka), connect=lambda: fail(connect), dead_letters=lambda t: letters)


def _healthy_postgres() -> FakeSession:
    return FakeSession({
        "pg_settings": [("wal_level", "logical"), ("max_replication_slots", "10"), ("max_wal_senders", "10")],
        "slot_name, active": [("clinic_visits", True)],
        "pg_stat_replication": [(1,)],
        "FROM pg_publication WHERE": [(False, True, True, True)],
        "pg_publication_tables": [("care", "visits"), ("care", "debezium_signal")],
        "pg_wal_lsn_diff": [(True, 0)],
        "information_schema.tables": [(1,)],
        "pg_roles": [(True, True, False)],
        "has_": [(True,)],
    }, {"visits": "full"})  # fmt: skip


RUNNING = {"clinic-stock": "RUNNING", "clinic-visits": "RUNNING", "stock-raw": "RUNNING"}


def test_a_healthy_deployed_stack_has_no_error() -> None:
    reach = _reach({"clinic-stock": _mariadb_session(), "clinic-visits": _healthy_postgres()}, FakeConnect(RUNNING),
                   FakeKafka(ALL_TOPICS))  # fmt: skip
    found = examine(_manifest(), SYNTHESIZED, reach)
    assert {f.severity for f in found} == {OK}, render(found)
    assert "stock-raw: dead letters dlq.stock-raw" in _severities(found)


def test_unreachable_services_are_error_findings_and_the_run_goes_on() -> None:
    refused = ConnectionRefusedError("[Errno 111] Connection refused")
    unreachable = ConnectError("Kafka Connect not reachable at https://connect:8083")
    sessions = {"clinic-stock": refused, "clinic-visits": _healthy_postgres()}
    reach = _reach(sessions, unreachable, RuntimeError("Failed to get metadata"))
    found = examine(_manifest(), SYNTHESIZED, reach)
    by = {f.component: f for f in found}
    assert by["clinic-stock: connection"].severity == ERROR
    assert "mariadb stock-db:3306/pharmacy" in by["clinic-stock: connection"].message
    assert "DATAPIPE_MARIADB_USER" in by["clinic-stock: connection"].fix
    assert by["clinic-visits: wal_level"].severity == OK  # the other source is still checked
    assert by["clinic: Kafka Connect"].severity == ERROR and by["clinic: Kafka"].severity == ERROR


def test_before_deploy_only_the_databases_are_checked() -> None:
    kafka = FakeKafka({})
    reach = _reach({"clinic-stock": _mariadb_session(), "clinic-visits": _healthy_postgres()}, FakeConnect({}), kafka)
    found = examine(_manifest(), SYNTHESIZED, reach)
    assert found[-1].severity == INFO and "not deployed yet" in found[-1].message
    assert not any("topic" in f.component for f in found)


def test_production_logins_come_from_the_environment_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATAPIPE_MARIADB_USER", "doctor")
    monkeypatch.setenv("DATAPIPE_MARIADB_PASSWORD", "pw")
    monkeypatch.delenv("DATAPIPE_POSTGRESQL_USER", raising=False)
    monkeypatch.setattr(doctor, "load_credentials", lambda: pytest.fail("production must not read the local run dir"))
    credentials = doctor.doctor_credentials(_manifest())
    assert credentials.database(_source("clinic-stock")).user == "doctor"
    with pytest.raises(Exception, match="DATAPIPE_POSTGRESQL_USER"):
        credentials.database(_source("clinic-visits"))


# --- the command ----------------------------------------------------------------------------------


def test_a_bad_outage_budget_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["doctor", "--outage-budget", "soon"]) == cli.USAGE
    assert "--outage-budget" in capsys.readouterr().err


@pytest.mark.parametrize(("severities", "code"), [((OK, WARNING, INFO), cli.OK), ((OK, ERROR), cli.FAILED)])
def test_the_command_exits_1_on_any_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], severities: tuple[str, ...], code: int
) -> None:
    seen: dict[str, Any] = {}

    def fake_examine(manifest: Manifest, synthesized: Any, **options: Any) -> list[Finding]:
        seen.update(options)
        return [Finding(s, f"clinic-stock: check {i}", "found", "fix it") for i, s in enumerate(severities)]

    stack = SimpleNamespace(node=SimpleNamespace(id="clinic"))
    monkeypatch.setattr(cli, "_synth_app", lambda args, as_json=False: (None, [stack], cli.OK))
    monkeypatch.setattr(
        StackDir, "read", classmethod(lambda cls, out, name: SimpleNamespace(manifest=_manifest(), synthesized={}))
    )
    monkeypatch.setattr(doctor, "examine", fake_examine)
    assert cli.main(["doctor", "--json", "--outage-budget", "90m"]) == code
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is (code == cli.OK) and seen["outage_budget"] == timedelta(minutes=90)
    assert [f["severity"] for f in report["stacks"][0]["findings"]] == list(severities)
    assert cli.main(["doctor"]) == code
    assert capsys.readouterr().out.startswith("== clinic ==\nSEVERITY")


def test_a_declared_type_that_does_not_fit_the_source_is_an_error_naming_the_type_that_does() -> None:
    """TIMESTAMP declared for a PostgreSQL ``timestamp without time zone``: the view would show NULL for every row."""

    class Visits(FakeSession):
        def columns(self, table: str) -> list[SourceColumn]:
            return [_column("id", "bigint"), _column("note", "timestamp without time zone"), _column("extra", "text")]

    found = check_columns(_source("clinic-visits"), Visits({}))
    [misfit] = [f for f in found if f.severity == ERROR]
    assert misfit.component.endswith(".note") and "declared STRING, source is timestamp without time zone" in misfit.message
    assert misfit.fix == "declare Column('note', ColumnType.DATETIME)"
    [undeclared] = [f for f in found if f.severity == INFO]
    assert "not declared, so not carried: extra" in undeclared.message

    class Gone(FakeSession):
        def columns(self, table: str) -> list[SourceColumn]:
            return [_column("id", "bigint")]

    [gone] = check_columns(_source("clinic-visits"), Gone({}))
    assert gone.severity == ERROR and "declared but gone from the source (they arrive NULL): note" in gone.message
