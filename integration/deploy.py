"""Deploy the example pipelines onto the local stack: synth (local profile), then OpenTofu with the
real providers from the offline toolchain. Secrets go in as ``TF_VAR_*`` environment variables read
from the run directory; they never reach a file in the repo, the synthesized JSON or a log.

    python -m integration.deploy apply|plan|destroy [stack ...]
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from datapipe_cdk import _toolchain
from integration import flow
from datapipe_cdk.local import _process, databases, kafka, tokens
from datapipe_cdk.local.config import StackConfig

ROOT = Path(__file__).resolve().parent.parent
STACKS = ("payments", "ledger")
OUTDIR = ROOT / "cdktf.out" / "local"


class DeployError(RuntimeError):
    pass


def _pipeline_secrets(cfg: StackConfig) -> dict[str, str]:
    """Secrets the pipeline itself owns (the hashing salt), generated once per run dir."""
    path = cfg.run_dir / "secrets" / "pipeline.json"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        _process.write_private(path, json.dumps({"hash_salt": secrets.token_hex(16)}))
    return dict(json.loads(path.read_text()))


def terraform_variables(cfg: StackConfig) -> dict[str, str]:
    """``TF_VAR_*`` for every sensitive variable the example stacks declare."""
    users = kafka.passwords(cfg)
    db = databases.credentials(cfg)
    keyfile = tokens.keyfile_path(cfg).read_text()
    values = {
        "kafka_sasl_password": users["admin"],
        "connect_sasl_password": users["connect"],
        "payments_db_password": db.mariadb_cdc.password,
        "payments_db_hash_salt": _pipeline_secrets(cfg)["hash_salt"],
        "ledger_db_password": db.postgres_cdc.password,
        "payments_raw_gcp_keyfile": keyfile,
        "ledger_raw_gcp_keyfile": keyfile,
        "gcp_access_token": "local-emulator",
    }
    return {f"TF_VAR_{name}": value for name, value in values.items()}


def synth(cfg: StackConfig) -> Path:
    """Synthesize the example stacks for the local profile into ``cdktf.out/local``."""
    env = {"JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20", **os.environ,  # as the Makefile exports it
           "DATAPIPE_PROFILE": "local", "DATAPIPE_STATE_DIR": str(cfg.run_dir / "terraform")}
    subprocess.run([sys.executable, str(ROOT / "stacks" / "main.py"), "--outdir", str(OUTDIR)], check=True, env=env, cwd=ROOT)
    return OUTDIR


def synthesized(stack: str) -> dict[str, Any]:
    """The synthesized Terraform JSON of one example stack (run :func:`synth` first)."""
    path = OUTDIR / "stacks" / stack / "cdk.tf.json"
    if not path.is_file():
        raise DeployError(f"{path} missing: run python -m integration.deploy plan (it synthesizes first)")
    return dict(json.loads(path.read_text()))


def resources(stack: str, kind: str) -> list[dict[str, Any]]:
    """Every synthesized resource of one Terraform type (e.g. ``kafka_topic``) in a stack."""
    return list(synthesized(stack).get("resource", {}).get(kind, {}).values())


def connector_names(stacks: Sequence[str] = STACKS) -> list[str]:
    """Names of the Kafka Connect connectors the stacks declare."""
    return [str(item["name"]) for stack in stacks for item in resources(stack, "kafka-connect_connector")]


def tofu(cfg: StackConfig, stack: str, args: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``tofu`` in a synthesized stack's directory with the offline toolchain and the secrets."""
    _toolchain.check()
    env = {**_toolchain.toolchain_env(), **terraform_variables(cfg)}  # toolchain_env() copies os.environ
    workdir = OUTDIR / "stacks" / stack
    result = subprocess.run(["tofu", *args], cwd=workdir, env=env, text=True, capture_output=True)
    log = cfg.run_dir / "logs" / f"tofu-{stack}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as handle:
        handle.write(f"$ tofu {' '.join(args)}\n{result.stdout}\n{result.stderr}\n")
    if check and result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
        raise DeployError(f"tofu {args[0]} failed for stack {stack} (full output in {log}):\n{tail}")
    return result


def init(cfg: StackConfig, stack: str) -> None:
    # -reconfigure: the backend (local state in the run dir) comes from the synth; nothing to migrate.
    tofu(cfg, stack, ["init", "-reconfigure", "-input=false", "-no-color"])


def apply(cfg: StackConfig, stack: str) -> float:
    started = time.perf_counter()
    init(cfg, stack)
    tofu(cfg, stack, ["apply", "-auto-approve", "-input=false", "-no-color"])
    return time.perf_counter() - started


def plan_is_empty(cfg: StackConfig, stack: str) -> tuple[bool, str]:
    """``tofu plan -detailed-exitcode``: 0 means no changes, 2 means changes."""
    result = tofu(cfg, stack, ["plan", "-detailed-exitcode", "-input=false", "-no-color"], check=False)
    if result.returncode == 1:
        raise DeployError(f"tofu plan failed for stack {stack}:\n{result.stderr[-2000:]}")
    return result.returncode == 0, result.stdout


def reset_offsets(cfg: StackConfig, stack: str, timeout: float = 60.0) -> list[str]:
    """Stop the stack's connectors and delete their offsets before they are destroyed.

    Kafka Connect keeps a deleted connector's offsets (source positions in ``connect-offsets``, sink
    positions as the consumer group ``connect-<name>``). A connector re-created under the same name
    would resume from them: a Debezium source then finds its schema-history topic gone ("The db history
    topic is missing") and a sink skips the first records of the re-created topics. Source offsets go
    through Connect's REST API (KIP-875); a sink's group is deleted as the Kafka admin (the worker's
    principal holds no Delete on groups). Returns the connectors reset.
    """
    reset = []
    for item in resources(stack, "kafka-connect_connector"):
        name = str(item["name"])
        if _connect_call(cfg, "PUT", f"/connectors/{name}/stop") == 404:
            continue  # not deployed
        is_sink = str(item.get("config", {}).get("connector.class", "")).endswith("SinkConnector")
        deadline = time.monotonic() + timeout
        while not (_delete_group(cfg, f"connect-{name}") if is_sink
                   else _connect_call(cfg, "DELETE", f"/connectors/{name}/offsets") in (200, 202)):
            if time.monotonic() > deadline:
                raise DeployError(f"could not reset the offsets of connector {name}: see {cfg.run_dir / 'logs' / 'connect.log'}")
            time.sleep(1.0)  # stopping completes asynchronously
        reset.append(name)
    return reset


def connectors_running(cfg: StackConfig, names: Sequence[str]) -> bool:
    """True when each named connector and every one of its tasks (at least one) is RUNNING."""
    for name in names:
        try:
            with urllib.request.urlopen(f"{cfg.connect_url}/connectors/{name}/status", timeout=10) as response:
                body = json.loads(response.read())
        except (urllib.error.URLError, OSError):
            return False
        states = [body["connector"]["state"], *(task["state"] for task in body["tasks"])]
        if not body["tasks"] or any(state != "RUNNING" for state in states):
            return False
    return True


def wait_running(cfg: StackConfig, stacks: Sequence[str] = STACKS, timeout: float = 120.0) -> float:
    """Wait until every connector of ``stacks`` runs with all tasks; seconds waited."""
    names = connector_names(stacks)
    started = time.monotonic()
    while not connectors_running(cfg, names):
        if time.monotonic() - started > timeout:
            raise DeployError(f"connectors {', '.join(names)} not all RUNNING after {timeout:.0f}s: "
                              f"see {cfg.connect_url}/connectors?expand=status and {cfg.run_dir / 'logs' / 'connect.log'}")
        time.sleep(2.0)
    return time.monotonic() - started


def _connect_call(cfg: StackConfig, method: str, path: str) -> int:
    """HTTP status of one Connect REST call."""
    request = urllib.request.Request(f"{cfg.connect_url}{path}", method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (urllib.error.URLError, OSError) as error:
        raise DeployError(f"Kafka Connect not reachable at {cfg.connect_url} ({error}): run make stack-up") from None


def _delete_group(cfg: StackConfig, group: str) -> bool:
    """Delete a consumer group as the Kafka admin; True when it is gone (or never existed)."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(flow.kafka_config(cfg, kafka.ADMIN))
    try:
        admin.delete_consumer_groups([group], request_timeout=15)[group].result(timeout=20)
    except KafkaException as error:
        return bool(error.args[0].code() == KafkaError.GROUP_ID_NOT_FOUND)
    return True


def destroy(cfg: StackConfig, stack: str) -> None:
    init(cfg, stack)
    reset_offsets(cfg, stack)
    tofu(cfg, stack, ["destroy", "-auto-approve", "-input=false", "-no-color"])


def main(argv: Sequence[str]) -> int:
    if not argv or argv[0] not in ("apply", "plan", "destroy"):
        print(__doc__, file=sys.stderr)
        return 2
    cfg = StackConfig()
    stacks = list(argv[1:]) or list(STACKS)
    synth(cfg)
    try:
        for stack in stacks if argv[0] != "destroy" else reversed(stacks):
            if argv[0] == "apply":
                print(f"==> {stack}: applied in {apply(cfg, stack):.1f} s", flush=True)
            elif argv[0] == "plan":
                init(cfg, stack)
                empty, text = plan_is_empty(cfg, stack)
                print(f"==> {stack}: {'no changes' if empty else 'changes pending'}")
                if not empty:
                    print(text)
            else:
                destroy(cfg, stack)
                print(f"==> {stack}: destroyed", flush=True)
        if argv[0] == "apply":
            print(f"==> connectors RUNNING with all tasks after {wait_running(cfg, stacks):.1f} s", flush=True)
    except DeployError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
