"""The route that lets the UNMODIFIED KCBQ connector, inside the Kafka Connect JVM, reach the emulator.

KCBQ has no endpoint setting: google-cloud-java always calls ``https://bigquery.googleapis.com``
and google-auth-library posts to the key's ``token_uri`` (``https://oauth2.googleapis.com/token``).
Both use ``java.net.HttpURLConnection``, which honours the JVM's ``https.proxyHost``. So the Connect
JVM alone gets:

* ``-Dhttps.proxyHost=127.0.0.1 -Dhttps.proxyPort=<tls_front_port>``: every HTTPS call goes through
  the project's front as an HTTP ``CONNECT`` tunnel;
* ``-Djavax.net.ssl.trustStore=<run>/gcp/truststore.p12``: the JDK's own CAs plus a CA generated
  for this run directory.

The front (this module, ``python -m datapipe_cdk.local.tls serve``) accepts ``CONNECT`` only for
Google's API host names, terminates TLS with a certificate for them signed by the project CA, and
forwards the plain HTTP to the emulator (``bigquery.googleapis.com``, ``www.googleapis.com``) or
to the local token endpoint (``oauth2.googleapis.com``, ``accounts.google.com``). Everything else
is refused, so nothing leaves the machine. No hosts file, no privileged port, no change to the
connector or its libraries; only the Connect JVM's options differ from production.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import ssl
import subprocess
import sys
import urllib.request
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from datapipe_cdk.local._process import (
    ServiceError,
    ensure_port_free,
    is_running,
    jdk_tool,
    port_open,
    read_pid,
    service_status,
    start_process,
    stop_process,
    wait_for_port,
    write_private,
)
from datapipe_cdk.local.config import StackConfig
from datapipe_cdk.local.tokens import gcp_dir, keyfile_path, serve_tokens

SERVICE = "gcp-front"
TRUSTSTORE_PASSWORD = "changeit"  # integrity password of a store holding public CA certificates only
BIGQUERY_HOSTS = ("bigquery.googleapis.com", "www.googleapis.com")
TOKEN_HOSTS = ("oauth2.googleapis.com", "accounts.google.com")

__all__ = [
    "connect_jvm_options",
    "describe",
    "ensure_certificates",
    "keyfile_path",
    "serve",
    "start",
    "status",
    "stop",
]


def _say(message: str) -> None:
    print(f"[gcp-front] {message}", flush=True)


# --- certificates -------------------------------------------------------------------------


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "datapipe-cdk local stack"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def ensure_certificates(cfg: StackConfig) -> dict[str, Path]:
    """Project CA and the front's server certificate in ``<run>/gcp`` (made once per run dir)."""
    folder = gcp_dir(cfg)
    paths = {name: folder / name for name in ("ca.pem", "ca.key", "server.pem", "server.key")}
    now = datetime.datetime.now(datetime.UTC)
    if all(path.exists() for path in paths.values()):
        current = x509.load_pem_x509_certificate(paths["server.pem"].read_bytes())
        if current.not_valid_after_utc > now + datetime.timedelta(days=1):
            return paths
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("datapipe-cdk local CA")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(host) for host in (*BIGQUERY_HOSTS, *TOKEN_HOSTS)]
    names.append(x509.IPAddress(ipaddress.ip_address(cfg.host)))
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(BIGQUERY_HOSTS[0]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    write_private(paths["ca.key"], _key_pem(ca_key))
    write_private(paths["server.key"], _key_pem(server_key))
    paths["ca.pem"].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths["server.pem"].write_bytes(server_cert.public_bytes(serialization.Encoding.PEM) + paths["ca.pem"].read_bytes())
    (folder / "truststore.p12").unlink(missing_ok=True)  # must be rebuilt for the new CA
    return paths


def _jdk_cacerts(keytool: str) -> Path:
    home = Path(os.path.realpath(keytool)).parent.parent
    return home / "lib" / "security" / "cacerts"


def truststore_path(cfg: StackConfig) -> Path:
    """PKCS12 truststore for the Connect JVM: the JDK's CA certificates plus the project CA."""
    paths = ensure_certificates(cfg)
    store = gcp_dir(cfg) / "truststore.p12"
    if store.exists():
        return store
    keytool = jdk_tool("keytool")
    partial = store.with_suffix(".tmp")
    partial.unlink(missing_ok=True)
    cacerts = _jdk_cacerts(keytool)
    if cacerts.exists():
        subprocess.run(
            [
                keytool,
                "-importkeystore",
                "-noprompt",
                "-srckeystore",
                str(cacerts),
                "-srcstorepass",
                "changeit",
                "-destkeystore",
                str(partial),
                "-deststoretype",
                "PKCS12",
                "-deststorepass",
                TRUSTSTORE_PASSWORD,
            ],
            check=True,
            capture_output=True,
        )
    subprocess.run(
        [
            keytool,
            "-importcert",
            "-noprompt",
            "-alias",
            "datapipe-local-ca",
            "-file",
            str(paths["ca.pem"]),
            "-keystore",
            str(partial),
            "-storetype",
            "PKCS12",
            "-storepass",
            TRUSTSTORE_PASSWORD,
        ],
        check=True,
        capture_output=True,
    )
    partial.rename(store)
    return store


def connect_jvm_options(cfg: StackConfig) -> list[str]:
    """JVM options for the Kafka Connect worker only (add them to its ``java`` command line).

    Builds the CA, certificates and truststore when they are missing.
    """
    return _jvm_options(cfg, truststore_path(cfg))


def _jvm_options(cfg: StackConfig, truststore: Path) -> list[str]:
    return [
        f"-Dhttps.proxyHost={cfg.host}",
        f"-Dhttps.proxyPort={cfg.tls_front_port}",
        "-Dhttp.nonProxyHosts=localhost|127.*|[::1]",
        f"-Djavax.net.ssl.trustStore={truststore}",
        "-Djavax.net.ssl.trustStoreType=PKCS12",
        f"-Djavax.net.ssl.trustStorePassword={TRUSTSTORE_PASSWORD}",
    ]


# --- the front ----------------------------------------------------------------------------


def _routes(cfg: StackConfig) -> dict[str, int]:
    routes = {host: cfg.bigquery_port for host in BIGQUERY_HOSTS}
    routes.update({host: cfg.token_port for host in TOKEN_HOSTS})
    return routes


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        if writer.can_write_eof():
            try:
                writer.write_eof()
            except (OSError, RuntimeError):
                writer.close()
        else:
            writer.close()


async def _tunnel(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    routes: dict[str, int],
    context: ssl.SSLContext,
    backend_host: str,
) -> None:
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
        method, target, _version = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
        host, _, port = target.rpartition(":")
        backend_port = routes.get(host.lower())
        if method != "CONNECT" or port != "443" or backend_port is None:
            print(f"refused {method} {target}", flush=True)
            writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            await writer.drain()
            writer.close()
            return
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        await writer.start_tls(context)
        back_reader, back_writer = await asyncio.open_connection(backend_host, backend_port)
        print(f"tunnel {target} -> {backend_host}:{backend_port}", flush=True)
        await asyncio.gather(_pipe(reader, back_writer), _pipe(back_reader, writer))
    except asyncio.IncompleteReadError as exc:
        if exc.partial:  # an empty read is a health probe that only opened the port
            print(f"tunnel closed: incomplete request {exc.partial[:80]!r}", flush=True)
        writer.close()
    except (TimeoutError, ConnectionError, ssl.SSLError, ValueError) as exc:
        print(f"tunnel closed: {exc!r}", flush=True)
        writer.close()


async def _serve_front(cfg: StackConfig, context: ssl.SSLContext) -> None:
    routes = _routes(cfg)
    server = await asyncio.start_server(lambda r, w: _tunnel(r, w, routes, context, cfg.host), cfg.host, cfg.tls_front_port)
    async with server:
        await server.serve_forever()


def serve(cfg: StackConfig) -> None:
    """Run the token endpoint and the CONNECT/TLS front in this process until killed."""
    paths = ensure_certificates(cfg)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(paths["server.pem"], paths["server.key"])
    serve_tokens(cfg, [keyfile_path(cfg)])
    print(
        f"token endpoint on http://{cfg.host}:{cfg.token_port}; front on {cfg.host}:{cfg.tls_front_port} "
        f"for {', '.join(sorted(_routes(cfg)))}",
        flush=True,
    )
    asyncio.run(_serve_front(cfg, context))


def start(cfg: StackConfig) -> None:
    """Generate CA, server certificate, truststore and key file, then start the front process."""
    if is_running(SERVICE):
        _say(f"already running (pid {read_pid(SERVICE)})")
        return
    ensure_port_free(cfg.host, cfg.token_port, "token endpoint", "DATAPIPE_TOKEN_PORT")
    ensure_port_free(cfg.host, cfg.tls_front_port, "TLS front", "DATAPIPE_TLS_FRONT_PORT")
    truststore_path(cfg)
    keyfile_path(cfg)
    start_process(SERVICE, [sys.executable, "-m", "datapipe_cdk.local.tls", "serve"], cwd=Path(__file__).resolve().parents[2])
    wait_for_port(cfg.host, cfg.tls_front_port, 20, "TLS front", log=SERVICE)
    wait_for_port(cfg.host, cfg.token_port, 20, "token endpoint", log=SERVICE)
    _say(f"ready: CONNECT proxy {cfg.host}:{cfg.tls_front_port}, token endpoint {cfg.host}:{cfg.token_port}")


def stop(cfg: StackConfig) -> bool:
    del cfg
    return stop_process(SERVICE)


def status(cfg: StackConfig) -> dict[str, str]:
    """``{"gcp-front": state}``; healthy means the token endpoint answers and the front accepts connections."""

    def probe() -> str | None:
        try:
            with urllib.request.urlopen(f"http://{cfg.host}:{cfg.token_port}/", timeout=3) as response:
                token_ok = int(response.status) == 200
        except OSError as exc:
            raise ServiceError(f"token endpoint: {exc}") from exc
        if token_ok and port_open(cfg.host, cfg.tls_front_port):
            return f"proxy {cfg.host}:{cfg.tls_front_port}"
        return None

    return service_status(SERVICE, probe)


def describe(cfg: StackConfig) -> dict[str, object]:
    """What KCBQ and the Connect JVM need, as paths (the key file itself is never copied anywhere)."""
    folder = cfg.run_dir / "gcp"
    return {
        "connect_jvm_options": _jvm_options(cfg, folder / "truststore.p12"),
        "keyfile": str(folder / "service-account.json"),
        "ca_certificate": str(folder / "ca.pem"),
        "truststore": str(folder / "truststore.p12"),
        "proxy": f"{cfg.host}:{cfg.tls_front_port}",
        "token_endpoint": f"http://{cfg.host}:{cfg.token_port}/token",
        "intercepted_hosts": sorted(_routes(cfg)),
    }


def main(argv: list[str]) -> int:
    """``python -m datapipe_cdk.local.tls serve|jvm-options`` (start/stop/status: ``python -m datapipe_cdk.local``)."""
    cfg = StackConfig()
    command = argv[0] if argv else "jvm-options"
    if command == "serve":
        serve(cfg)
    elif command == "jvm-options":
        print(" ".join(connect_jvm_options(cfg)))
    else:
        print("usage: python -m datapipe_cdk.local.tls serve|jvm-options", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
