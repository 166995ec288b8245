"""MariaDB and PostgreSQL from Debian's packages, run as project-owned loopback servers set up for CDC.

Neither distro service is used: each server gets its own data directory, config and port from
``StackConfig``, listens on 127.0.0.1 only, and is stopped by its PID. MariaDB writes a ROW/FULL
binlog; PostgreSQL runs with ``wal_level=logical``. Both get the example ``payments`` schema from
``datapipe_cdk/local/assets/sql/`` and a Debezium login with the grants Debezium documents. Passwords are made
once per run directory and kept in ``<run>/secrets/databases.json`` (mode 600), never in the repo.

PostgreSQL refuses to run as root, so as root it runs as the ``postgres`` OS user, and its data
directory lives in that user's home (``/var/lib/postgresql/datapipe-cdk/<id>``) when the run
directory is not reachable by it; ``<run>/data/postgres`` then holds a pointer file to it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import sys
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

SQL_DIR = Path(__file__).resolve().parent / "assets" / "sql"
DEBIAN_PACKAGES = ("mariadb-server", "mariadb-client", "postgresql")
MARIADB_SERVER_ID = 184054  # Debezium's own server id must differ: use e.g. 5400 in the connector.
CDC_USER = "debezium"
ADMIN_USER = "datapipe_admin"
DATABASE = "payments"


@dataclass(frozen=True)
class Login:
    user: str
    password: str


@dataclass(frozen=True)
class DbCredentials:
    """Generated per run directory. ``admin`` writes test rows; ``cdc`` is what Debezium uses."""

    mariadb_admin: Login
    mariadb_cdc: Login
    postgres_admin: Login
    postgres_cdc: Login


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
        raise ServiceError("mariadbd not found; run: python -m datapipe_cdk.local.databases install")
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
        raise ServiceError("postgres not found; run: python -m datapipe_cdk.local.databases install")
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
        return DbCredentials(**{key: Login(**value) for key, value in raw.items()})
    creds = DbCredentials(
        mariadb_admin=Login(ADMIN_USER, secrets.token_urlsafe(18)),
        mariadb_cdc=Login(CDC_USER, secrets.token_urlsafe(18)),
        postgres_admin=Login("postgres", secrets.token_urlsafe(18)),
        postgres_cdc=Login(CDC_USER, secrets.token_urlsafe(18)),
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
        raise ServiceError("mariadbd not found; run: python -m datapipe_cdk.local.databases install")
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
    """Create the admin and CDC logins (over the socket, as the OS user) and the payments schema."""
    creds = credentials(cfg)
    admin, cdc = creds.mariadb_admin, creds.mariadb_cdc
    statements = [
        f"CREATE USER IF NOT EXISTS '{admin.user}'@'{cfg.host}' IDENTIFIED BY '{admin.password}'",
        f"ALTER USER '{admin.user}'@'{cfg.host}' IDENTIFIED BY '{admin.password}'",
        f"GRANT ALL PRIVILEGES ON *.* TO '{admin.user}'@'{cfg.host}' WITH GRANT OPTION",
        f"CREATE USER IF NOT EXISTS '{cdc.user}'@'{cfg.host}' IDENTIFIED BY '{cdc.password}'",
        f"ALTER USER '{cdc.user}'@'{cfg.host}' IDENTIFIED BY '{cdc.password}'",
        # Debezium's documented grants (REPLICATION CLIENT is BINLOG MONITOR on MariaDB >= 10.5).
        f"GRANT SELECT, RELOAD, SHOW DATABASES, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '{cdc.user}'@'{cfg.host}'",
        "FLUSH PRIVILEGES",
    ]
    sql = ";\n".join(statements) + ";\n" + (SQL_DIR / "mariadb" / "payments.sql").read_text()

    def run_bootstrap() -> bool:
        subprocess.run(
            ["mariadb", f"--socket={paths['socket']}", f"--user={os_user}", "--batch"],
            input=sql.encode(),
            check=True,
            capture_output=True,
        )
        return True

    wait_until(run_bootstrap, 30, "mariadb bootstrap SQL (users, payments schema)", log="mariadb")


def mariadb_connect(
    cfg: StackConfig, login: Login | None = None, database: str | None = DATABASE
) -> pymysql.connections.Connection:
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
    """The CDC user logs in over TCP, sees the payments tables and the binlog is ROW/FULL."""
    conn = mariadb_connect(cfg, credentials(cfg).mariadb_cdc)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT @@log_bin, @@binlog_format, @@binlog_row_image")
            log_bin, fmt, image = cur.fetchone()
            cur.execute("SHOW TABLES FROM payments")
            tables = {row[0] for row in cur.fetchall()}
    finally:
        conn.close()
    return bool(log_bin) and fmt == "ROW" and image == "FULL" and {"orders", "refunds", "accounts"} <= tables


def stop_mariadb(cfg: StackConfig) -> bool:
    del cfg
    return stop_process("mariadb", timeout=30)


# --- PostgreSQL ---------------------------------------------------------------------------


def _postgres_owner() -> pwd.struct_passwd:
    """The OS account the server runs as: ``postgres`` when we are root, else ourselves."""
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid())
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise ServiceError("OS user 'postgres' missing; run: python -m datapipe_cdk.local.databases install") from None


def _reachable_by(account: pwd.struct_passwd, path: Path) -> bool:
    if account.pw_uid == os.geteuid():
        return True
    probe = subprocess.run(
        ["setpriv", f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}", "--init-groups", "test", "-w", str(path)],
        check=False,
    )
    return probe.returncode == 0


def _postgres_base(cfg: StackConfig) -> Path:
    """Where the cluster lives: ``<run>/data/postgres`` or, if the server account cannot reach it,
    a directory in that account's home named after the run directory (recorded in ``location``)."""
    pointer_dir = data_dir("postgres")
    pointer = pointer_dir / "location"
    if pointer.exists():
        return Path(pointer.read_text().strip())
    owner = _postgres_owner()
    if owner.pw_uid != os.geteuid():
        shutil.chown(pointer_dir, owner.pw_uid, owner.pw_gid)
    if _reachable_by(owner, pointer_dir):
        base = pointer_dir
    else:
        digest = hashlib.sha256(str(cfg.run_dir.resolve()).encode()).hexdigest()[:12]
        base = Path(owner.pw_dir) / "datapipe-cdk" / digest
        base.mkdir(parents=True, exist_ok=True)
        for part in (base.parent, base):
            shutil.chown(part, owner.pw_uid, owner.pw_gid)
            part.chmod(0o700)
    pointer.write_text(f"{base}\n")
    return base


def _as_owner(argv: list[str]) -> list[str]:
    """Prefix ``argv`` so it runs as the server account (exec'ing in place: the PID stays the server's)."""
    owner = _postgres_owner()
    if owner.pw_uid == os.geteuid():
        return argv
    return ["setpriv", f"--reuid={owner.pw_uid}", f"--regid={owner.pw_gid}", "--init-groups", "--reset-env", *argv]


def _pg_hba(cfg: StackConfig) -> str:
    creds = credentials(cfg)
    return (
        "# datapipe-cdk: TCP on loopback only, password (SCRAM) for everyone.\n"
        "local   all          all                          scram-sha-256\n"
        f"host    all          all                          {cfg.host}/32  scram-sha-256\n"
        f"host    replication  {creds.postgres_cdc.user}    {cfg.host}/32  scram-sha-256\n"
    )


def _postgres_settings(cfg: StackConfig, base: Path) -> list[str]:
    settings = {
        "listen_addresses": cfg.host,
        "port": str(cfg.postgres_port),
        "unix_socket_directories": str(base),
        # Debezium (pgoutput): logical decoding, one slot/sender per connector plus headroom.
        "wal_level": "logical",
        "max_replication_slots": "10",
        "max_wal_senders": "10",
        "max_slot_wal_keep_size": "1GB",
        "shared_buffers": "64MB",
        "max_connections": "50",
        "password_encryption": "scram-sha-256",
        "log_destination": "stderr",
        "logging_collector": "off",
    }
    return [arg for key, value in settings.items() for arg in ("-c", f"{key}={value}")]


def start_postgres(cfg: StackConfig) -> None:
    """Initialise (first run only), start and set up the project's PostgreSQL on ``cfg.postgres_port``."""
    if is_running("postgres"):
        _say(f"postgres already running (pid {read_pid('postgres')})")
        return
    bin_dir = _postgres_bin_dir()
    if bin_dir is None:
        raise ServiceError("postgres not found; run: python -m datapipe_cdk.local.databases install")
    base = _postgres_base(cfg)
    pgdata = base / "pgdata"
    creds = credentials(cfg)
    owner = _postgres_owner()
    if not (pgdata / "PG_VERSION").exists():
        _say(f"initdb into {pgdata}")
        began = time.monotonic()
        pwfile = base / "initdb.pw"
        write_private(pwfile, creds.postgres_admin.password + "\n")
        if owner.pw_uid != os.geteuid():
            shutil.chown(pwfile, owner.pw_uid, owner.pw_gid)
        try:
            subprocess.run(
                _as_owner(
                    [
                        str(bin_dir / "initdb"),
                        "-D",
                        str(pgdata),
                        "-U",
                        creds.postgres_admin.user,
                        f"--pwfile={pwfile}",
                        "--auth=scram-sha-256",
                        "-E",
                        "UTF8",
                        "--locale=C.UTF-8",
                    ]
                ),
                check=True,
                capture_output=True,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        _say(f"initdb done in {time.monotonic() - began:.1f}s")
    hba = pgdata / "pg_hba.conf"
    hba.write_text(_pg_hba(cfg))
    if owner.pw_uid != os.geteuid():
        shutil.chown(hba, owner.pw_uid, owner.pw_gid)
    argv = _as_owner([str(bin_dir / "postgres"), "-D", str(pgdata), *_postgres_settings(cfg, base)])
    _say(f"starting PostgreSQL {postgres_version()} on {cfg.host}:{cfg.postgres_port}")
    start_process("postgres", argv)
    wait_until(lambda: _pg_admin_ping(cfg), 60, "postgres login as admin", log="postgres")
    _bootstrap_postgres(cfg)
    wait_until(lambda: postgres_healthy(cfg), 30, "postgres login as the CDC user", log="postgres")
    _say("postgres ready")


def postgres_connect(cfg: StackConfig, login: Login | None = None, dbname: str = DATABASE) -> psycopg.Connection[tuple[Any, ...]]:
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


def _pg_admin_ping(cfg: StackConfig) -> bool:
    with postgres_connect(cfg, dbname="postgres") as conn:
        return conn.execute("SELECT 1").fetchone() == (1,)


def _bootstrap_postgres(cfg: StackConfig) -> None:
    """Roles, the payments database and schema. The CDC role may log in, replicate, create
    publications in ``payments`` and, through ``payments_owner``, own the captured tables."""
    from psycopg import sql

    cdc = credentials(cfg).postgres_cdc
    with postgres_connect(cfg, dbname="postgres") as conn:
        roles = {row[0] for row in conn.execute("SELECT rolname FROM pg_roles")}
        if "payments_owner" not in roles:
            conn.execute("CREATE ROLE payments_owner NOLOGIN")
        verb = "ALTER" if cdc.user in roles else "CREATE"
        conn.execute(
            sql.SQL("{} ROLE {} WITH LOGIN REPLICATION PASSWORD {}").format(
                sql.SQL(verb), sql.Identifier(cdc.user), sql.Literal(cdc.password)
            )
        )
        conn.execute(sql.SQL("GRANT payments_owner TO {}").format(sql.Identifier(cdc.user)))
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
        conn.execute(
            sql.SQL("GRANT CONNECT, CREATE ON DATABASE {} TO {}").format(sql.Identifier(DATABASE), sql.Identifier(cdc.user))
        )
    with postgres_connect(cfg) as conn:
        conn.execute((SQL_DIR / "postgres" / "payments.sql").read_text())


def postgres_healthy(cfg: StackConfig) -> bool:
    """The CDC role logs in over TCP, owns the payments tables via its group, and WAL is logical."""
    with postgres_connect(cfg, credentials(cfg).postgres_cdc) as conn:
        wal_level = (conn.execute("SHOW wal_level").fetchone() or ("",))[0]
        tables = {
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'payments' AND pg_has_role(current_user, tableowner, 'USAGE')"
            )
        }
    return bool(wal_level == "logical" and {"orders", "refunds", "accounts"} <= tables)


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
    """Endpoints, users and the credentials file path (never the passwords) for ``stack.json``."""
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
            "database": DATABASE,
            "admin_user": creds.mariadb_admin.user,
            "cdc_user": creds.mariadb_cdc.user,
            "server_id": MARIADB_SERVER_ID,
        },
        "postgres": {
            "version": versions["postgres"],
            "host": cfg.host,
            "port": cfg.postgres_port,
            "database": DATABASE,
            "schema": "payments",
            "admin_user": creds.postgres_admin.user,
            "cdc_user": creds.postgres_cdc.user,
            "publication_autocreate_mode": "filtered",
            "plugin": "pgoutput",
        },
    }


def remove_data(cfg: StackConfig) -> None:
    """Delete both servers' data (they must be stopped); the next start re-initialises them."""
    if is_running("mariadb") or is_running("postgres"):
        raise ServiceError("databases still running; run: python -m datapipe_cdk.local down --only databases")
    pointer = cfg.run_dir / "data" / "postgres" / "location"
    if pointer.exists():
        external = Path(pointer.read_text().strip())
        if external.name != "postgres" and external.parent.name == "datapipe-cdk":
            shutil.rmtree(external, ignore_errors=True)
    for name in ("mariadb", "postgres"):
        shutil.rmtree(cfg.run_dir / "data" / name, ignore_errors=True)
    _say("removed MariaDB and PostgreSQL data")


def main(argv: list[str]) -> int:
    """``python -m datapipe_cdk.local.databases install|clean`` (start/stop/status: ``python -m datapipe_cdk.local``)."""
    command = argv[0] if argv else ""
    if command == "install":
        install()
    elif command == "clean":
        remove_data(StackConfig())
    else:
        print("usage: python -m datapipe_cdk.local.databases install|clean", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
