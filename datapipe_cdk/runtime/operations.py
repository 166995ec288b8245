"""Operations on a deployed pipeline: incremental snapshots through a source's signal table, pause and resume.

**Incremental snapshots.** Every ``CdcSource`` reads Debezium's ``source`` signal channel, the table
``<database or schema>.debezium_signal`` (``Source.signal_table``). A row ``(id, 'execute-snapshot',
'{"data-collections": ["<namespace>.<table>"], "type": "incremental"}')`` inserted there is read by the
connector from the binlog / WAL like any change; it then reads the named tables in chunks, interleaved
with streaming (the events are ``op = 'r'``), while every other table keeps streaming and is not re-read.
``datapipe deploy`` sends one for tables added to a running source (:func:`added_tables`), and
``datapipe snapshot --table <source>.<table>`` for one table. The row is written with a database login
that may insert there (the environment's ``DATAPIPE_<ENGINE>_USER`` / ``_PASSWORD``, else the local
stack's admin; see :mod:`datapipe_cdk.runtime.credentials`); a missing table or grant is reported with
the statements that create it (:func:`signal_table_ddl`).

**Pause and resume** (``datapipe pause | resume <connector>``) go through Connect's REST API. A pause
lasts until ``datapipe resume`` or the next ``datapipe deploy``, which resumes every connector the app
declares (run state follows the code); meanwhile ``datapipe plan`` reports it as run-state drift.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
import pymysql

from datapipe_cdk.connect_api import ConnectClient, ConnectError, ConnectorState
from datapipe_cdk.manifest import Manifest, Source
from datapipe_cdk.runtime._sql import quote_mysql, quote_postgres
from datapipe_cdk.runtime.credentials import Login

SIGNAL_COLUMNS = "id VARCHAR(42) PRIMARY KEY, type VARCHAR(32) NOT NULL, data VARCHAR(2048) NULL"
"""Debezium's signal table layout (id, type, data; in this order)."""
EXECUTE_SNAPSHOT = "execute-snapshot"
_NO_SUCH_TABLE = 1146
_DENIED = (1142, 1044, 1045)
"""MySQL/MariaDB: table access denied, database access denied, login refused."""


class OperationError(RuntimeError):
    """An operation cannot be done as asked; the message names the thing, the value, the rule and the fix."""


def namespace(source: Source) -> str:
    """The source's table namespace: its PostgreSQL schema, or its MySQL/MariaDB database."""
    return (source.schema or "public") if source.is_postgres else source.database


def qualified_tables(source: Source, tables: Sequence[str]) -> list[str]:
    """``<namespace>.<table>`` of each table, which must be one the source captures."""
    captured = [t.name for t in source.tables]
    unknown = [t for t in tables if t not in captured]
    if unknown:
        raise OperationError(
            f"source {source.name} does not capture {', '.join(unknown)} (captured: {', '.join(captured)}): an incremental "
            "snapshot reads captured tables only; add the table to the CdcSource and deploy (deploy snapshots it)"
        )
    return [f"{namespace(source)}.{t}" for t in tables]


def signal_table_ddl(source: Source, publication: str | None = None) -> str:
    """The statements a DBA runs once to create the source's signal table for its CDC login."""
    if not source.signal_table:
        return f"-- source {source.name} has no signal table: redeploy it with this datapipe-cdk\n"
    schema, _, table = source.signal_table.partition(".")
    if source.is_postgres:
        name = quote_postgres([schema, table])
        lines = [
            f"CREATE TABLE {name} ({SIGNAL_COLUMNS});",
            f"GRANT SELECT, INSERT ON {name} TO {quote_postgres(source.username)};",
            f"ALTER PUBLICATION {quote_postgres(publication or '<publication.name>')} ADD TABLE {name};",
        ]
    else:
        name = quote_mysql([schema, table])
        lines = [f"CREATE TABLE {name} ({SIGNAL_COLUMNS});", f"GRANT SELECT, INSERT ON {name} TO '{source.username}'@'%';"]
    return "\n".join(lines) + "\n"


def snapshot_signal(source: Source, tables: Sequence[str], signal_id: str | None = None) -> tuple[str, str, str]:
    """The signal row ``(id, type, data)`` asking for an incremental snapshot of ``tables`` (names, not qualified)."""
    data = json.dumps({"data-collections": qualified_tables(source, tables), "type": "incremental"})
    return signal_id or str(uuid.uuid4()), EXECUTE_SNAPSHOT, data


@contextmanager
def _connect(source: Source, login: Login) -> Iterator[Any]:
    conn: Any
    if source.is_postgres:
        conn = psycopg.connect(
            host=source.host, port=source.port, user=login.user, password=login.password, dbname=source.database,
            autocommit=True, connect_timeout=10,
        )  # fmt: skip
    else:
        conn = pymysql.connect(
            host=source.host, port=source.port, user=login.user, password=login.password, database=source.database,
            autocommit=True, connect_timeout=10,
        )  # fmt: skip
    try:
        yield conn
    finally:
        conn.close()


def request_incremental_snapshot(source: Source, tables: Sequence[str], login: Login, *, publication: str | None = None) -> str:
    """Insert an ``execute-snapshot`` signal for ``tables`` into the source's signal table; its id."""
    if not source.signal_table:
        raise OperationError(
            f"source {source.name} has no signal table in its deployed manifest: deploy it with this datapipe-cdk "
            "(every CdcSource gets one), then request the snapshot again"
        )
    signal = snapshot_signal(source, tables)
    schema, _, table = source.signal_table.partition(".")
    quoted = quote_postgres([schema, table]) if source.is_postgres else quote_mysql([schema, table])
    fix = f"create it as the DBA:\n{signal_table_ddl(source, publication)}"
    try:
        with _connect(source, login) as conn, conn.cursor() as cur:
            cur.execute(f"INSERT INTO {quoted} (id, type, data) VALUES (%s, %s, %s)", signal)
    except (psycopg.Error, pymysql.err.Error) as error:
        code = error.args[0] if isinstance(error, pymysql.err.Error) and error.args else None
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if isinstance(error, psycopg.errors.UndefinedTable) or code == _NO_SUCH_TABLE:
            raise OperationError(f"source {source.name}: signal table {source.signal_table} does not exist; {fix}") from None
        if isinstance(error, psycopg.errors.InsufficientPrivilege) or code in _DENIED:
            raise OperationError(
                f"source {source.name}: login {login.user} may not insert into {source.signal_table} ({detail}); use a "
                f"login that may (DATAPIPE_{_engine(source)}_USER / _PASSWORD), or {fix}"
            ) from None
        raise OperationError(
            f"source {source.name}: cannot write the signal into {source.signal_table} at {source.host}:{source.port} as "
            f"{login.user} ({detail}); check the database is reachable and DATAPIPE_{_engine(source)}_USER / _PASSWORD"
        ) from None
    return signal[0]


def _engine(source: Source) -> str:
    return "POSTGRESQL" if source.is_postgres else source.engine.upper()


def added_tables(before: Manifest | None, after: Manifest) -> dict[str, list[str]]:
    """Source name -> tables ``after`` captures that the same source did not capture ``before``.

    Only sources deployed before count (a new source snapshots everything on its first start), and only
    those with a signal table (the signal is how the snapshot is asked for)."""
    if before is None:
        return {}
    previous = {s.name: {t.name for t in s.tables} for s in before.sources}
    found = {}
    for source in after.sources:
        if source.name in previous and source.signal_table:
            new = [t.name for t in source.tables if t.name not in previous[source.name]]
            if new:
                found[source.name] = new
    return found


def _included(config: Any) -> set[str]:
    listed = config.get("table.include.list", "") if isinstance(config, dict) else ""
    return {re.sub(r"\\(.)", r"\1", item.strip()) for item in str(listed).split(",") if item.strip()}


def wait_until_captured(
    client: ConnectClient, connector: str, qualified: Sequence[str], *, timeout: float = 180.0, settle_s: float = 5.0
) -> None:
    """Wait until the connector's running tasks capture ``qualified`` tables (their task configs list them and
    they run), plus ``settle_s``: a signal read by a task still on the old config would name a table it
    does not capture, and be ignored."""
    deadline = time.monotonic() + timeout
    while True:
        code, tasks = client.call("GET", f"/connectors/{connector}/tasks")
        configs = [t.get("config", {}) for t in tasks] if code == 200 and isinstance(tasks, list) else []
        if configs and all(set(qualified) <= _included(c) for c in configs):
            break
        if time.monotonic() > deadline:
            raise OperationError(
                f"connector {connector} still does not capture {', '.join(qualified)} after {timeout:.0f}s (its tasks: "
                f"{code}); check `datapipe plan` and the Connect worker log, then `datapipe snapshot --table`"
            )
        time.sleep(1.0)
    client.wait_running([connector], timeout=max(10.0, deadline - time.monotonic()))
    time.sleep(settle_s)


def _wait_state(client: ConnectClient, name: str, want: str, timeout: float) -> ConnectorState:
    deadline = time.monotonic() + timeout
    while True:
        state = client.status(name)
        if state.state == want and all(t == want for t in state.tasks):
            return state
        if time.monotonic() > deadline:
            raise OperationError(
                f"connector {name} is {state.state} (tasks: {', '.join(state.tasks) or 'none'}) {timeout:.0f}s after the "
                f"request, not {want}; check the Connect worker log"
            )
        time.sleep(0.5)


def _known(client: ConnectClient, name: str, done: bool) -> None:
    if not done:
        raise OperationError(
            f"Kafka Connect at {client.url} has no connector {name!r} (connectors: {', '.join(client.connectors()) or 'none'}); "
            "deploy the app first"
        )


def pause_connector(client: ConnectClient, name: str, timeout: float = 60.0) -> ConnectorState:
    """Pause a connector and wait until it and its tasks are PAUSED (the next deploy resumes it)."""
    _known(client, name, client.pause(name))
    return _wait_state(client, name, "PAUSED", timeout)


def resume_connector(client: ConnectClient, name: str, timeout: float = 120.0) -> ConnectorState:
    """Resume a PAUSED or STOPPED connector and wait until it and its tasks are RUNNING."""
    _known(client, name, client.resume(name))
    try:
        client.wait_running([name], timeout=timeout)
    except ConnectError as error:
        raise OperationError(str(error)) from None
    return client.status(name)
