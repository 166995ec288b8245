"""A small client of Kafka Connect's REST API: connector state, stop / pause / resume, offsets.

Standard library only. The REST API asks for a login: the user is ``ConnectCluster.basic_auth_username``
and the password comes from ``$DATAPIPE_CONNECT_PASSWORD`` (or ``$TF_VAR_connect_basic_auth_password``,
what Terraform itself reads); the local stack supplies both itself.
"""

from __future__ import annotations

import base64
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PASSWORD_ENV = ("DATAPIPE_CONNECT_PASSWORD", "TF_VAR_connect_basic_auth_password")


class ConnectError(RuntimeError):
    """Kafka Connect could not be reached or refused a call; the message says which and why."""


@dataclass(frozen=True)
class ConnectorState:
    """A connector and its tasks, as ``GET /connectors/<name>/status`` reports them."""

    name: str
    state: str
    """RUNNING, PAUSED, STOPPED, FAILED, UNASSIGNED or MISSING (not deployed)."""
    tasks: tuple[str, ...]
    trace: str = ""

    @property
    def running(self) -> bool:
        return self.state == "RUNNING" and bool(self.tasks) and all(t == "RUNNING" for t in self.tasks)


class ConnectClient:
    """Calls one Connect cluster's REST API with basic auth."""

    def __init__(self, url: str, username: str | None = None, password: str | None = None, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if username:
            secret = password if password is not None else next((os.environ[k] for k in PASSWORD_ENV if k in os.environ), None)
            if secret is None:
                raise ConnectError(
                    f"Kafka Connect at {self.url} needs the password of REST user {username}: set DATAPIPE_CONNECT_PASSWORD"
                )
            token = base64.b64encode(f"{username}:{secret}".encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"

    def call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> tuple[int, Any]:
        """HTTP status and decoded JSON body (None when empty) of one call."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method, headers=self._headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
                return int(response.status), json.loads(raw) if raw else None
        except urllib.error.HTTPError as error:
            raw = error.read()
            try:
                detail = json.loads(raw) if raw else None
            except ValueError:
                detail = raw.decode(errors="replace")
            if error.code == 401:
                raise ConnectError(
                    f"Kafka Connect at {self.url} refused the login (401): check the REST user and password"
                ) from None
            return int(error.code), detail
        except (urllib.error.URLError, OSError) as error:
            raise ConnectError(f"Kafka Connect not reachable at {self.url} ({error})") from None

    def status(self, name: str) -> ConnectorState:
        code, body = self.call("GET", f"/connectors/{name}/status")
        if code == 404:
            return ConnectorState(name, "MISSING", ())
        if code != 200 or not isinstance(body, dict):
            raise ConnectError(f"GET /connectors/{name}/status answered {code}: {body}")
        tasks = tuple(str(t.get("state")) for t in body.get("tasks", []))
        traces = [str(t.get("trace", "")) for t in body.get("tasks", []) if t.get("trace")]
        connector = body.get("connector", {})
        trace = str(connector.get("trace") or (traces[0] if traces else ""))
        return ConnectorState(name, str(connector.get("state")), tasks, trace)

    def config(self, name: str) -> dict[str, str] | None:
        code, body = self.call("GET", f"/connectors/{name}/config")
        return dict(body) if code == 200 and isinstance(body, dict) else None

    def connectors(self) -> list[str]:
        code, body = self.call("GET", "/connectors")
        if code != 200 or not isinstance(body, list):
            raise ConnectError(f"GET /connectors answered {code}: {body}")
        return [str(n) for n in body]

    def _lifecycle(self, name: str, verb: str) -> bool:
        """``PUT /connectors/<name>/<verb>``; False when the connector does not exist."""
        code, body = self.call("PUT", f"/connectors/{name}/{verb}")
        if code == 404:
            return False
        if code not in (200, 202, 204):
            raise ConnectError(f"PUT /connectors/{name}/{verb} answered {code}: {body}")
        return True

    def stop(self, name: str) -> bool:
        return self._lifecycle(name, "stop")

    def pause(self, name: str) -> bool:
        return self._lifecycle(name, "pause")

    def resume(self, name: str) -> bool:
        return self._lifecycle(name, "resume")

    def restart(self, name: str) -> bool:
        """Restart the connector and its failed tasks."""
        code, body = self.call("POST", f"/connectors/{name}/restart?includeTasks=true&onlyFailed=true")
        if code == 404:
            return False
        if code not in (200, 202, 204):
            raise ConnectError(f"POST /connectors/{name}/restart answered {code}: {body}")
        return True

    def reset_offsets(self, name: str, timeout: float = 60.0) -> bool:
        """Stop the connector, then delete its offsets (KIP-875): a connector re-created under the same
        name then starts from scratch instead of resuming from a position that no longer exists.
        False when the connector does not exist."""
        if not self.stop(name):
            return False
        deadline = time.monotonic() + timeout
        while True:
            code, body = self.call("DELETE", f"/connectors/{name}/offsets")
            if code in (200, 202):
                return True
            if time.monotonic() > deadline:
                raise ConnectError(f"could not reset the offsets of connector {name} ({code}: {body})")
            time.sleep(1.0)  # stopping completes asynchronously

    def delete(self, name: str) -> bool:
        code, body = self.call("DELETE", f"/connectors/{name}")
        if code == 404:
            return False
        if code not in (200, 204):
            raise ConnectError(f"DELETE /connectors/{name} answered {code}: {body}")
        return True

    def wait_running(self, names: list[str], timeout: float = 120.0) -> float:
        """Wait until every connector and all its tasks are RUNNING; seconds waited."""
        started = time.monotonic()
        while True:
            states = [self.status(n) for n in names]
            if all(s.running for s in states):
                return time.monotonic() - started
            failed = [s for s in states if s.state == "FAILED" or "FAILED" in s.tasks]
            if failed or time.monotonic() - started > timeout:
                detail = "; ".join(
                    f"{s.name}: {s.state} tasks {list(s.tasks)} {s.trace.splitlines()[0] if s.trace else ''}" for s in states
                )
                raise ConnectError(f"connectors not all RUNNING after {time.monotonic() - started:.0f}s: {detail}")
            time.sleep(1.0)
