"""The main job (``make demo``): the local stack up, the example app deployed exactly as a user deploys
theirs (``datapipe local sql`` for its schema, ``datapipe deploy --local``), a few rows written in
MariaDB and PostgreSQL and printed as they land in the warehouse's latest-state views (with their
latency), then the analyst notebooks run. The stack is left running (``datapipe local down`` stops it).

    python -m integration.demo [--no-notebooks]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from datapipe_cdk.local import bigquery
from datapipe_cdk.local.config import StackConfig
from integration import flow
from integration.conftest import EXAMPLE_APP, EXAMPLE_SQL, STACKS

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_RUNNER = ROOT / "tools" / "run_notebooks.py"
OUT = ROOT / "cdktf.out" / "local"
LAND_TIMEOUT_S = 120.0
POLL_S = 0.25


def step(message: str) -> None:
    print(f"\n==> {message}", flush=True)


def datapipe(*args: str) -> None:
    """Run the ``datapipe`` CLI as a user does, showing the command; stop the demo if it fails."""
    print(f"    $ datapipe {' '.join(args)}", flush=True)
    done = subprocess.run([sys.executable, "-m", "datapipe_cdk.cli", *args], cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"demo: datapipe {args[0]} failed (exit {done.returncode})")


def stack_up() -> None:
    step("local stack: datapipe local up (sets up what is missing, then starts every service)")
    datapipe("local", "up")


def deploy_all() -> None:
    step("the example app's schema, created as admin the way any app's is")
    datapipe("local", "sql", "--engine", "mariadb", "-f", str(EXAMPLE_SQL["mariadb"].relative_to(ROOT)))
    datapipe(
        "local", "sql", "--engine", "postgres", "--database", "payments", "-f", str(EXAMPLE_SQL["postgres"].relative_to(ROOT))
    )
    step(f"deploy: datapipe deploy --local (synth into {OUT.relative_to(ROOT)}, provision, tofu apply, connectors RUNNING)")
    began = time.monotonic()
    datapipe(
        "deploy", "--local", "--app", str(EXAMPLE_APP.relative_to(ROOT)), "--out", str(OUT.relative_to(ROOT)), "--auto-approve"
    )
    print(f"    deployed {', '.join(STACKS)} in {time.monotonic() - began:.1f} s", flush=True)


def _fmt(row: flow.Row) -> str:
    return ", ".join(f"{key}={value}" for key, value in row.items() if key != "updated_at")


def _await(client: object, pipe: flow.Pipe, what: str, since: float, check: object) -> None:
    """Poll the pipe's latest-state view until ``check(rows)`` holds; print the latency."""
    deadline = since + LAND_TIMEOUT_S
    while time.monotonic() < deadline:
        rows = flow.view_orders(client, pipe.view)
        found = check(rows)  # type: ignore[operator]
        if found:
            print(f"    {pipe.view:<22} +{time.monotonic() - since:5.2f} s  {what}: {found}", flush=True)
            return
        time.sleep(POLL_S)
    raise SystemExit(f"demo: {what} did not reach {pipe.view} within {LAND_TIMEOUT_S:.0f}s: see datapipe local status")


def rows_flow(cfg: StackConfig) -> None:
    client = bigquery.client(cfg)
    tag = datetime.now(UTC).strftime("demo-%H%M%S")
    for pipe in flow.PIPES:
        step(f"{pipe.engine} payments.orders -> {pipe.topic} -> {pipe.changelog} -> view {pipe.view}")
        ids = []
        for n, (amount, currency) in enumerate([(Decimal("42.00"), "EUR"), (Decimal("7.50"), "USD"), (Decimal("19.99"), "GBP")]):
            began = time.monotonic()
            order_id = flow.insert_order(cfg, pipe.engine, 900 + n, amount, currency, tag)
            ids.append(order_id)
            print(f"    INSERT id={order_id} amount={amount} {currency} into {pipe.engine}", flush=True)
            _await(client, pipe, f"insert id={order_id}", began, lambda rows, i=order_id: _fmt(rows[i]) if i in rows else None)
        began = time.monotonic()
        flow.update_status(cfg, pipe.engine, ids[0], "paid")
        print(f"    UPDATE id={ids[0]} status=paid", flush=True)
        _await(
            client,
            pipe,
            f"update id={ids[0]}",
            began,
            lambda rows, i=ids[0]: _fmt(rows[i]) if rows.get(i, {}).get("status") == "paid" else None,
        )
        began = time.monotonic()
        flow.delete_order(cfg, pipe.engine, ids[1])
        print(f"    DELETE id={ids[1]}", flush=True)
        _await(client, pipe, f"delete id={ids[1]}", began, lambda rows, i=ids[1]: "gone from the view" if i not in rows else None)
        view = flow.view_orders(client, pipe.view)
        problems = flow.diff(flow.source_orders(cfg, pipe.engine), view)
        verdict = "equals the source row by row" if not problems else f"DIFFERS from the source: {problems[:5]}"
        print(f"    {pipe.view} ({len(view)} rows) {verdict}", flush=True)


def run_notebooks(artifacts: Path) -> int:
    """Run the analyst notebooks per stack through tools/run_notebooks.py; its worst exit code."""
    if not NOTEBOOK_RUNNER.is_file():
        step(f"notebooks: {NOTEBOOK_RUNNER.relative_to(ROOT)} is not in this checkout, skipped")
        return 0
    worst = 0
    for stack in STACKS:
        step(f"notebooks for stack {stack}: {NOTEBOOK_RUNNER.relative_to(ROOT)} --stack {stack}")
        command = [sys.executable, str(NOTEBOOK_RUNNER), "--stack", stack, "--artifacts", str(artifacts / stack)]
        result = subprocess.run(command, cwd=ROOT)
        print(f"    exit code {result.returncode}; executed notebooks and figures in {artifacts / stack}", flush=True)
        worst = max(worst, result.returncode)
    return worst


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-notebooks", action="store_true", help="skip tools/run_notebooks.py")
    args = parser.parse_args(argv)
    began = time.monotonic()
    stack_up()
    cfg = StackConfig()
    deploy_all()
    rows_flow(cfg)
    code = 0
    if not args.no_notebooks:
        code = run_notebooks(cfg.cache_dir / "artifacts" / datetime.now(UTC).strftime("demo-%Y%m%dT%H%M%SZ"))
    step(
        f"done in {time.monotonic() - began:.0f} s; the stack is still running (datapipe local status). "
        "Stop it with: datapipe local down"
    )
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
