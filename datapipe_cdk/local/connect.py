"""Kafka Connect distributed worker (same Kafka version as the broker) with Debezium and KCBQ plugins.

The worker authenticates to Kafka with SASL/SCRAM as ``User:connect``, so ACLs apply to it as to any
client: at start the launcher grants that principal (as admin) exactly what the worker needs for its
internal topics and group. ACLs for the topics of the connectors themselves are the pipeline's own
(synthesized ``kafka_acl`` resources), not the launcher's.

Hardened as production workers should be:

* the REST API asks for a login (Kafka's ``BasicAuthSecurityRestExtension``; user ``datapipe``, password
  in ``<run>/secrets/connect-rest.json``): without one, anyone reaching it reads every connector's
  configuration and can change the pipeline;
* connector secrets come only from files in ``<run>/connect-secrets`` through the ``file`` config
  provider, restricted there (``allowed.paths``); no ``env`` or ``dir`` provider;
* connectors may not override their Kafka clients' settings (``connector.client.config.override.policy=None``).

Plugins (``datapipe local setup``): Debezium MySQL/PostgreSQL 3.6.1.Final, MariaDB 3.5.0.Final (newest on
Maven Central), and KCBQ ``com.wepay.kcbq:kcbq-connector:2.0.0-alpha`` (the only KCBQ Central serves) plus
``kcbq-api-compat`` (its two API types, whose jar Central lacks).
"""

from __future__ import annotations

import base64
import json
import secrets
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from datapipe_cdk.local import _process, kafka
from datapipe_cdk.local.config import StackConfig, worker_secrets_dir

NAME = "connect"
GROUP_ID = "connect-cluster"
INTERNAL_TOPICS = ("connect-configs", "connect-offsets", "connect-status")
HEAP_OPTS = ("-Xms256m", "-Xmx1g")
REST_USER = "datapipe"
REST_EXTENSION = "org.apache.kafka.connect.rest.basic.auth.extension.BasicAuthSecurityRestExtension"
REQUIRED_PLUGINS: tuple[str, ...] = (
    "io.debezium.connector.mysql.MySqlConnector",
    "io.debezium.connector.mariadb.MariaDbConnector",
    "io.debezium.connector.postgresql.PostgresConnector",
    "com.wepay.kafka.connect.bigquery.BigQuerySinkConnector",
)


def plugins_dir(cfg: StackConfig) -> Path:
    """``plugin.path``: one sub-directory per connector plugin, filled by ``make stack-deps``."""
    return cfg.stack_cache / "plugins"


def rest_password(cfg: StackConfig) -> str:
    """The REST API password of user ``datapipe``, generated once per run directory (mode 600)."""
    path = kafka.secrets_dir(cfg) / "connect-rest.json"
    if path.is_file():
        return str(json.loads(path.read_text())[REST_USER])
    password = secrets.token_urlsafe(18)
    _process.write_private(path, json.dumps({REST_USER: password}) + "\n")
    return password


def rest_headers(cfg: StackConfig) -> dict[str, str]:
    """The ``Authorization`` header every call to the local Connect REST API needs."""
    token = base64.b64encode(f"{REST_USER}:{rest_password(cfg)}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def _rest_login_files(cfg: StackConfig) -> Path:
    """The JAAS config naming the REST users file (``KafkaConnect`` login context); returns the JAAS file."""
    directory = kafka.secrets_dir(cfg)
    users = directory / "connect-rest-users.properties"
    _process.write_private(users, f"{REST_USER}={rest_password(cfg)}\n")  # never empty: empty means "anyone"
    jaas = directory / "connect-rest-jaas.conf"
    module = "org.apache.kafka.connect.rest.basic.auth.extension.PropertyFileLoginModule"
    _process.write_private(jaas, f'KafkaConnect {{\n  {module} required\n  file="{users}";\n}};\n')
    return jaas


def _worker_properties(cfg: StackConfig) -> str:
    jaas = kafka.scram_jaas(kafka.CONNECT_USER, kafka.passwords(cfg)[kafka.CONNECT_USER])
    security = {
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": kafka.SCRAM,
        "sasl.jaas.config": jaas,
    }
    props: dict[str, str] = {
        "bootstrap.servers": cfg.kafka_bootstrap,
        **security,
        # Connectors' own clients default to the worker principal; a connector may override them.
        **{f"{client}.{key}": value for client in ("producer", "consumer", "admin") for key, value in security.items()},
        "group.id": GROUP_ID,
        "key.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "key.converter.schemas.enable": "true",
        "value.converter.schemas.enable": "true",
        "config.storage.topic": INTERNAL_TOPICS[0],
        "offset.storage.topic": INTERNAL_TOPICS[1],
        "status.storage.topic": INTERNAL_TOPICS[2],
        **{f"{kind}.storage.replication.factor": str(min(3, cfg.kafka_brokers)) for kind in ("config", "offset", "status")},
        "offset.storage.partitions": "1",
        "status.storage.partitions": "1",
        "offset.flush.interval.ms": "5000",
        "listeners": f"http://{cfg.host}:{cfg.connect_port}",
        "rest.advertised.host.name": cfg.host,
        "rest.advertised.port": str(cfg.connect_port),
        "plugin.path": str(plugins_dir(cfg)),
        "plugin.discovery": "service_load",  # every plugin has a manifest (KCBQ via kcbq-api-compat)
        "connector.client.config.override.policy": "None",
        "rest.extension.classes": REST_EXTENSION,
        # Connector secrets are ``${file:<secrets dir>/<connector>.properties:<key>}`` references, resolved here.
        "config.providers": "file",
        "config.providers.file.class": "org.apache.kafka.common.config.provider.FileConfigProvider",
        "config.providers.file.param.allowed.paths": str(worker_secrets_dir()),
    }
    return "".join(f"{key}={value}\n" for key, value in props.items())


def grant_worker_acls(cfg: StackConfig) -> None:
    """Give ``User:connect`` its internal topics (read/write/create/describe), its group (read) and Describe /
    DescribeConfigs on the cluster."""
    principal = ["--allow-principal", f"User:{kafka.CONNECT_USER}"]
    topics = [arg for topic in INTERNAL_TOPICS for arg in ("--topic", topic)]
    ops = [arg for op in ("Read", "Write", "Create", "Describe", "DescribeConfigs") for arg in ("--operation", op)]
    kafka.grant(cfg, [*principal, *ops, *topics])
    kafka.grant(cfg, [*principal, "--operation", "Read", "--group", GROUP_ID])
    # cluster-wide, for every connector on the worker (Debezium's schema-history check): the worker's, not a stack's
    kafka.grant(cfg, [*principal, "--operation", "Describe", "--operation", "DescribeConfigs", "--cluster"])


def _get_json(cfg: StackConfig, path: str) -> object:
    request = urllib.request.Request(f"{cfg.connect_url}{path}", headers=rest_headers(cfg))
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


def plugin_classes(cfg: StackConfig) -> set[str]:
    """Connector classes the worker serves at ``GET /connector-plugins``."""
    listed = _get_json(cfg, "/connector-plugins")
    assert isinstance(listed, list)
    return {str(item["class"]) for item in listed}


def missing_plugins(cfg: StackConfig) -> list[str]:
    return [name for name in REQUIRED_PLUGINS if name not in plugin_classes(cfg)]


def start(cfg: StackConfig, extra_jvm_options: Sequence[str] = (), timeout: float = 180.0) -> int:
    """Start the worker and wait until its REST API lists every required plugin.

    ``extra_jvm_options`` come from other services (e.g. the TLS front's HTTPS proxy and truststore
    options, ``tls.connect_jvm_options``) and are appended to the JVM command line.
    """
    if _process.is_running(NAME):
        pid = _process.read_pid(NAME) or 0
        _process.say(f"{NAME}: already running (pid {pid})")
        return pid
    _process.ensure_port_free(cfg.host, cfg.connect_port, "kafka connect REST", "DATAPIPE_CONNECT_PORT")
    if not _process.is_running(kafka.NAME):
        raise _process.ServiceError("kafka connect needs the broker: run `python -m datapipe_cdk.local up --only kafka`")
    if not plugins_dir(cfg).is_dir():
        raise _process.ServiceError(f"connector plugins missing in {plugins_dir(cfg)}: run `make stack-deps`")
    _process.say(f"{NAME}: granting User:{kafka.CONNECT_USER} its internal topics and group {GROUP_ID}")
    grant_worker_acls(cfg)
    data = _process.data_dir(NAME)
    config = data / "worker.properties"
    worker_secrets_dir().mkdir(mode=0o700, parents=True, exist_ok=True)
    _process.write_private(config, _worker_properties(cfg))
    argv = [
        _process.jdk_tool("java"),
        *HEAP_OPTS,
        "-XX:+UseG1GC",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        f"-Djava.security.auth.login.config={_rest_login_files(cfg)}",
        *kafka.log4j_options(cfg, NAME),
        *extra_jvm_options,
        "-cp",
        kafka.classpath(cfg),
        "org.apache.kafka.connect.cli.ConnectDistributed",
        str(config),
    ]
    pid = _process.start_process(NAME, argv, cwd=data)
    _process.say(f"{NAME}: worker pid {pid} loading plugins from {plugins_dir(cfg)}")
    _process.wait_for_port(cfg.host, cfg.connect_port, timeout, "kafka connect REST", log=NAME)
    _process.wait_until(lambda: not missing_plugins(cfg), timeout, "kafka connect plugins", log=NAME)
    return pid


def stop(cfg: StackConfig, timeout: float = 30.0) -> bool:
    del cfg
    return _process.stop_process(NAME, timeout)


def status(cfg: StackConfig) -> dict[str, str]:
    """``{"connect": state}``; healthy means the REST API lists every required plugin."""

    def probe() -> str:
        missing = missing_plugins(cfg)
        if missing:
            raise _process.ServiceError(f"plugins missing: {', '.join(missing)}")
        return cfg.connect_url

    return _process.service_status(NAME, probe)


def describe(cfg: StackConfig) -> dict[str, object]:
    return {
        "url": cfg.connect_url,
        "rest_user": REST_USER,
        "rest_password_file": str(kafka.secrets_dir(cfg) / "connect-rest.json"),
        "secrets_dir": str(worker_secrets_dir()),
        "principal": f"User:{kafka.CONNECT_USER}",
        "group_id": GROUP_ID,
        "internal_topics": list(INTERNAL_TOPICS),
        "plugin_path": str(plugins_dir(cfg)),
        "plugins": list(REQUIRED_PLUGINS),
    }
