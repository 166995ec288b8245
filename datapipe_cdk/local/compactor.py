"""The local stack's compactor: what BigQuery's scheduled queries do in production, for the emulator.

Every ``TICK`` seconds it reads the manifests ``datapipe deploy --local`` saved (``<run>/manifests``)
and compacts each sink whose last compaction is older than its ``compact_every``, with the same
statements production runs (:mod:`datapipe_cdk.compactor`). Each pass is logged to
``<run>/logs/compactor.log``; ``<run>/compactor.json`` records the last one (status reads it).
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from datapipe_cdk.compactor import compact, due
from datapipe_cdk.local import bigquery
from datapipe_cdk.local._process import (
    ServiceError,
    is_running,
    read_pid,
    say,
    service_status,
    start_process,
    stop_process,
    write_private,
)
from datapipe_cdk.local.config import StackConfig
from datapipe_cdk.manifest import Manifest

SERVICE = "compactor"
TICK = 30.0


def _state_file(cfg: StackConfig) -> Path:
    return cfg.run_dir / "compactor.json"


def manifests(cfg: StackConfig) -> list[Manifest]:
    """The deployed stacks' manifests (those with sinks)."""
    found = []
    for path in sorted((cfg.run_dir / "manifests").glob("*.json")):
        manifest = Manifest.from_dict(json.loads(path.read_text()), str(path))
        if manifest.sinks:
            found.append(manifest)
    return found


def one_pass(cfg: StackConfig, *, force: bool = False) -> list[dict[str, object]]:
    """Compact every deployed sink that is due (every one with ``force``); returns what was done."""
    client = bigquery.client(cfg)
    done: list[dict[str, object]] = []
    for manifest in manifests(cfg):
        for sink in manifest.sinks:
            if sink.compaction_log and (force or due(client, manifest, sink)):
                done += [{"stack": manifest.stack, **r.to_dict()} for r in compact(client, manifest, [sink.name])]
    return done


def serve() -> int:
    """The service loop: one pass every ``TICK`` seconds; a failed pass is logged and retried next tick."""
    cfg = StackConfig()
    while True:
        began = datetime.now(UTC)
        try:
            done = one_pass(cfg)
            state = {"last_pass": began.isoformat(), "ok": True, "compacted": done}
            for row in done:
                print(f"{began.isoformat()} compacted {row['stack']}/{row['table']}: merged {row['merged_rows']}, "
                      f"purged {row['purged_rows']} ({row['seconds']} s)", flush=True)  # fmt: skip
        except Exception as error:  # keep serving: the next tick retries, the log and status say why
            traceback.print_exc()
            state = {"last_pass": began.isoformat(), "ok": False, "error": f"{type(error).__name__}: {error}"}
        write_private(_state_file(cfg), json.dumps(state, indent=2) + "\n")
        time.sleep(TICK)


def start(cfg: StackConfig) -> None:
    if is_running(SERVICE):
        say(f"compactor: already running (pid {read_pid(SERVICE)})")
        return
    start_process(SERVICE, [sys.executable, "-m", "datapipe_cdk.local.compactor"], cwd=Path(__file__).resolve().parents[2])


def stop(cfg: StackConfig) -> bool:
    del cfg
    return stop_process(SERVICE)


def status(cfg: StackConfig) -> dict[str, str]:
    """Healthy while running and its last pass (if any) succeeded."""

    def probe() -> str | None:
        path = _state_file(cfg)
        if not path.is_file():
            return "no pass yet"
        state = json.loads(path.read_text())
        if not state.get("ok"):
            raise ServiceError(f"last pass {state.get('last_pass')} failed: {state.get('error')}")
        return f"last pass {state.get('last_pass')}"

    return service_status(SERVICE, probe)


def describe(cfg: StackConfig) -> dict[str, object]:
    return {"every_seconds": TICK, "state": str(_state_file(cfg))}


if __name__ == "__main__":
    sys.exit(serve())
