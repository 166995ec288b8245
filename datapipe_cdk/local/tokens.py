"""A test service-account key and a local OAuth 2.0 token endpoint that honours it.

The key file has the shape of a real Google service-account key (a fresh RSA-2048 key,
``client_email``, ``token_uri = https://oauth2.googleapis.com/token``), so the unmodified KCBQ
connector and google-auth-library load it as they would in production. The token endpoint answers
the JWT-bearer grant (RFC 7523) that those libraries send: it checks the assertion's RS256
signature against the key's public half, its issuer, audience and expiry, and issues a short-lived
access token. The access token is a JWT whose ``email`` claim names the service account, which
local-bigquery reads to know the caller. The key file lives in ``<run>/gcp/`` (mode 600); the
endpoint's own signing key exists only in its process memory.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from datapipe_cdk.local._process import write_private
from datapipe_cdk.local.config import StackConfig

TOKEN_URI = "https://oauth2.googleapis.com/token"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
SERVICE_ACCOUNT = "kcbq-sink"
TOKEN_LIFETIME_S = 3600


def gcp_dir(cfg: StackConfig) -> Path:
    """``<run>/gcp``: CA, server certificate, truststore, service-account key (private, mode 700)."""
    path = cfg.run_dir / "gcp"
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def keyfile_path(cfg: StackConfig, project: str = "datapipe-local") -> Path:
    """The service-account key JSON for KCBQ's ``keyfile`` (``keySource=FILE``), created on first use."""
    path = gcp_dir(cfg) / "service-account.json"
    if path.exists():
        return path
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    email = f"{SERVICE_ACCOUNT}@{project}.iam.gserviceaccount.com"
    document = {
        "type": "service_account",
        "project_id": project,
        "private_key_id": secrets.token_hex(20),
        "private_key": pem,
        "client_email": email,
        "client_id": str(secrets.randbelow(10**20) + 10**20),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": TOKEN_URI,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/" + urllib.parse.quote(email),
        "universe_domain": "googleapis.com",
    }
    write_private(path, json.dumps(document, indent=2))
    return path


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenAuthority:
    """Checks JWT-bearer assertions from the known service-account keys and mints access tokens."""

    def __init__(self, keyfiles: list[Path]) -> None:
        self._public_keys: dict[str, rsa.RSAPublicKey] = {}
        for keyfile in keyfiles:
            document = json.loads(keyfile.read_text())
            private = serialization.load_pem_private_key(document["private_key"].encode(), None)
            assert isinstance(private, rsa.RSAPrivateKey)
            self._public_keys[document["client_email"]] = private.public_key()
        self._signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.issued = 0

    def exchange(self, assertion: str, audience: str) -> dict[str, Any]:
        """Verify ``assertion`` (RS256, iss = a known client_email, aud = token URI, not expired)."""
        try:
            header_b64, claims_b64, signature_b64 = assertion.split(".")
            header = json.loads(_unb64url(header_b64))
            claims = json.loads(_unb64url(claims_b64))
        except ValueError as exc:
            raise PermissionError(f"malformed assertion: {exc}") from None
        issuer = claims.get("iss", "")
        public = self._public_keys.get(issuer)
        if header.get("alg") != "RS256" or public is None:
            raise PermissionError(f"unknown issuer or algorithm: {issuer!r} {header.get('alg')!r}")
        try:
            public.verify(
                _unb64url(signature_b64),
                f"{header_b64}.{claims_b64}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except InvalidSignature:
            raise PermissionError("assertion signature does not match the service-account key") from None
        now = time.time()
        if claims.get("aud") not in (audience, TOKEN_URI) or float(claims.get("exp", 0)) < now - 60:
            raise PermissionError("assertion audience or expiry is invalid")
        self.issued += 1
        return {
            "access_token": self._mint(issuer, str(claims.get("scope", "")), int(now)),
            "expires_in": TOKEN_LIFETIME_S,
            "token_type": "Bearer",
        }

    def _mint(self, email: str, scope: str, now: int) -> str:
        header = _b64url(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
        body = _b64url(
            json.dumps(
                {
                    "iss": "datapipe-local-token-endpoint",
                    "email": email,
                    "sub": email,
                    "scope": scope,
                    "iat": now,
                    "exp": now + TOKEN_LIFETIME_S,
                }
            ).encode()
        )
        signature = self._signing_key.sign(f"{header}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{header}.{body}.{_b64url(signature)}"


def _handler(authority: TokenAuthority) -> type[BaseHTTPRequestHandler]:
    class TokenHandler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            form = urllib.parse.parse_qs(self.rfile.read(length).decode())
            grant = form.get("grant_type", [""])[0]
            if grant != JWT_BEARER:
                self._reply(400, {"error": "unsupported_grant_type", "error_description": grant})
                return
            host = self.headers.get("Host", "oauth2.googleapis.com")
            try:
                body = authority.exchange(form.get("assertion", [""])[0], f"https://{host}{self.path}")
            except PermissionError as exc:
                self._reply(400, {"error": "invalid_grant", "error_description": str(exc)})
                return
            self._reply(200, body)

        def do_GET(self) -> None:
            self._reply(200, {"status": "ok", "tokens_issued": authority.issued})

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            # Log the request line and status only: never the form body (it carries the assertion).
            print(f"token-endpoint: {self.address_string()} {format % args}", flush=True)

    return TokenHandler


def serve_tokens(cfg: StackConfig, keyfiles: list[Path]) -> ThreadingHTTPServer:
    """Start the token endpoint on ``cfg.host:cfg.token_port`` in a daemon thread and return it."""
    server = ThreadingHTTPServer((cfg.host, cfg.token_port), _handler(TokenAuthority(keyfiles)))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="token-endpoint", daemon=True).start()
    return server
