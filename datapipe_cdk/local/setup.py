"""``datapipe local setup``: everything the local stack and local deploys need, built or downloaded once.

Idempotent, every step cached under ``$DATAPIPE_CACHE`` (default ``~/.cache/datapipe-cdk``):

1. the offline Terraform toolchain: OpenTofu and the three providers built from their Go modules into a
   filesystem mirror, plus cdktf-cli from npm (``assets/toolchain.sh``; needs Go);
2. Kafka, Kafka Connect, Debezium and KCBQ jars from Maven Central (``assets/maven``; needs Maven and a
   JDK 17, installed with apt when missing and running as root), keyed by a hash of the Maven inputs;
3. MariaDB and PostgreSQL from Debian's packages;
4. the BigQuery emulator in its own Python 3.13 virtualenv.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

from datapipe_cdk.local import _process, bigquery, databases
from datapipe_cdk.local.config import StackConfig

ASSETS = Path(__file__).resolve().parent / "assets"
MAVEN = ASSETS / "maven"


def _say(message: str) -> None:
    print(f"[setup] {message}", flush=True)


def toolchain() -> None:
    """OpenTofu, the providers and cdktf-cli (``assets/toolchain.sh``)."""
    if shutil.which("go") is None:
        raise _process.ServiceError(
            "Go is not on PATH: install Go >= 1.26.6 (https://go.dev/dl/) and re-run datapipe local setup "
            "(OpenTofu and the providers are built from their Go modules)"
        )
    subprocess.run(["bash", str(ASSETS / "toolchain.sh")], check=True)


def maven_inputs_hash() -> str:
    """A hash of every file the Maven build reads (poms and the compat sources), in a stable order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in MAVEN.rglob("*") if p.is_file() and "target" not in p.parts):
        digest.update(str(path.relative_to(MAVEN)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def stack_jars(cfg: StackConfig) -> None:
    """Resolve the broker, Connect and connector jars from Maven Central into ``<cache>/stack``."""
    cache = cfg.stack_cache
    stamp = cache / f".deps-{maven_inputs_hash()}"
    if stamp.is_file():
        _say(f"stack jars: cached in {cache}")
        return
    _ensure_maven_and_jdk()
    for name in ("kafka", "connect"):
        if _process.is_running(name):
            raise _process.ServiceError(f"{name} runs from the jars to be replaced: run `datapipe local down` first")
    _say(f"stack jars: resolving Kafka, Connect, Debezium and KCBQ from Maven Central into {cache}")
    cache.mkdir(parents=True, exist_ok=True)
    for old in [*cache.glob("kafka-*"), cache / "plugins", cache / "build", *cache.glob(".deps-*")]:
        shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(missing_ok=True)
    log = cache / "maven.log"
    began = time.monotonic()
    with log.open("w") as out:
        done = subprocess.run(
            ["mvn", "-B", "-ntp", "-f", str(MAVEN / "pom.xml"), f"-Dmaven.repo.local={cache / 'm2'}",
             f"-Dstack.dir={cache}", "-Dmaven.test.skip=true", "package"],
            stdout=out, stderr=subprocess.STDOUT, check=False,
        )  # fmt: skip
    if done.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise _process.ServiceError(f"maven failed (full log: {log}):\n{tail}")
    stamp.touch()
    plugins = sorted(p.name for p in (cache / "plugins").iterdir())
    _say(f"stack jars: done in {time.monotonic() - began:.0f}s; plugins: {', '.join(plugins)}")


def _ensure_maven_and_jdk() -> None:
    if shutil.which("mvn") and shutil.which("java"):
        return
    if os.geteuid() != 0:
        raise _process.ServiceError("Maven and a JDK 17+ are required: sudo apt-get install maven openjdk-17-jdk-headless")
    _say("apt-get install maven openjdk-17-jdk-headless")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "maven", "openjdk-17-jdk-headless"], check=True, env=env)


def setup(cfg: StackConfig, *, with_toolchain: bool = True) -> None:
    """Every step, in order; each is skipped when its cache is complete."""
    began = time.monotonic()
    if with_toolchain:
        toolchain()
    stack_jars(cfg)
    databases.install()
    bigquery.install(cfg)
    _say(f"done in {time.monotonic() - began:.0f}s")
