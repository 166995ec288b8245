"""Plan, deploy and destroy synthesized stacks with OpenTofu, on their own targets or on the local stack.

What ``datapipe plan | deploy | destroy`` runs for each stack, in order:

* **deploy**: ``tofu init``, ``tofu plan`` classified like ``datapipe plan`` (risky changes refused unless
  allowed, the rest shown and confirmed unless ``--auto-approve``), ``tofu apply`` of that saved plan
  (exactly what was reviewed); then every connector the stack declares must be RUNNING with all its
  tasks: one left STOPPED or PAUSED (a half-finished teardown, an operator's pause) is resumed, so run
  state always follows the code.
* **destroy**: connectors stopped and their offsets deleted first (Connect keeps a deleted connector's
  offsets; a source re-created under its name would resume from a position whose schema history is
  gone, a sink would skip records), then ``tofu destroy``, then (locally) the PostgreSQL slots and
  publications the sources used (an orphaned slot pins WAL forever).
* **deploy after destroy**: the sink gives every row the BigQuery ``insertId``
  ``<topic>-<partition>-<offset>``, and a re-created topic restarts at offset 0. BigQuery drops, as
  duplicates, rows whose ``insertId`` it saw within its de-duplication window (best effort, at least a
  minute; 60 s in the local emulator), so rows re-written right after a destroy would silently vanish.
  ``destroy`` records when it stopped the sinks (:data:`DESTROY_MARK`); ``deploy`` waits until
  :data:`REDEPLOY_QUIET` has passed since then before it creates them again, and says so.
* **plan**: ``tofu plan`` saved and read back as JSON, every change classified by consequence
  (:mod:`datapipe_cdk.plan`).

Broker hiccups on a busy machine (``kafka: broker not connected`` and the like) fail a Terraform run
half-way; such runs are retried, at most ``RETRIES`` times. With ``local=True`` the local stack
supplies the variables and secrets (:mod:`datapipe_cdk.local.provision`) and the state is encrypted.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import _toolchain
from .connect_api import ConnectClient, ConnectError
from .local import connect as local_connect
from .local import provision, services
from .local.config import StackConfig, local_state_dir
from .manifest import OUTPUT_NAME, Manifest
from .plan import PATHS_OUTPUT

RETRIES = 3
REDEPLOY_QUIET = {True: 61.0, False: 300.0}
"""Seconds between a destroy stopping a stack's sinks and a deploy re-creating them: local (the emulator
forgets an ``insertId`` after 60 s) and other targets (BigQuery keeps them "at least one minute"; five is
the longest window it has been documented with)."""
PLAN_FILE = "datapipe.plan"
DESTROY_MARK = "datapipe-destroyed.json"
"""``{"sinks_stopped_at": <epoch seconds>}``, next to the local state (local) or in the stack's directory
(elsewhere: a deploy from another checkout or CI job does not see it and cannot wait for it)."""
_SUMMARY = re.compile(r"\s*(Plan:|Apply complete|Destroy complete|No changes|Warning:|Error:)")
TRANSIENT = re.compile(
    r"broker not connected|run out of available brokers|connection refused|i/o timeout|context deadline exceeded"
    r"|connection reset by peer|unexpected EOF|rebalance|status code 409|Request Timeout|TLS handshake timeout",
    re.IGNORECASE,
)


class DeployError(RuntimeError):
    """A Terraform run or a connector failed; the message says which, where the log is and what to do."""


@dataclass
class StackDir:
    """One synthesized stack on disk: its directory, JSON and manifest."""

    name: str
    directory: Path
    synthesized: dict[str, Any]
    manifest: Manifest
    deployed_paths: dict[str, str] = field(default_factory=dict)
    """Address -> construct path of what is deployed (filled by ``Runner.plan``)."""

    @classmethod
    def read(cls, out: Path, name: str) -> StackDir:
        directory = out / "stacks" / name
        path = directory / "cdk.tf.json"
        if not path.is_file():
            raise DeployError(f"{path} missing: run `datapipe synth` first")
        synthesized = json.loads(path.read_text())
        value = synthesized.get("output", {}).get(OUTPUT_NAME, {}).get("value")
        if not isinstance(value, dict):
            raise DeployError(f"{path}: no {OUTPUT_NAME} output; is {name!r} a DataPipelineStack?")
        return cls(name, directory, synthesized, Manifest.from_dict(value, str(path)))

    @property
    def connectors(self) -> list[str]:
        return [str(c["name"]) for c in self.synthesized.get("resource", {}).get("kafka-connect_connector", {}).values()]

    def connector_config(self, name: str) -> dict[str, str]:
        for item in self.synthesized.get("resource", {}).get("kafka-connect_connector", {}).values():
            if item.get("name") == name:
                return dict(item.get("config", {}))
        return {}


@dataclass
class Runner:
    """Runs OpenTofu for stacks, with the environment (toolchain, variables, encryption) they need."""

    local: bool
    log: Callable[[str], None] = field(default=lambda line: print(line, file=sys.stderr, flush=True))
    color: bool = False
    retries: int = RETRIES

    def environment(self, stack: StackDir) -> dict[str, str]:
        env = _toolchain.toolchain_env()
        if self.local:
            cfg = StackConfig()
            env.update(provision.terraform_variables(cfg, stack.manifest, env))
            env.update(provision.state_encryption(cfg))
        return env

    def tofu(self, stack: StackDir, args: Sequence[str], env: Mapping[str, str], *, check: bool = True, capture: bool = False,
             interactive: bool = False, retry: bool = True) -> subprocess.CompletedProcess[str]:  # fmt: skip
        """Run ``tofu <args>`` in the stack's directory; transient broker errors are retried.

        The full output goes to ``<stack dir>/tofu.log``; the terminal gets the summary lines (or everything,
        when ``interactive``: OpenTofu asks for approval on the terminal).
        """
        argv = ["tofu", *args, *([] if self.color else ["-no-color"])] if args[0] != "show" else ["tofu", *args]
        self.log(f"$ (cd {stack.directory} && {' '.join(argv)})")
        attempt = 0
        while True:
            attempt += 1
            if interactive:
                code = subprocess.run(argv, cwd=stack.directory, env=dict(env), check=False).returncode
                done = subprocess.CompletedProcess(argv, code, "", "")
            else:
                try:
                    done = subprocess.run(argv, cwd=stack.directory, env=dict(env), text=True, capture_output=True, check=False)
                except FileNotFoundError:
                    raise DeployError("tofu not found: run `datapipe local setup` (or `make toolchain`)") from None
                with (stack.directory / "tofu.log").open("a") as log:
                    # plan and state JSON carry every variable's value, sensitive ones included: never logged
                    shown = f"({len(done.stdout)} characters of JSON, not logged)" if args[0] == "show" else done.stdout
                    log.write(f"$ {' '.join(argv)}\n{shown}\n{done.stderr}\n")
                if not capture:
                    for line in done.stdout.splitlines():
                        if _SUMMARY.match(line):
                            self.log(f"  {line.strip()}")
            failed = done.returncode not in ((0, 2) if "-detailed-exitcode" in args else (0,))
            if failed and retry and attempt <= self.retries and TRANSIENT.search(done.stderr + done.stdout):
                self.log(f"  transient error (attempt {attempt}), retrying: {_first_error(done.stderr)}")
                time.sleep(3.0 * attempt)
                continue
            if failed and check:
                raise DeployError(f"tofu {args[0]} failed for stack {stack.name}:\n{_tail(done.stderr or done.stdout)}")
            return done

    def init(self, stack: StackDir, env: Mapping[str, str]) -> None:
        self.tofu(stack, ["init", "-input=false", "-reconfigure"], env, capture=True)

    # --- deploy -------------------------------------------------------------------------------

    def deploy(self, stack: StackDir, *, auto_approve: bool, saved_plan: bool = False) -> None:
        """Apply the stack: the plan ``plan(stack, keep=True)`` saved when ``saved_plan`` (exactly what was
        reviewed, no second approval), else a fresh one (OpenTofu asks unless ``auto_approve``)."""
        env = self.environment(stack)
        if self.local:
            self._prepare_local(stack)
        self.init(stack, env)
        self._wait_after_destroy(stack)
        if saved_plan:
            try:
                done = self.tofu(stack, ["apply", "-input=false", PLAN_FILE], env, check=False, retry=False)
            finally:
                (stack.directory / PLAN_FILE).unlink(missing_ok=True)
            if done.returncode != 0 and TRANSIENT.search(done.stderr + done.stdout):
                # a saved plan is stale once partly applied: the rest of the same configuration, planned again
                self.log(f"  transient error, applying the same configuration again: {_first_error(done.stderr)}")
                self.tofu(stack, ["apply", "-input=false", "-auto-approve"], env)
            elif done.returncode != 0:
                raise DeployError(f"tofu apply failed for stack {stack.name}:\n{_tail(done.stderr or done.stdout)}")
        else:
            approve = ["-auto-approve"] if auto_approve else []
            self.tofu(stack, ["apply", "-input=false", *approve], env, interactive=not auto_approve)
        self.reconcile(stack)
        if self.local:
            self._save_deployed_manifest(stack, env)

    def reconcile(self, stack: StackDir, timeout: float = 180.0) -> None:
        """Every declared connector runs: resume what is STOPPED or PAUSED, restart failed tasks, then wait."""
        client = self.connect_client(stack)
        for name in stack.connectors:
            state = client.status(name)
            if state.state in ("STOPPED", "PAUSED"):
                self.log(f"  connector {name} was {state.state}: resuming it (run state follows the code)")
                client.resume(name)
            elif state.state == "FAILED" or "FAILED" in state.tasks:
                self.log(f"  connector {name} has failed tasks: restarting them")
                client.restart(name)
        try:
            waited = client.wait_running(stack.connectors, timeout=timeout) if stack.connectors else 0.0
        except ConnectError as error:
            raise DeployError(f"stack {stack.name}: {error}") from None
        if stack.connectors:
            self.log(f"  {stack.name}: connectors {', '.join(stack.connectors)} RUNNING after {waited:.1f} s")

    def connect_client(self, stack: StackDir) -> ConnectClient:
        connect = stack.manifest.connect
        password = None
        if self.local:
            password = local_connect.rest_password(StackConfig())
        return ConnectClient(connect.url, connect.basic_auth_username, password)

    def _prepare_local(self, stack: StackDir) -> None:
        cfg = StackConfig()
        provision.prepare(cfg, stack.manifest, stack.synthesized)
        for source in stack.manifest.sources:
            publication = stack.connector_config(source.connector).get("publication.name")
            provision.prepare_captured_tables(cfg, source, publication)

    def _save_deployed_manifest(self, stack: StackDir, env: Mapping[str, str]) -> None:
        """The deployed manifest (outputs resolved), for notebooks and tools: ``<run>/manifests/<stack>.json``.
        The state itself is encrypted; its outputs are not secret."""
        done = self.tofu(stack, ["output", "-json", OUTPUT_NAME], env, capture=True)
        target = StackConfig().run_dir / "manifests" / f"{stack.name}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(done.stdout)

    def deployed_manifest(self, stack: StackDir) -> Manifest:
        """The manifest of what is deployed (read from the state's outputs, every value resolved)."""
        env = self.environment(stack)
        self.init(stack, env)
        done = self.tofu(stack, ["output", "-json", OUTPUT_NAME], env, capture=True, check=False)
        if done.returncode != 0:
            raise DeployError(f"stack {stack.name} is not deployed (no {OUTPUT_NAME} output): run datapipe deploy first")
        return Manifest.from_dict(json.loads(done.stdout), f"stack {stack.name} (deployed)")

    # --- destroy ------------------------------------------------------------------------------

    def destroy(self, stack: StackDir, *, auto_approve: bool) -> None:
        env = self.environment(stack)
        self.init(stack, env)
        client = self.connect_client(stack)
        stopped = [name for name in stack.connectors if client.reset_offsets(name)]
        for name in stopped:
            self.log(f"  connector {name}: stopped, offsets deleted")
        if stack.manifest.sinks:
            self._destroy_mark(stack).write_text(json.dumps({"sinks_stopped_at": time.time(), "connectors": stopped}))
        self.tofu(
            stack, ["destroy", "-input=false", *(["-auto-approve"] if auto_approve else [])], env, interactive=not auto_approve
        )
        if self.local:
            self._clean_local(stack)

    def _destroy_mark(self, stack: StackDir) -> Path:
        directory = local_state_dir() if self.local else stack.directory
        directory.mkdir(parents=True, exist_ok=True)
        return directory / (f"{stack.name}.{DESTROY_MARK}" if self.local else DESTROY_MARK)

    def _wait_after_destroy(self, stack: StackDir) -> None:
        """Wait out :data:`REDEPLOY_QUIET` since ``destroy`` stopped this stack's sinks (see the module doc)."""
        mark = self._destroy_mark(stack)
        if not mark.is_file():
            return
        if stack.manifest.sinks:
            quiet = REDEPLOY_QUIET[self.local]
            try:
                stopped_at = float(json.loads(mark.read_text())["sinks_stopped_at"])
            except (ValueError, KeyError, TypeError):
                stopped_at = time.time()  # unreadable: assume just now, the safe side
            remaining = quiet - (time.time() - stopped_at)
            if remaining > 0:
                self.log(
                    f"  {stack.name}: destroyed {quiet - remaining:.0f} s ago; waiting {remaining:.0f} s before its sinks "
                    f"write again (a re-created topic restarts at offset 0, and BigQuery silently drops rows whose "
                    f"insertId <topic>-<partition>-<offset> it saw in the last {quiet:.0f} s)"
                )
                time.sleep(remaining)
        mark.unlink(missing_ok=True)

    def _clean_local(self, stack: StackDir) -> None:
        cfg = StackConfig()
        for source in stack.manifest.sources:
            config = stack.connector_config(source.connector)
            for item in provision.drop_replication(cfg, source, config.get("slot.name"), config.get("publication.name")):
                self.log(f"  {source.name}: dropped {item}")
        (cfg.run_dir / "manifests" / f"{stack.name}.json").unlink(missing_ok=True)

    def run_state_drift(self, stack: StackDir) -> list[str]:
        """Declared connectors that exist but do not run (STOPPED, PAUSED, FAILED): drift the provider cannot see."""
        found = []
        try:
            client = self.connect_client(stack)
            for name in stack.connectors:
                state = client.status(name)
                if state.state != "MISSING" and not state.running:
                    found.append(f"connector {name} is {state.state} (tasks: {', '.join(state.tasks) or 'none'})")
        except ConnectError as error:
            self.log(f"  {stack.name}: connector run state not checked ({error})")
        return found

    # --- plan ---------------------------------------------------------------------------------

    def plan(self, stack: StackDir, *, keep: bool = False) -> tuple[bool, dict[str, Any]]:
        """(changes pending, the plan as JSON) — ``tofu plan -detailed-exitcode`` read back with ``tofu show -json``.

        ``deployed_paths`` is set to the deployed stack's construct paths (read from its state before planning).
        ``keep`` leaves the plan file for ``deploy(stack, saved_plan=True)``.
        """
        env = self.environment(stack)
        self.init(stack, env)
        recorded = self.tofu(stack, ["output", "-json", PATHS_OUTPUT], env, capture=True, check=False)
        try:
            stack.deployed_paths = dict(json.loads(recorded.stdout)) if recorded.returncode == 0 else {}
        except ValueError:
            stack.deployed_paths = {}
        done = self.tofu(stack, ["plan", "-input=false", "-detailed-exitcode", f"-out={PLAN_FILE}"], env, capture=True)
        (stack.directory / PLAN_FILE).chmod(0o600)  # it holds the variables' values unless plans are encrypted
        try:
            shown = self.tofu(stack, ["show", "-json", PLAN_FILE], env, capture=True)
        finally:
            if not keep:
                (stack.directory / PLAN_FILE).unlink(missing_ok=True)
        plan = json.loads(shown.stdout)
        plan.pop("variables", None)  # their values, secrets included: nothing downstream needs them
        return done.returncode == 2, plan


def _first_error(text: str) -> str:
    for line in text.splitlines():
        if "Error" in line or "error" in line:
            return line.strip()[:200]
    return text.strip()[:200]


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def local_stack_ready() -> str | None:
    """None when every service a deploy needs is healthy; else what is wrong and the command that fixes it.
    (The compactor is not needed to deploy: views stay exact without it until the window passes.)"""
    states = services.states([name for name in services.ORDER if name != "compactor"], StackConfig())
    unhealthy = {name: state for name, state in states.items() if not state.startswith("healthy")}
    if unhealthy:
        detail = ", ".join(f"{n}: {s}" for n, s in unhealthy.items())
        return f"the local stack is not up ({detail}): run `datapipe local up`"
    return None


def apply_env_target(local: bool) -> None:
    """Make the app target the local stack (``DATAPIPE_TARGET=local``) before it is loaded."""
    if local:
        os.environ["DATAPIPE_TARGET"] = "local"
