"""Logins come from the environment or the local run directory, and passwords never show in a repr."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from datapipe_cdk.runtime.credentials import Login, load_credentials

PREFIXES = ("DATAPIPE_KAFKA_", "DATAPIPE_MARIADB_", "DATAPIPE_MYSQL_", "DATAPIPE_POSTGRESQL_")


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No real run directory or login from the caller's environment leaks into these tests."""
    monkeypatch.setenv("DATAPIPE_RUN_DIR", str(tmp_path / "run"))
    for name in [n for n in os.environ if n.startswith(PREFIXES)]:
        monkeypatch.delenv(name)


def test_env_password_is_used_but_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATAPIPE_MARIADB_USER", "writer")
    monkeypatch.setenv("DATAPIPE_MARIADB_PASSWORD", "s3cret-value")
    credentials = load_credentials()
    assert credentials.databases["mariadb"] == Login("writer", "s3cret-value")
    assert "s3cret-value" not in repr(credentials)


def test_run_dir_logins_come_from_the_files_stack_json_names(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    databases = tmp_path / "databases.json"
    databases.write_text(json.dumps({"mariadb_admin": {"user": "root", "password": "db-pw"}}))
    passwords = tmp_path / "kafka-users.json"
    passwords.write_text(json.dumps({"admin": "kafka-pw", "probe": "other"}))
    (run / "stack.json").write_text(
        json.dumps(
            {
                "databases": {"credentials_file": str(databases)},
                "kafka": {"passwords_file": str(passwords), "super_users": ["User:admin"]},
            }
        )
    )
    credentials = load_credentials()
    assert credentials.databases == {"mariadb": Login("root", "db-pw"), "mysql": Login("root", "db-pw")}
    assert credentials.kafka == Login("admin", "kafka-pw")


def test_kafka_login_from_the_environment_with_a_password_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "kafka-password"
    secret.write_text("kafka-secret\n")
    monkeypatch.setenv("DATAPIPE_KAFKA_USERNAME", "analyst")
    monkeypatch.setenv("DATAPIPE_KAFKA_PASSWORD_FILE", str(secret))
    assert load_credentials().kafka == Login("analyst", "kafka-secret")


@pytest.mark.parametrize("engine", ["MARIADB", "MYSQL", "POSTGRESQL"])
def test_each_documented_database_variable_is_read(engine: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "db-password"
    secret.write_text("db-secret")
    monkeypatch.setenv(f"DATAPIPE_{engine}_USER", "reader")
    monkeypatch.setenv(f"DATAPIPE_{engine}_PASSWORD_FILE", str(secret))
    assert load_credentials().databases[engine.lower()] == Login("reader", "db-secret")
