"""MariaDB and PostgreSQL from Debian's packages, run as loopback servers set up for change data capture.

Neither distro service is used: each server gets its own data directory under the run directory, its
config and port from ``StackConfig``, listens on 127.0.0.1 only, and is stopped by its PID. MariaDB
writes a ROW/FULL binlog; PostgreSQL runs with ``wal_level=logical``. Only the admin logins exist at
start (``datapipe_admin`` / ``postgres``): users create their own schemas as admin
(``datapipe local sql``), and ``datapipe deploy --local`` creates each source's CDC login with exactly
the grants Debezium needs (:mod:`datapipe_cdk.local.provision`). Passwords are made once per run
directory and kept in ``<run>/secrets/databases.json`` (mode 600).

PostgreSQL refuses to run as root. As root it runs in a user namespace where it is an ordinary user
(``unshare --user --map-user``): the same process, the same files, still under the run directory, so
``datapipe local reset`` wipes everything.
"""

from __future__ import annotations

import functools
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datapipe_cdk.local._process import (
    ServiceError,
    data_dir,
    is_running,
    read_pid,
    start_process,
    stop_process,
    wait_until,
    write_private,
)
from datapipe_cdk.local.config import StackConfig

if TYPE_CHECKING:
    import psycopg
    import pymysql

DEBIAN_PACKAGES = ("mariadb-server", "mariadb-client", "postgresql")
MARIADB_SERVER_ID = 184054  # Debezium's own server id must differ: use e.g. 5400 in the connector.
ADMIN_USER = "datapipe_admin"


@dataclass(frozen=True)
class Login:
    user: str
    password: str


@dataclass(frozen=True)
class DbCredentials:
    """The admin logins, generated per run directory (CDC logins are per source: see ``provision``)."""

    mariadb_admin: Login
    postgres_admin: Login


def _say(message: str) -> None:
    print(f"[databases] {message}", flush=True)


# --- installation -------------------------------------------------------------------------


def _mariadbd() -> str | None:
    return shutil.which("mariadbd") or shutil.which("mariadbd", path="/usr/sbin:/usr/bin")


def _postgres_bin_dir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<major>/bin`` that has a server."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    return found[-1].parent if found else None


def install() -> None:
    """Install MariaDB and PostgreSQL from Debian's packages unless both servers are present."""
    if _mariadbd() and _postgres_bin_dir():
        _say(f"servers present: {mariadb_version()} / PostgreSQL {postgres_version()} (skip install)")
        return
    if os.geteuid() != 0:
        raise ServiceError(
            "MariaDB/PostgreSQL missing; run: sudo apt-get update && "
            f"sudo apt-get install -y --no-install-recommends {' '.join(DEBIAN_PACKAGES)}"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _say("apt-get update")
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env)
    _say(f"apt-get install {' '.join(DEBIAN_PACKAGES)}")
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *DEBIAN_PACKAGES],
        check=True,
        env=env,
    )
    _say(f"installed {mariadb_version()} / PostgreSQL {postgres_version()}")


def mariadb_version() -> str:
    binary = _mariadbd()
    if binary is None:
        raise ServiceError("mariadbd not found; run: datapipe local setup")
    return _mariadbd_version(binary)


@functools.cache
def _mariadbd_version(binary: str) -> str:
    """``mariadbd --version`` of one binary, run once per process (a start asks for it several times)."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"Ver (\d+\.\d+\.\d+)", out)
    return f"MariaDB {match.group(1)}" if match else out.strip()


def postgres_version() -> str:
    bin_dir = _postgres_bin_dir()
    if bin_dir is None:
        raise ServiceError("postgres not found; run: datapipe local setup")
    out = subprocess.run([str(bin_dir / "postgres"), "--version"], capture_output=True, text=True, check=True)
    match = re.search(r"\) (\d+(?:\.\d+)*)", out.stdout)
    return match.group(1) if match else out.stdout.strip()


# --- credentials --------------------------------------------------------------------------


def _secrets_file(cfg: StackConfig) -> Path:
    return cfg.run_dir / "secrets" / "databases.json"


def credentials(cfg: StackConfig) -> DbCredentials:
    """The run directory's database logins, generated (mode 600) on first use."""
    path = _secrets_file(cfg)
    if path.exists():
        raw = json.loads(path.read_text())
        if set(raw) == {"mariadb_admin", "postgres_admin"}:
            return DbCredentials(**{key: Login(**value) for key, value in raw.items()})
    creds = DbCredentials(
        mariadb_admin=Login(ADMIN_USER, secrets.token_urlsafe(18)),
        postgres_admin=Login("postgres", secrets.token_urlsafe(18)),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    write_private(path, json.dumps(asdict(creds), indent=2))
    return creds


# --- MariaDB ------------------------------------------------------------------------------


def _mariadb_paths(cfg: StackConfig) -> dict[str, Path]:
    base = cfg.run_dir / "data" / "mariadb"
    return {
        "base": base,
        "datadir": base / "datadir",
        "cnf": base / "my.cnf",
        "socket": base / "mariadb.sock",
        "tmp": base / "tmp",
    }


def _mariadb_cnf(cfg: StackConfig, paths: dict[str, Path]) -> str:
    major_minor = tuple(int(x) for x in mariadb_version().split()[-1].split(".")[:2])
    lines = [
        "[mariadbd]",
        f"datadir={paths['datadir']}",
        f"socket={paths['socket']}",
        f"tmpdir={paths['tmp']}",
        f"port={cfg.mariadb_port}",
        f"bind-address={cfg.host}",
        "skip-name-resolve",
        # Debezium: row-based binlog with full before/after images, uncompressed.
        f"server-id={MARIADB_SERVER_ID}",
        "log-bin=mariadb-bin",
        "binlog_format=ROW",
        "binlog_row_image=FULL",
        "log_bin_compress=0",
        "binlog_annotate_row_events=ON",
        "binlog_expire_logs_seconds=86400",
        "character-set-server=utf8mb4",
        "collation-server=utf8mb4_unicode_ci",
        # Small footprint for a test server.
        "innodb_buffer_pool_size=64M",
        "innodb_log_file_size=48M",
        "performance_schema=OFF",
        "max_connections=100",
    ]
    if major_minor >= (11, 4):
        lines.append("binlog_legacy_event_pos=1")  # Debezium needs it from MariaDB 11.4 on.
    return "\n".join(lines) + "\n"


def _os_user() -> str:
    return pwd.getpwuid(os.geteuid()).pw_name


def start_mariadb(cfg: StackConfig) -> None:
    """Initialise (first run only), start and set up the project's MariaDB on ``cfg.mariadb_port``."""
    if is_running("mariadb"):
        _say(f"mariadb already running (pid {read_pid('mariadb')})")
        return
    binary = _mariadbd()
    if binary is None:
        raise ServiceError("mariadbd not found; run: datapipe local setup")
    paths = _mariadb_paths(cfg)
    paths["tmp"].mkdir(parents=True, exist_ok=True)
    paths["cnf"].write_text(_mariadb_cnf(cfg, paths))
    user = _os_user()
    fresh = not (paths["datadir"] / "mysql").is_dir()
    if fresh:
        _say(f"mariadb-install-db into {paths['datadir']}")
        began = time.monotonic()
        subprocess.run(
            [
                "mariadb-install-db",
                f"--defaults-file={paths['cnf']}",
                f"--user={user}",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
            ],
            check=True,
            capture_output=True,
        )
        _say(f"mariadb-install-db done in {time.monotonic() - began:.1f}s")
    argv = [binary, f"--defaults-file={paths['cnf']}", f"--user={user}"]
    _say(f"starting {mariadb_version()} on {cfg.host}:{cfg.mariadb_port}")
    start_process("mariadb", argv)
    wait_until(lambda: paths["socket"].exists(), 60, "mariadb socket", log="mariadb")
    _bootstrap_mariadb(cfg, paths, user)
    wait_until(lambda: mariadb_healthy(cfg), 30, "mariadb login as the CDC user", log="mariadb")
    _say("mariadb ready")


def _bootstrap_mariadb(cfg: StackConfig, paths: dict[str, Path], os_user: str) -> None:
    """Create the admin login over the socket, as the OS user (socket authentication)."""
    admin = credentials(cfg).mariadb_admin
    statements = [
        f"CREATE USER IF NOT EXISTS '{admin.user}'@'{cfg.host}' IDENTIFIED BY '{admin.password}'",
        f"ALTER USER '{admin.user}'@'{cfg.host}' IDENTIFIED BY '{admin.password}'",
        f"GRANT ALL PRIVILEGES ON *.* TO '{admin.user}'@'{cfg.host}' WITH GRANT OPTION",
        "FLUSH PRIVILEGES",
    ]
    sql = ";\n".join(statements) + ";\n"

    def run_bootstrap() -> bool:
        subprocess.run(
            ["mariadb", f"--socket={paths['socket']}", f"--user={os_user}", "--batch"],
            input=sql.encode(),
            check=True,
            capture_output=True,
        )
        return True

    wait_until(run_bootstrap, 30, "mariadb bootstrap SQL (admin login)", log="mariadb")


def mariadb_connect(cfg: StackConfig, login: Login | None = None, database: str | None = None) -> pymysql.connections.Connection:
    """A pymysql connection over TCP (admin login unless another is given)."""
    import pymysql

    who = login or credentials(cfg).mariadb_admin
    return pymysql.connect(
        host=cfg.host,
        port=cfg.mariadb_port,
        user=who.user,
        password=who.password,
        database=database,
        connect_timeout=3,
        autocommit=True,
    )


def mariadb_healthy(cfg: StackConfig) -> bool:
    """The admin logs in over TCP and the binlog is ROW/FULL, as Debezium needs."""
    conn = mariadb_connect(cfg)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT @@log_bin, @@binlog_format, @@binlog_row_image")
            log_bin, fmt, image = cur.fetchone()
    finally:
        conn.close()
    return bool(log_bin) and fmt == "ROW" and image == "FULL"


def stop_mariadb(cfg: StackConfig) -> bool:
    del cfg
    return stop_process("mariadb", timeout=30)


# --- PostgreSQL ---------------------------------------------------------------------------


def _as_server(argv: list[str]) -> list[str]:
    """``argv`` as PostgreSQL must run it: as root, inside a user namespace where it is an ordinary user
    (it refuses uid 0); ``unshare`` execs in place, so the recorded PID stays the server's."""
    if os.geteuid() != 0:
        return argv
    if shutil.which("unshare") is None:
        raise ServiceError("PostgreSQL cannot run as root and unshare (util-linux) is missing: apt-get install util-linux")
    # An existing account (initdb looks its name up); only its ids are used, inside the namespace.
    account = next((a for a in (_account("postgres"), _account("nobody")) if a is not None), None)
    if account is None:
        raise ServiceError(
            "PostgreSQL cannot run as root: create an unprivileged 'postgres' user (apt-get install postgresql does)"
        )
    return ["unshare", "--user", f"--map-user={account.pw_uid}", f"--map-group={account.pw_gid}", *argv]


def _account(name: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def _pg_hba() -> str:
    return (
        "# datapipe-cdk: TCP on loopback only, password (SCRAM) for everyone, replication included.\n"
        "local   all          all                     scram-sha-256\n"
        "host    all          all          127.0.0.1/32  scram-sha-256\n"
        "host    replication  all          127.0.0.1/32  scram-sha-256\n"
    )


def _postgres_settings(cfg: StackConfig, base: Path) -> list[str]:
    settings = {
        "listen_addresses": cfg.host,
        "port": str(cfg.postgres_port),
        "unix_socket_directories": str(base),
        # Debezium (pgoutput): logical decoding, one slot/sender per connector plus headroom.
        "wal_level": "logical",
        "max_replication_slots": "20",
        "max_wal_senders": "20",
        "max_slot_wal_keep_size": "1GB",
        "shared_buffers": "64MB",
        "max_connections": "60",
        "password_encryption": "scram-sha-256",
        "log_destination": "stderr",
        "logging_collector": "off",
    }
    return [arg for key, value in settings.items() for arg in ("-c", f"{key}={value}")]


def start_postgres(cfg: StackConfig) -> None:
    """Initialise (first run only) and start the local PostgreSQL on ``cfg.postgres_port``."""
    if is_running("postgres"):
        _say(f"postgres already running (pid {read_pid('postgres')})")
        return
    bin_dir = _postgres_bin_dir()
    if bin_dir is None:
        raise ServiceError("postgres not found; run: datapipe local setup")
    base = data_dir("postgres")
    pgdata = base / "pgdata"
    creds = credentials(cfg)
    if not (pgdata / "PG_VERSION").exists():
        _say(f"initdb into {pgdata}")
        began = time.monotonic()
        pwfile = base / "initdb.pw"
        write_private(pwfile, creds.postgres_admin.password + "\n")
        try:
            argv = [str(bin_dir / "initdb"), "-D", str(pgdata), "-U", creds.postgres_admin.user, f"--pwfile={pwfile}",
                    "--auth=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8"]  # fmt: skip
            subprocess.run(_as_server(argv), check=True, capture_output=True)
        finally:
            pwfile.unlink(missing_ok=True)
        _say(f"initdb done in {time.monotonic() - began:.1f}s")
    (pgdata / "pg_hba.conf").write_text(_pg_hba())
    argv = _as_server([str(bin_dir / "postgres"), "-D", str(pgdata), *_postgres_settings(cfg, base)])
    _say(f"starting PostgreSQL {postgres_version()} on {cfg.host}:{cfg.postgres_port}")
    start_process("postgres", argv)
    wait_until(lambda: postgres_healthy(cfg), 60, "postgres login as admin", log="postgres")
    _say("postgres ready")


def postgres_connect(
    cfg: StackConfig, login: Login | None = None, dbname: str = "postgres"
) -> psycopg.Connection[tuple[Any, ...]]:
    """A psycopg connection over TCP (admin login unless another is given), autocommit on."""
    import psycopg

    who = login or credentials(cfg).postgres_admin
    return psycopg.connect(
        host=cfg.host,
        port=cfg.postgres_port,
        user=who.user,
        password=who.password,
        dbname=dbname,
        connect_timeout=3,
        autocommit=True,
    )


def postgres_healthy(cfg: StackConfig) -> bool:
    """The admin logs in over TCP and WAL is logical, as Debezium needs."""
    with postgres_connect(cfg) as conn:
        wal_level = (conn.execute("SHOW wal_level").fetchone() or ("",))[0]
    return bool(wal_level == "logical")


def stop_postgres(cfg: StackConfig) -> bool:
    """Fast shutdown (SIGINT): a smart shutdown (SIGTERM) would wait for Debezium to disconnect."""
    del cfg
    pid = read_pid("postgres")
    if pid is not None and is_running("postgres"):
        os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + 30
        while is_running("postgres") and time.monotonic() < deadline:
            time.sleep(0.2)
    return stop_process("postgres", timeout=10) or pid is not None


# --- both ---------------------------------------------------------------------------------


def start(cfg: StackConfig) -> None:
    install()
    start_mariadb(cfg)
    start_postgres(cfg)


def stop(cfg: StackConfig) -> None:
    for name, stopper in (("mariadb", stop_mariadb), ("postgres", stop_postgres)):
        if stopper(cfg):
            _say(f"{name} stopped")


def status(cfg: StackConfig) -> dict[str, str]:
    result = {}
    for name, healthy in (("mariadb", mariadb_healthy), ("postgres", postgres_healthy)):
        if not is_running(name):
            result[name] = "stopped"
            continue
        try:
            result[name] = f"healthy (pid {read_pid(name)})" if healthy(cfg) else "unhealthy"
        except Exception as exc:
            result[name] = f"unhealthy: {exc}"
    return result


def describe(cfg: StackConfig) -> dict[str, object]:
    """Endpoints, admin users and the credentials file path (never the passwords) for ``stack.json``."""
    creds = credentials(cfg)
    versions = {}
    for name, probe in (("mariadb", mariadb_version), ("postgres", postgres_version)):
        try:
            versions[name] = probe()
        except ServiceError:
            versions[name] = "not installed"
    return {
        "credentials_file": str(_secrets_file(cfg)),
        "mariadb": {
            "version": versions["mariadb"],
            "host": cfg.host,
            "port": cfg.mariadb_port,
            "admin_user": creds.mariadb_admin.user,
            "server_id": MARIADB_SERVER_ID,
        },
        "postgres": {
            "version": versions["postgres"],
            "host": cfg.host,
            "port": cfg.postgres_port,
            "admin_user": creds.postgres_admin.user,
            "plugin": "pgoutput",
        },
    }
