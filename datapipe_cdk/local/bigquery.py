"""A local BigQuery API: the ``local-bigquery`` emulator from PyPI, in its own venv, on loopback.

Why local-bigquery: it reports bad rows from ``insertAll`` the way BigQuery does, de-duplicates
``insertId`` and keeps views and dataset access entries (see shared/reference/bigquery-emulators.md);
bqemulator silently accepts bad rows, which would hide exactly the failures a sink test must catch.

local-bigquery 0.4.0 needs Python >= 3.13 (its code uses PEP 695 generics and PEP 701 f-strings,
so ``--ignore-requires-python`` on 3.11 fails with SyntaxError). The machine image ships a pyenv
CPython 3.13; ``DATAPIPE_PYTHON313`` overrides where to find one.

It is started through :mod:`datapipe_cdk.local.bigquery_fidelity`, which gives its ``insertAll`` the one
BigQuery behaviour the pipeline needs and it lacks: a TIMESTAMP sent as seconds since the epoch (KCBQ's
``_kafka.insertTime``) is stored, not dropped to NULL.

It declares ``duckdb>=2.0.0``, but DuckDB 2.0.0 tries to download its ``icu`` extension at the
first request (no network here), so the venv pins DuckDB 1.5.5 and installs the ``icu``,
``ducklake`` and ``spatial`` extensions from their PyPI packages; their files are copied where DuckDB looks
(``$HOME/.duckdb/extensions/v1.5.5/linux_amd64``) under a HOME that belongs to the emulator only.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from datapipe_cdk.local._process import (
    ServiceError,
    data_dir,
    ensure_port_free,
    is_running,
    read_pid,
    service_status,
    start_process,
    stop_process,
    wait_until,
)
from datapipe_cdk.local.config import StackConfig

if TYPE_CHECKING:
    from google.cloud.bigquery import Client

PROJECT = "datapipe-local"
"""The project id the emulator serves by default (any other id is created on first use)."""

EMULATOR = "local-bigquery==0.4.0"
DUCKDB_VERSION = "1.5.5"
DUCKDB_EXTENSIONS = ("icu", "ducklake", "spatial")
# local-bigquery's dependencies and theirs, pinned to the set verified together (2026-11-24).
PINS = (
    f"duckdb=={DUCKDB_VERSION}",
    *(f"duckdb-extension-{name}=={DUCKDB_VERSION}" for name in DUCKDB_EXTENSIONS),
    "annotated-doc==0.0.7",
    "annotated-types==0.8.0",
    "anyio==4.16.0",
    "certifi==2026.10.19.post1",
    "cffi==2.1.1",
    "charset-normalizer==3.5.2",
    "click==8.5.1",
    "cryptography==50.0.2",
    "fastapi==0.165.0",
    "fastavro==1.13.1",
    "google-api-core==2.44.0",
    "google-auth==2.63.0",
    "google-cloud-bigquery-storage==2.43.0",
    "googleapis-common-protos==1.76.0",
    "grpcio==1.85.3",
    "grpcio-status==1.85.3",
    "h11==0.16.0",
    "idna==3.20",
    "mini-racer==0.14.1",
    "numpy==2.5.5",
    "opentelemetry-api==1.45.2",
    "prompt_toolkit==3.0.53",
    "proto-plus==1.29.0",
    "protobuf==7.36.2",
    "pyarrow==26.0.1",
    "pyasn1==0.6.5",
    "pyasn1_modules==0.4.2",
    "pycparser==3.12",
    "pydantic==2.14.4",
    "pydantic-settings==2.16.3",
    "pydantic_core==2.50.5",
    "Pygments==2.21.0",
    "python-dotenv==1.2.4",
    "requests==2.34.2",
    "sqlglot==30.30.0",
    "starlette==1.10.0",
    "typing-inspection==0.4.5",
    "typing_extensions==4.16.0",
    "urllib3==2.8.0",
    "uvicorn==0.54.0",
    "wcwidth==0.9.4",
)


def _say(message: str) -> None:
    print(f"[bigquery] {message}", flush=True)


def _area(cfg: StackConfig) -> Path:
    return cfg.cache_dir / "bigquery"


def _install_key() -> str:
    return hashlib.sha256("\n".join((EMULATOR, *PINS)).encode()).hexdigest()[:12]


def venv_dir(cfg: StackConfig) -> Path:
    return _area(cfg) / f"venv-{_install_key()}"


def emulator_home(cfg: StackConfig) -> Path:
    """HOME of the emulator process: DuckDB finds its extension files under it, offline."""
    return _area(cfg) / f"home-{DUCKDB_VERSION}"


def python313() -> Path:
    """A CPython >= 3.13 for the emulator's venv (``DATAPIPE_PYTHON313``, PATH, or pyenv)."""
    candidates = [os.environ.get("DATAPIPE_PYTHON313", "")]
    candidates += [shutil.which(name) or "" for name in ("python3.14", "python3.13")]
    pyenv_root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    candidates += sorted(glob.glob(f"{pyenv_root}/versions/3.1[3-9]*/bin/python3"), reverse=True)
    for candidate in filter(None, candidates):
        try:
            probe = subprocess.run(
                [candidate, "-c", "import sys; print(sys.version_info >= (3, 13))"],
                capture_output=True,
                text=True,
                check=False,
            )
        except OSError:
            continue
        if probe.stdout.strip() == "True":
            return Path(candidate)
    raise ServiceError(
        "local-bigquery needs Python >= 3.13: install one (e.g. pyenv install 3.13) or set DATAPIPE_PYTHON313=/path/to/python3.13"
    )


def install(cfg: StackConfig) -> Path:
    """Create the emulator venv and place the DuckDB extensions (skipped when already done).

    Returns the venv's ``local-bigquery`` executable.
    """
    venv = venv_dir(cfg)
    exe = venv / "bin" / "local-bigquery"
    stamp = venv / ".datapipe-installed"
    if not stamp.exists():
        began = time.monotonic()
        for old in _area(cfg).glob("venv-*"):
            shutil.rmtree(old)  # a half-finished attempt or another pin set
        interpreter = python313()
        _say(f"creating venv {venv} with {interpreter}")
        subprocess.run([str(interpreter), "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        _say(f"pip install {len(PINS)} pinned dependencies (duckdb {DUCKDB_VERSION})")
        subprocess.run([*pip, *PINS], check=True)
        # --no-deps: local-bigquery declares duckdb>=2.0.0, which cannot run offline (see module doc).
        _say(f"pip install --no-deps {EMULATOR}")
        subprocess.run([*pip, "--no-deps", EMULATOR], check=True)
        stamp.write_text(f"{EMULATOR}\n" + "\n".join(PINS) + "\n")
        _say(f"emulator venv ready in {time.monotonic() - began:.1f}s")
    else:
        _say(f"emulator venv present: {venv} (skip install)")
    _place_extensions(cfg)
    return exe


def _place_extensions(cfg: StackConfig) -> None:
    target = emulator_home(cfg) / ".duckdb" / "extensions" / f"v{DUCKDB_VERSION}" / "linux_amd64"
    target.mkdir(parents=True, exist_ok=True)
    site = next((venv_dir(cfg) / "lib").glob("python3.*/site-packages"))
    for name in DUCKDB_EXTENSIONS:
        source = site / f"duckdb_extension_{name}" / "extensions" / f"v{DUCKDB_VERSION}" / f"{name}.duckdb_extension"
        if not source.exists():
            raise ServiceError(f"DuckDB extension file missing: {source}; delete {venv_dir(cfg)} and re-run install")
        dest = target / source.name
        if not dest.exists() or dest.stat().st_size != source.stat().st_size:
            shutil.copyfile(source, dest)
    probe = "import duckdb; c = duckdb.connect(); " + "; ".join(f"c.execute('LOAD {name}')" for name in DUCKDB_EXTENSIONS)
    subprocess.run(
        [str(venv_dir(cfg) / "bin" / "python"), "-c", probe],
        check=True,
        env={**os.environ, "HOME": str(emulator_home(cfg))},
    )


def endpoint(cfg: StackConfig) -> str:
    """Base URL for google-cloud-bigquery's ``client_options={"api_endpoint": ...}``."""
    return f"http://{cfg.host}:{cfg.bigquery_port}"


def terraform_endpoint(cfg: StackConfig) -> str:
    """Value for the google provider's ``big_query_custom_endpoint`` (env ``GOOGLE_BIG_QUERY_CUSTOM_ENDPOINT``)."""
    return f"{endpoint(cfg)}/bigquery/v2/"


def client(cfg: StackConfig) -> Client:
    """A google-cloud-bigquery client on the emulator (anonymous: the emulator takes any caller)."""
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    options = ClientOptions(api_endpoint=endpoint(cfg))
    return bigquery.Client(project=PROJECT, credentials=AnonymousCredentials(), client_options=options)


def healthy(cfg: StackConfig) -> bool:
    """The REST API answers a real call: listing the default project's datasets."""
    url = f"{terraform_endpoint(cfg)}projects/{PROJECT}/datasets"
    with urllib.request.urlopen(url, timeout=3) as response:
        return int(response.status) == 200


def start(cfg: StackConfig) -> None:
    """Install if needed and start the emulator on ``cfg.bigquery_port`` (gRPC on ``bigquery_grpc_port``)."""
    if is_running("bigquery"):
        _say(f"emulator already running (pid {read_pid('bigquery')})")
        return
    ensure_port_free(cfg.host, cfg.bigquery_port, "BigQuery emulator REST", "DATAPIPE_BIGQUERY_PORT")
    ensure_port_free(cfg.host, cfg.bigquery_grpc_port, "BigQuery emulator gRPC", "DATAPIPE_BIGQUERY_GRPC_PORT")
    exe = install(cfg)
    argv = [
        str(exe.parent / "python"),
        str(Path(__file__).with_name("bigquery_fidelity.py")),  # insertAll takes numeric TIMESTAMPs, as BigQuery does
        "serve",
        "--host",
        cfg.host,
        "--port",
        str(cfg.bigquery_port),
        "--grpc-port",
        str(cfg.bigquery_grpc_port),
        "--project",
        PROJECT,
        "--data-dir",
        str(data_dir("bigquery")),
    ]
    _say(f"starting {EMULATOR} on {endpoint(cfg)} (gRPC {cfg.host}:{cfg.bigquery_grpc_port})")
    start_process("bigquery", argv, env={"HOME": str(emulator_home(cfg))})
    wait_until(lambda: healthy(cfg), 60, "BigQuery emulator REST API", log="bigquery")
    _say("emulator ready")


def verify(cfg: StackConfig) -> list[str]:
    """Exercise the running emulator with the official client: dataset, table, insertAll, query, view.

    Uses ``datapipe_verify`` (dropped first); returns one line per step that passed.
    """
    from google.cloud import bigquery

    bq = client(cfg)
    done = []
    dataset = f"{PROJECT}.datapipe_verify"
    bq.delete_dataset(dataset, delete_contents=True, not_found_ok=True)
    bq.create_dataset(bigquery.Dataset(dataset))
    done.append(f"created dataset {dataset}")
    table = bigquery.Table(
        f"{dataset}.orders",
        schema=[
            bigquery.SchemaField("id", "INT64", mode="REQUIRED"),
            bigquery.SchemaField("amount", "NUMERIC"),
            bigquery.SchemaField("status", "STRING"),
        ],
    )
    bq.create_table(table)
    done.append("created table orders")
    errors = bq.insert_rows_json(
        f"{dataset}.orders",
        [{"id": 1, "amount": "12.50", "status": "paid"}, {"id": 2, "amount": "3.00", "status": "open"}],
        row_ids=["1", "2"],
    )
    if errors:
        raise ServiceError(f"insertAll reported errors: {errors}")
    done.append("insertAll 2 rows")
    bad = bq.insert_rows_json(f"{dataset}.orders", [{"amount": "1.00"}])
    if not bad:
        raise ServiceError("insertAll accepted a row without its REQUIRED field")
    done.append("insertAll rejected a row missing a REQUIRED field")
    view = bigquery.Table(f"{dataset}.paid")
    view.view_query = f"SELECT id, amount FROM `{dataset}.orders` WHERE status = 'paid'"
    bq.create_table(view)
    rows = [dict(row) for row in bq.query_and_wait(f"SELECT id, amount FROM `{dataset}.paid`")]
    if [row["id"] for row in rows] != [1]:
        raise ServiceError(f"view query returned {rows}")
    done.append(f"query through view returned {rows}")
    bq.delete_dataset(dataset, delete_contents=True)
    return done


def stop(cfg: StackConfig) -> bool:
    del cfg
    return stop_process("bigquery")


def status(cfg: StackConfig) -> dict[str, str]:
    """``{"bigquery": state}``; healthy means the REST API listed the default project's datasets."""
    return service_status("bigquery", lambda: endpoint(cfg) if healthy(cfg) else None)


def describe(cfg: StackConfig) -> dict[str, object]:
    """Endpoints for ``stack.json`` (the emulator needs no credentials)."""
    return {
        "emulator": EMULATOR,
        "project": PROJECT,
        "api_endpoint": endpoint(cfg),
        "terraform_big_query_custom_endpoint": terraform_endpoint(cfg),
        "grpc_endpoint": f"{cfg.host}:{cfg.bigquery_grpc_port}",
        "data_dir": str(cfg.run_dir / "data" / "bigquery"),
    }


def main(argv: list[str]) -> int:
    """``python -m datapipe_cdk.local.bigquery install|verify`` (start/stop/status: ``python -m datapipe_cdk.local``)."""
    cfg = StackConfig()
    command = argv[0] if argv else ""
    if command == "install":
        install(cfg)
    elif command == "verify":
        for line in verify(cfg):
            _say(f"verify: {line}")
    else:
        print("usage: python -m datapipe_cdk.local.bigquery install|verify", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
