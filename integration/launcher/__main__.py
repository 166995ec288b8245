"""``python -m integration.launcher up|down|status [--only kafka,connect,...]``.

Starts the local real stack in dependency order (Kafka, databases, BigQuery emulator, TLS front,
Connect), stops it by PID in reverse order, and writes ``<run>/stack.json`` with endpoints and
credential file paths (never the secrets) for tests and notebooks.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType

from integration.launcher import _process
from integration.launcher._process import say
from integration.launcher.config import StackConfig

# Start order; ``down`` walks it backwards. Connect comes last: it takes JVM options from the others.
ORDER: tuple[str, ...] = ("kafka", "databases", "bigquery", "tls", "connect")


@dataclass(frozen=True)
class Service:
    """One launcher module seen through the hooks every module exposes."""

    name: str
    module: ModuleType

    def hook(self, name: str) -> Callable[..., object] | None:
        found = getattr(self.module, name, None)
        return found if callable(found) else None


def load(name: str) -> Service | None:
    """Import a service module lazily; None when it is absent (another helper may still write it)."""
    try:
        return Service(name, importlib.import_module(f"integration.launcher.{name}"))
    except ModuleNotFoundError as exc:
        if exc.name != f"integration.launcher.{name}":
            raise
        return None


def connect_jvm_options(cfg: StackConfig) -> list[str]:
    """JVM options other services ask of the Connect worker (tls: the HTTPS proxy and truststore)."""
    options: list[str] = []
    for name in ("bigquery", "tls"):
        service = load(name)
        hook = service.hook("connect_jvm_options") if service else None
        if hook is not None:
            given = hook(cfg)
            assert isinstance(given, (list, tuple)), f"{name}.connect_jvm_options must return a list"
            options.extend(str(option) for option in given)
    return options


def _start(service: Service, cfg: StackConfig) -> None:
    start = service.hook("start")
    if start is None:
        say(f"{service.name}: no start() yet, skipped")
        return
    began = time.monotonic()
    if service.name == "connect" and not _process.is_running("connect"):
        start(cfg, extra_jvm_options=connect_jvm_options(cfg))
    else:
        start(cfg)
    say(f"{service.name}: up ({time.monotonic() - began:.1f}s)")


def up(services: Sequence[Service], cfg: StackConfig) -> None:
    for service in services:
        _start(service, cfg)
    write_stack_json(cfg)


def down(services: Sequence[Service], cfg: StackConfig) -> None:
    for service in reversed(services):
        stop = service.hook("stop")
        if stop is None:
            continue
        stopped = stop(cfg)
        say(f"{service.name}: {'stopped' if stopped or stopped is None else 'was not running'}")


def status(services: Sequence[Service], cfg: StackConfig) -> bool:
    """Print each service's state; True when all of them are healthy."""
    all_healthy = True
    for service in services:
        hook = service.hook("status")
        if hook is None:
            continue
        states = hook(cfg)
        assert isinstance(states, dict)
        for name, state in states.items():
            print(f"{name:<10} {state}")
            all_healthy = all_healthy and str(state).startswith("healthy")
    return all_healthy


def write_stack_json(cfg: StackConfig) -> None:
    """Endpoints of every known service, plus each module's ``describe(cfg)`` when it has one."""
    described: dict[str, object] = {
        "host": cfg.host,
        "run_dir": str(cfg.run_dir),
        "ports": {key: value for key, value in vars(cfg).items() if key.endswith("_port")},
    }
    for name in ORDER:
        service = load(name)
        hook = service.hook("describe") if service else None
        if hook is not None:
            described[name] = hook(cfg)
    path = cfg.run_dir / "stack.json"
    path.write_text(json.dumps(described, indent=2) + "\n")
    say(f"wrote {path}")


def select(only: str | None) -> list[Service]:
    names = list(ORDER) if not only else [name.strip() for name in only.split(",") if name.strip()]
    unknown = [name for name in names if name not in ORDER]
    if unknown:
        raise SystemExit(f"unknown service(s) {', '.join(unknown)}; choose from {', '.join(ORDER)}")
    chosen = []
    for name in ORDER:
        if name not in names:
            continue
        service = load(name)
        if service is None:
            say(f"{name}: module not available yet, skipped")
            continue
        chosen.append(service)
    return chosen


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m integration.launcher", description=__doc__)
    parser.add_argument("command", choices=("up", "down", "status"))
    parser.add_argument("--only", help=f"comma-separated subset of: {','.join(ORDER)}")
    args = parser.parse_args(argv)
    cfg = StackConfig()
    services = select(args.only)
    try:
        if args.command == "up":
            up(services, cfg)
        elif args.command == "down":
            down(services, cfg)
        else:
            return 0 if status(services, cfg) else 1
    except _process.ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
