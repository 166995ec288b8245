"""Kafka (KRaft, each node a combined broker+controller) with SASL/SCRAM and ACLs, run from Maven jars.

One node by default; ``DATAPIPE_KAFKA_BROKERS=3`` runs three (processes ``kafka``, ``kafka-2``, ``kafka-3``,
ports stepped by 100), with internal topics replicated 3 times and ``min.insync.replicas=2``, so losing a
broker can be tried for real.

Listeners (all on 127.0.0.1):
- ``SASL_PLAINTEXT`` (clients and inter-broker), mechanism SCRAM-SHA-512;
- ``CONTROLLER`` (KRaft quorum), SASL/PLAIN with a ``controller`` user known only to this process
  (SCRAM credentials live in the metadata log the controller itself serves, so the quorum uses PLAIN).

``StandardAuthorizer`` denies by default; ``User:admin`` and ``User:controller`` are super users.
SCRAM users are bootstrapped at format time; their passwords are generated once per run directory and
kept in ``<run>/secrets/kafka-users.json`` (mode 600), never printed.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import secrets
import socket
import subprocess
import uuid
from collections.abc import Sequence
from pathlib import Path

from datapipe_cdk.local import _process
from datapipe_cdk.local.config import BROKER_PORT_STEP, StackConfig

NAME = "kafka"
KAFKA_VERSION = "4.3.1"  # keep in step with datapipe_cdk/local/assets/maven/pom.xml
SCRAM = "SCRAM-SHA-512"
ADMIN = "admin"
CONNECT_USER = "connect"
# Users bootstrapped with SCRAM credentials: admin and the Connect worker. Users an app grants topics to
# get theirs when it is deployed (``ensure_users``).
USERS: tuple[str, ...] = (ADMIN, CONNECT_USER)
HEAP_OPTS = ("-Xms256m", "-Xmx512m")


def libs_dir(cfg: StackConfig) -> Path:
    """Broker and Connect classpath resolved by ``make stack-deps``."""
    return cfg.stack_cache / f"kafka-{KAFKA_VERSION}" / "libs"


def classpath(cfg: StackConfig) -> str:
    libs = libs_dir(cfg)
    if not (libs / f"kafka_2.13-{KAFKA_VERSION}.jar").is_file():
        raise _process.ServiceError(f"Kafka jars missing in {libs}: run `make stack-deps`")
    return f"{libs}/*"


def secrets_dir(cfg: StackConfig) -> Path:
    path = cfg.run_dir / "secrets"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def users_file(cfg: StackConfig) -> Path:
    return secrets_dir(cfg) / "kafka-users.json"


def passwords(cfg: StackConfig) -> dict[str, str]:
    """SCRAM passwords per user (plus the controller's PLAIN password), generated once per run dir."""
    path = users_file(cfg)
    stored: dict[str, str] = json.loads(path.read_text()) if path.is_file() else {}
    missing = [user for user in (*USERS, "controller") if user not in stored]
    if missing:
        stored |= {user: secrets.token_urlsafe(18) for user in missing}
        _process.write_private(path, json.dumps(stored, indent=2) + "\n")
    return stored


def _redact(cfg: StackConfig, text: str) -> str:
    """Error text with every generated password masked (tools may echo their arguments)."""
    path = users_file(cfg)
    known = json.loads(path.read_text()).values() if path.is_file() else ()
    for secret in known:
        text = text.replace(secret, "***")
    return text


def _jaas(module: str, user: str, password: str, extra: str = "") -> str:
    return f'{module} required username="{user}" password="{password}"{extra};'


def scram_jaas(user: str, password: str) -> str:
    return _jaas("org.apache.kafka.common.security.scram.ScramLoginModule", user, password)


def client_properties(cfg: StackConfig, user: str) -> Path:
    """A Java client config file (``--command-config``) authenticating as ``user``; mode 600."""
    path = secrets_dir(cfg) / f"{user}.properties"
    lines = [
        f"bootstrap.servers={cfg.kafka_bootstrap}",
        "security.protocol=SASL_PLAINTEXT",
        f"sasl.mechanism={SCRAM}",
        f"sasl.jaas.config={scram_jaas(user, passwords(cfg)[user])}",
    ]
    _process.write_private(path, "\n".join(lines) + "\n")
    return path


def node_name(node: int) -> str:
    """The process name of Kafka node ``node`` (1-based): ``kafka``, ``kafka-2``, ..."""
    return NAME if node == 1 else f"{NAME}-{node}"


def node_names(cfg: StackConfig) -> list[str]:
    return [node_name(node) for node in range(1, cfg.kafka_brokers + 1)]


def _server_properties(cfg: StackConfig, node: int, log_dir: Path) -> str:
    pw = passwords(cfg)
    plain = "org.apache.kafka.common.security.plain.PlainLoginModule"
    controller_jaas = _jaas(plain, "controller", pw["controller"], f' user_controller="{pw["controller"]}"')
    host = cfg.host
    broker, ctrl = cfg.kafka_nodes[node - 1]
    voters = ",".join(f"{i}@{host}:{c}" for i, (_, c) in enumerate(cfg.kafka_nodes, start=1))
    replicas = str(min(3, cfg.kafka_brokers))
    in_sync = "2" if cfg.kafka_brokers >= 3 else "1"
    props = {
        "process.roles": "broker,controller",
        "node.id": str(node),
        "controller.quorum.voters": voters,
        "listeners": f"SASL_PLAINTEXT://{host}:{broker},CONTROLLER://{host}:{ctrl}",
        "advertised.listeners": f"SASL_PLAINTEXT://{host}:{broker}",
        "listener.security.protocol.map": "SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "SASL_PLAINTEXT",
        "sasl.enabled.mechanisms": SCRAM,
        "sasl.mechanism.inter.broker.protocol": SCRAM,
        "sasl.mechanism.controller.protocol": "PLAIN",
        "listener.name.sasl_plaintext.sasl.enabled.mechanisms": SCRAM,
        "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config": scram_jaas(ADMIN, pw[ADMIN]),
        "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
        "listener.name.controller.plain.sasl.jaas.config": controller_jaas,
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": f"User:{ADMIN};User:controller",
        "allow.everyone.if.no.acl.found": "false",
        "auto.create.topics.enable": "false",
        "log.dirs": str(log_dir),
        "num.partitions": "1",
        "default.replication.factor": replicas,
        "min.insync.replicas": in_sync,
        "offsets.topic.replication.factor": replicas,
        "offsets.topic.num.partitions": "5",
        "transaction.state.log.replication.factor": replicas,
        "transaction.state.log.min.isr": in_sync,
        "share.coordinator.state.topic.replication.factor": replicas,
        "share.coordinator.state.topic.min.isr": in_sync,
        "group.initial.rebalance.delay.ms": "0",
    }
    return "".join(f"{key}={value}\n" for key, value in props.items())


LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.target = {target}
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = {level}
rootLogger.appenderRef.out.ref = out
logger.kafka.name = org.apache.kafka
logger.kafka.level = {level}
"""


def log4j_options(cfg: StackConfig, name: str, level: str = "INFO") -> list[str]:
    """JVM options pointing log4j2 at a console config (the process log is ``logs/<name>.log``)."""
    path = _process.data_dir(name) / "log4j2.properties"
    path.write_text(LOG4J2.format(level=level, target="SYSTEM_OUT"))
    return [f"-Dlog4j2.configurationFile={path}", f"-Dkafka.logs.dir={cfg.run_dir / 'logs'}"]


def run_tool(cfg: StackConfig, main_class: str, args: Sequence[str], timeout: float = 60.0) -> str:
    """Run a Kafka CLI class (e.g. ``org.apache.kafka.tools.AclCommand``) and return its stdout."""
    argv = [_process.jdk_tool("java"), "-Xmx256m", "-cp", classpath(cfg), main_class, *args]
    env = {**os.environ, "LOG4J_CONFIGURATION_FILE": str(_tool_log4j())}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    if done.returncode != 0:
        short = main_class.rsplit(".", 1)[-1]
        detail = _redact(cfg, done.stderr.strip()[-800:])
        raise _process.ServiceError(f"{short} failed ({done.returncode}): {detail}")
    return done.stdout


def _tool_log4j() -> Path:
    """Tools log warnings to stderr only, so their stdout stays parseable."""
    path = _process.data_dir("tools") / "log4j2.properties"
    path.write_text(LOG4J2.format(level="WARN", target="SYSTEM_ERR"))
    return path


def cluster_id() -> str:
    """The KRaft cluster id every node is formatted with: 16 random bytes, base64url without padding (as
    StorageTool makes), generated once per run directory. It may start with '-': pass it as
    ``--cluster-id=<id>``, never as a separate argument."""
    path = _process.data_dir(NAME) / "cluster.id"
    if not path.is_file():
        path.write_text(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=") + "\n")
    return path.read_text().strip()


def _format(cfg: StackConfig, config: Path, log_dir: Path) -> None:
    if (log_dir / "meta.properties").is_file():
        return
    pw = passwords(cfg)
    scram = [arg for user in USERS for arg in ("-S", f"{SCRAM}=[name={user},password={pw[user]}]")]
    run_tool(cfg, "kafka.tools.StorageTool", ["format", f"--cluster-id={cluster_id()}", "-c", str(config), *scram])


def admin_call(cfg: StackConfig) -> str:
    """A real SASL/SCRAM handshake as admin plus a DescribeCluster call; returns the cluster id."""
    args = ["--bootstrap-server", cfg.kafka_bootstrap, "--command-config", str(client_properties(cfg, ADMIN))]
    return run_tool(cfg, "org.apache.kafka.tools.ClusterTool", ["cluster-id", *args]).strip()


def start(cfg: StackConfig, timeout: float = 90.0) -> int:
    """Format (first run only) and start every node that is not running; return once an admin client is
    served. Returns node 1's PID."""
    jars = classpath(cfg)  # fails first, with the command to run, when stack-deps has not run
    formatted = _process.data_dir(NAME) / "brokers"
    if formatted.is_file() and formatted.read_text().strip() != str(cfg.kafka_brokers):
        raise _process.ServiceError(
            f"kafka: this run directory's cluster has {formatted.read_text().strip()} node(s), DATAPIPE_KAFKA_BROKERS asks "
            f"for {cfg.kafka_brokers}; the count is fixed when storage is formatted: `datapipe local reset --yes` starts over"
        )
    formatted.write_text(f"{cfg.kafka_brokers}\n")
    for node in range(1, cfg.kafka_brokers + 1):
        start_node(cfg, node, jars)
    for name, (client, _) in zip(node_names(cfg), cfg.kafka_nodes, strict=True):
        _process.wait_for_port(cfg.host, client, timeout, f"{name} broker", log=name)
    _process.wait_until(lambda: bool(admin_call(cfg)), timeout, "kafka admin handshake", log=NAME)
    return _process.read_pid(NAME) or 0


def start_node(cfg: StackConfig, node: int, jars: str | None = None) -> int:
    """Start Kafka node ``node`` (formatting its storage on first run) without waiting for it."""
    name = node_name(node)
    if _process.is_running(name):
        pid = _process.read_pid(name) or 0
        _process.say(f"{name}: already running (pid {pid})")
        return pid
    client, controller = cfg.kafka_nodes[node - 1]
    suffix = "" if node == 1 else f" + {(node - 1) * BROKER_PORT_STEP}"
    _process.ensure_port_free(cfg.host, client, f"{name} broker", f"DATAPIPE_KAFKA_PORT{suffix}")
    _process.ensure_port_free(cfg.host, controller, f"{name} controller", f"DATAPIPE_KAFKA_CONTROLLER_PORT{suffix}")
    jars = jars or classpath(cfg)
    data = _process.data_dir(name)
    log_dir = data / "kraft-logs"
    config = data / "server.properties"
    _process.write_private(config, _server_properties(cfg, node, log_dir))
    if not (log_dir / "meta.properties").is_file():
        _process.say(f"{name}: formatting KRaft storage with SCRAM users {', '.join(USERS)}")
    _format(cfg, config, log_dir)
    argv = [
        _process.jdk_tool("java"),
        *HEAP_OPTS,
        "-XX:+UseG1GC",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        *log4j_options(cfg, name),
        "-cp",
        jars,
        "kafka.Kafka",
        str(config),
    ]
    return _process.start_process(name, argv, cwd=data)


def stop(cfg: StackConfig, timeout: float = 30.0) -> bool:
    """Stop every node by PID (a controlled shutdown takes a few seconds); True if any was running."""
    stopped = [_process.stop_process(name, timeout) for name in reversed(_known_nodes(cfg))]
    return any(stopped)


def _known_nodes(cfg: StackConfig) -> list[str]:
    """The configured nodes, plus any other node a PID file names (the stack was started with more)."""
    extra = sorted(p.stem for p in (cfg.run_dir / "pids").glob(f"{NAME}-*.pid")) if (cfg.run_dir / "pids").is_dir() else []
    return list(dict.fromkeys([*node_names(cfg), *extra]))


def status(cfg: StackConfig) -> dict[str, str]:
    """``{"kafka": state, "kafka-2": state, ...}``; healthy means an admin client authenticated and
    described the cluster (node 1) or the node's process runs and its listener answers (the others)."""

    def probe() -> str:
        admin_call(cfg)
        return f"{cfg.kafka_bootstrap}, SASL_PLAINTEXT/{SCRAM}"

    states = _process.service_status(NAME, probe)
    for node in range(2, cfg.kafka_brokers + 1):
        states |= _process.service_status(node_name(node), functools.partial(_listening, cfg.host, cfg.kafka_nodes[node - 1][0]))
    return states


def _listening(host: str, port: int) -> str:
    with socket.create_connection((host, port), timeout=5):
        return f"{host}:{port}, SASL_PLAINTEXT/{SCRAM}"


def describe(cfg: StackConfig) -> dict[str, object]:
    """Endpoints and credential file paths (never the secrets) for ``stack.json``."""
    users = [user for user in passwords(cfg) if user != "controller"]
    return {
        "bootstrap_servers": cfg.kafka_bootstrap,
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": SCRAM,
        "users": users,
        "super_users": [f"User:{ADMIN}"],
        "passwords_file": str(users_file(cfg)),
        "client_properties": {user: str(client_properties(cfg, user)) for user in users},
    }


def ensure_users(cfg: StackConfig, names: Sequence[str]) -> None:
    """SCRAM credentials for each user (passwords generated once per run dir, in ``kafka-users.json``)."""
    wanted = [name for name in names if name not in (ADMIN, CONNECT_USER, "controller")]
    if not wanted:
        return
    from confluent_kafka.admin import AdminClient, ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion

    stored = passwords(cfg)
    missing = [name for name in wanted if name not in stored]
    if missing:
        stored |= {name: secrets.token_urlsafe(18) for name in missing}
        _process.write_private(users_file(cfg), json.dumps(stored, indent=2) + "\n")
    admin = AdminClient(
        {
            "bootstrap.servers": cfg.kafka_bootstrap,
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": SCRAM,
            "sasl.username": ADMIN,
            "sasl.password": stored[ADMIN],
            "log_level": 3,
        }
    )
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192)
    upserts = [UserScramCredentialUpsertion(name, info, stored[name].encode()) for name in wanted]
    for future in admin.alter_user_scram_credentials(upserts).values():  # type: ignore[arg-type]
        future.result(timeout=30)


def grant(cfg: StackConfig, args: Sequence[str]) -> None:
    """Add ACLs as admin with AclCommand, e.g. ``["--allow-principal", "User:x", "--operation", "Read", ...]``."""
    base = ["--bootstrap-server", cfg.kafka_bootstrap, "--command-config", str(client_properties(cfg, ADMIN))]
    run_tool(cfg, "org.apache.kafka.tools.AclCommand", [*base, "--add", "--force", *args])
