"""``python -m datapipe_cdk.local up|down|status [--only kafka,connect,...]``.

Starts the local real stack in dependency order (Kafka, databases, BigQuery emulator, TLS front,
Connect), stops it by PID in reverse order, and writes ``<run>/stack.json`` with endpoints and
credential file paths (never the secrets) for tests and notebooks.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Protocol

from datapipe_cdk.local import _process, bigquery, connect, databases, kafka, tls
from datapipe_cdk.local._process import say
from datapipe_cdk.local.config import StackConfig


class Service(Protocol):
    """What every service module provides."""

    def start(self, cfg: StackConfig, /) -> object: ...
    def stop(self, cfg: StackConfig, /) -> bool | None: ...
    def status(self, cfg: StackConfig, /) -> dict[str, str]: ...
    def describe(self, cfg: StackConfig, /) -> dict[str, object]: ...


# Start order; ``down`` walks it backwards. Connect comes last: it takes JVM options from tls.
SERVICES: dict[str, Service] = {
    "kafka": kafka,
    "databases": databases,
    "bigquery": bigquery,
    "tls": tls,
    "connect": connect,
}
ORDER: tuple[str, ...] = tuple(SERVICES)


def _start(name: str, cfg: StackConfig) -> None:
    began = time.monotonic()
    if name == "connect" and not _process.is_running("connect"):
        connect.start(cfg, extra_jvm_options=tls.connect_jvm_options(cfg))
    else:
        SERVICES[name].start(cfg)
    say(f"{name}: up ({time.monotonic() - began:.1f}s)")


def up(names: Sequence[str], cfg: StackConfig) -> None:
    for name in names:
        _start(name, cfg)
    write_stack_json(cfg)


def down(names: Sequence[str], cfg: StackConfig) -> None:
    for name in reversed(names):
        stopped = SERVICES[name].stop(cfg)
        say(f"{name}: {'stopped' if stopped or stopped is None else 'was not running'}")


def status(names: Sequence[str], cfg: StackConfig) -> bool:
    """Print each service's state; True when all of them are healthy."""
    all_healthy = True
    for name in names:
        for service, state in SERVICES[name].status(cfg).items():
            print(f"{service:<10} {state}")
            all_healthy = all_healthy and state.startswith("healthy")
    return all_healthy


def write_stack_json(cfg: StackConfig) -> None:
    """Host, run dir and ports, plus each service module's ``describe(cfg)``."""
    described: dict[str, object] = {
        "host": cfg.host,
        "run_dir": str(cfg.run_dir),
        "ports": {key: value for key, value in vars(cfg).items() if key.endswith("_port")},
    }
    for name, module in SERVICES.items():
        described[name] = module.describe(cfg)
    path = cfg.run_dir / "stack.json"
    path.write_text(json.dumps(described, indent=2) + "\n")
    say(f"wrote {path}")


def select(only: str | None) -> list[str]:
    """The services named in ``--only`` (all when None), in start order."""
    names = list(ORDER) if not only else [name.strip() for name in only.split(",") if name.strip()]
    unknown = [name for name in names if name not in ORDER]
    if unknown:
        raise SystemExit(f"unknown service(s) {', '.join(unknown)}; choose from {', '.join(ORDER)}")
    return [name for name in ORDER if name in names]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m datapipe_cdk.local", description=__doc__)
    parser.add_argument("command", choices=("up", "down", "status"))
    parser.add_argument("--only", help=f"comma-separated subset of: {','.join(ORDER)}")
    args = parser.parse_args(argv)
    cfg = StackConfig()
    names = select(args.only)
    try:
        if args.command == "up":
            up(names, cfg)
        elif args.command == "down":
            down(names, cfg)
        else:
            return 0 if status(names, cfg) else 1
    except _process.ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
