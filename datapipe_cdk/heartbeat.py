"""The heartbeat table a freshness objective adds to a source: its name and statements (standard library only,
so the runtime helpers can name it without loading the constructs)."""

from __future__ import annotations

HEARTBEAT_TABLE = "debezium_heartbeat"
"""The heartbeat table of a source with an objective (in its database, or its PostgreSQL schema)."""


def heartbeat_statement(postgres: bool, namespace: str) -> str:
    """``heartbeat.action.query``: upsert row 1 with the database's current time (UTC)."""
    table = f"{namespace}.{HEARTBEAT_TABLE}"
    if postgres:
        return f"INSERT INTO {table} (id, beat) VALUES (1, now()) ON CONFLICT (id) DO UPDATE SET beat = EXCLUDED.beat"
    return f"INSERT INTO {table} (id, beat) VALUES (1, UTC_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE beat = VALUES(beat)"


def heartbeat_ddl(postgres: bool, namespace: str, username: str) -> str:
    """What the DBA runs once per database/schema (the local stack does it itself)."""
    table = f"{namespace}.{HEARTBEAT_TABLE}"
    if postgres:
        return (
            f"CREATE TABLE {table} (id integer PRIMARY KEY, beat timestamptz NOT NULL);\n"
            f"GRANT SELECT, INSERT, UPDATE ON {table} TO {username};\n"
            f"ALTER TABLE {table} REPLICA IDENTITY FULL;  -- and add it to the source's publication"
        )
    return (
        f"CREATE TABLE {table} (id INT PRIMARY KEY, beat TIMESTAMP(6) NOT NULL);\n"
        f"GRANT SELECT, INSERT, UPDATE ON {table} TO '{username}'@'%';"
    )
