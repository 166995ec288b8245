"""``datapipe``: synth, check and deploy pipeline stacks; run the local stack; review lineage, catalog and access.

Exit codes: 0 ok; 1 a policy, validation or tool failure; 64 a usage error. ``datapipe plan`` follows
``tofu plan -detailed-exitcode``: 0 no changes, 2 changes pending, 3 changes whose consequence
(data loss, re-snapshot, re-keying) was not allowed with ``--allow``, 1 an error.
With ``--json``, results and errors are JSON on stdout.

The app is a Python file exposing ``build(outdir) -> cdktf.App`` (default ``stacks/main.py``);
``--local`` (or ``DATAPIPE_TARGET=local``) points every stack of it at the local stack.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from .errors import printable

if TYPE_CHECKING:
    from ._cdk import App
    from .stack import DataPipelineStack

OK, FAILED, CHANGES, REFUSED, USAGE = 0, 1, 2, 3, 64
DEFAULT_APP = "stacks/main.py"
DEFAULT_OUT = "cdktf.out"


class UsageError(Exception):
    """Bad command line or missing input: exit code 64."""


class Failure(Exception):
    """Policy, validation or tool failure: exit code 1."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(USAGE, f"{self.prog}: error: {message}\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return USAGE
    as_json = bool(getattr(args, "json", False))
    try:
        if getattr(args, "local", False):
            os.environ["DATAPIPE_TARGET"] = "local"
        result: int = args.handler(args)
        return result
    except UsageError as error:
        return _report_error("usage", str(error), USAGE, as_json)
    except Failure as error:
        return _report_error("failure", str(error), FAILED, as_json)
    except BrokenPipeError:  # e.g. `datapipe catalog | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return OK
    except Exception as error:  # the library's own errors, named plainly (no traceback)
        from .app import AppError
        from .connect_api import ConnectError
        from .deploy import DeployError
        from .errors import DatapipeError
        from .local._process import ServiceError
        from .local.provision import ProvisionError
        from .manifest import ManifestError

        known = (DatapipeError, AppError, DeployError, ConnectError, ServiceError, ProvisionError, ManifestError)
        if isinstance(error, known):
            return _report_error(type(error).__name__, str(error), FAILED, as_json)
        raise


def _report_error(kind: str, message: str, code: int, as_json: bool) -> int:
    if as_json:
        print(json.dumps({"ok": False, "error": {"kind": kind, "message": message}}, indent=2))
    elif message:
        print(f"datapipe: {'error: ' if code == USAGE else ''}{printable(message)}", file=sys.stderr)
    return code


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="datapipe",
        description="Synth, check and deploy datapipe-cdk stacks; run the local stack; print lineage, catalog and access.",
        epilog="Exit codes: 0 ok, 1 failure, 64 usage error; plan: 0 no changes, 2 changes, 3 refused changes.",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser)

    def command(
        name: str,
        handler: Callable[[argparse.Namespace], int],
        summary: str,
        *,
        app: bool = True,
        out: bool = False,
        stack: bool = False,
        json_flag: bool = False,
        local: bool = False,
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=summary, description=summary)
        sub.set_defaults(handler=handler)
        if app:
            sub.add_argument(
                "--app",
                default=os.environ.get("DATAPIPE_APP", DEFAULT_APP),
                help="Python file exposing build(outdir) -> App (default: %(default)s)",
            )
        if out:
            sub.add_argument("--out", default=DEFAULT_OUT, help="synth output directory (default: %(default)s)")
        if stack:
            sub.add_argument("--stack", action="append", help="only this stack (repeatable; default: all)")
        if json_flag:
            sub.add_argument("--json", action="store_true", help="machine-readable output (errors too)")
        if local:
            sub.add_argument("--local", action="store_true", help="target the local stack (DATAPIPE_TARGET=local)")
        return sub

    command("synth", _synth, "check policies, synthesize Terraform JSON, write lineage and catalog beside it",
            out=True, json_flag=True, local=True)  # fmt: skip
    command("validate", _validate, "check policies only (fast, no synth)", stack=True, json_flag=True, local=True)
    lineage = command("lineage", _lineage, "print the lineage graph of the stacks", stack=True, local=True)
    lineage.add_argument(
        "--format",
        choices=("json", "openlineage", "mermaid", "dot", "svg"),
        default="json",
        help="json: a list with one graph per stack; svg renders DOT with Graphviz (apt-get install graphviz)",
    )
    command("catalog", _catalog, "print the catalog (a JSON list, one entry per stack)", stack=True, local=True)
    access = command(
        "access", _access, "who can read what, from the synthesized stacks", app=False, out=True, stack=True, json_flag=True
    )
    access.add_argument("--principal", help="only what this principal can reach (e.g. group:finance@acme.com, User:analyst)")
    access.add_argument("--resource", help="only who can reach this (e.g. dataset:finance, Topic:payments.payments.orders)")
    access.add_argument("--all", action="store_true", help="every grant, not only read access")
    expired = command(
        "expired-grants",
        _expired,
        "list expired temporary grants (Kafka and BigQuery) still present",
        app=False,
        out=True,
        stack=True,
        json_flag=True,
    )
    expired.add_argument("--at", help="check as of this RFC 3339 time (default: now)")
    expired.add_argument("--bootstrap", help="check a live Kafka cluster instead of the synthesized stack (host:port)")
    expired.add_argument(
        "--security-protocol",
        default="SASL_PLAINTEXT",
        help="live check: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (default: %(default)s)",
    )
    expired.add_argument("--sasl-mechanism", default="SCRAM-SHA-512", help="live check (default: %(default)s)")
    expired.add_argument("--sasl-username", help="live check; the password is read from $DATAPIPE_KAFKA_PASSWORD")
    command("worker-secrets", _worker_secrets, "list the files every Kafka Connect worker must hold, and their keys",
            out=True, stack=True, json_flag=True, app=False)  # fmt: skip
    plan = command("plan", _plan, "synth, then show every change Terraform would make, classified by consequence",
                   out=True, stack=True, json_flag=True, local=True)  # fmt: skip
    plan.add_argument(
        "--allow",
        default="",
        help="comma-separated consequences to accept: data-loss, re-snapshot, re-keying (default: none)",
    )
    for name, handler, summary in (
        ("deploy", _deploy, "synth, plan (risky changes refused unless --allow), apply that plan, check every connector runs"),
        ("destroy", _destroy, "reset the connectors' offsets, destroy the stacks, clean replication slots (local)"),
    ):
        sub = command(name, handler, summary, out=True, stack=True, local=True)
        sub.add_argument("--auto-approve", action="store_true", help="do not ask before applying or destroying")
        if name == "deploy":
            sub.add_argument("--allow", default="", help="comma-separated risky consequences to accept, as for `plan`: "
                             "data-loss, re-snapshot, re-keying (default: none; any of them refuses the deploy)")  # fmt: skip
    compact = command(
        "compact",
        _compact,
        "merge the deployed changelogs into their state tables now (production also schedules it)",
        out=True,
        stack=True,
        json_flag=True,
        local=True,
    )
    compact.add_argument("--sink", action="append", help="only this sink (repeatable; default: all)")
    command(
        "freshness",
        _freshness,
        "live staleness of every deployed table against its freshness objective (exit 1 when one is missed)",
        out=True,
        stack=True,
        json_flag=True,
        local=True,
    )
    doctor = command(
        "doctor",
        _doctor,
        "read-only checks of every source, topic and connector against the live services, with the fix for each problem",
        out=True,
        stack=True,
        json_flag=True,
        local=True,
    )
    doctor.add_argument(
        "--outage-budget",
        default="24h",
        help="how long a connector may be down without losing its position, e.g. 24h, 90m, 2d (default: %(default)s)",
    )
    _operation_commands(command)
    command("schema", _schema, "print the team-file JSON Schema (schemas/team.schema.json)", app=False)
    _local_commands(commands)
    return parser


def _operation_commands(command: Callable[..., argparse.ArgumentParser]) -> None:
    """snapshot, pause, resume, dlq: operations on a deployed app (see datapipe_cdk.runtime.operations / .replay)."""
    snapshot = command("snapshot", _snapshot, "request an incremental snapshot of a deployed source's table (the other "
                       "tables are not re-read)", out=True, stack=True, local=True)  # fmt: skip
    snapshot.add_argument("--table", action="append", required=True, metavar="SOURCE.TABLE",
                          help="a CdcSource id and one of its tables, e.g. payments-db.orders (repeatable)")  # fmt: skip
    for name, handler, summary in (
        ("pause", _pause, "pause a deployed connector until `datapipe resume` or the next deploy (which resumes it)"),
        ("resume", _resume, "resume a paused or stopped connector and wait until it runs"),
    ):
        sub = command(name, handler, summary, out=True, stack=True, local=True)
        sub.add_argument("connector", help="the connector: a CdcSource or BigQuerySink id")
    dlq = command(
        "dlq",
        _dlq,
        "dead letters: `dlq replay --sink NAME` writes a sink's dead-lettered records into its changelog tables, once, "
        "at their original Kafka position",
        out=True,
        stack=True,
        json_flag=True,
        local=True,
    )
    dlq.add_argument("action", choices=("replay",), help="replay: re-deliver the records not replayed yet")
    dlq.add_argument("--sink", required=True, help="the BigQuerySink id")
    dlq.add_argument("--dry-run", action="store_true", help="convert and report only: write and commit nothing")


def _local_commands(commands: Any) -> None:
    local = commands.add_parser(
        "local",
        help="the local stack: setup, up, down, status, reset, sql",
        description="The local real stack (Kafka, Connect with Debezium and KCBQ, MariaDB, PostgreSQL, BigQuery emulator).",
    )
    verbs = local.add_subparsers(title="local commands", metavar="VERB", parser_class=_Parser)
    setup = verbs.add_parser("setup", help="build and download everything the local stack needs (idempotent)")
    setup.add_argument("--no-toolchain", action="store_true", help="skip OpenTofu and the providers (no Go needed)")
    setup.set_defaults(handler=_local_setup)
    up = verbs.add_parser("up", help="start the local stack (runs setup first); idempotent")
    up.add_argument("--only", help="comma-separated services: kafka,databases,bigquery,tls,connect,compactor")
    up.set_defaults(handler=_local_up)
    down = verbs.add_parser("down", help="stop every service by its PID")
    down.add_argument("--only", help="comma-separated services")
    down.set_defaults(handler=_local_down)
    status = verbs.add_parser("status", help="each service, its endpoint, and how to connect as admin (exit 1 unless healthy)")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(handler=_local_status)
    reset = verbs.add_parser("reset", help="stop everything and delete all local state (data, secrets, Terraform state)")
    reset.add_argument("--yes", action="store_true", help="do not ask")
    reset.set_defaults(handler=_local_reset)
    sql = verbs.add_parser("sql", help="run SQL as the local admin (create your schemas and tables; rows of queries are printed)")
    sql.add_argument("--engine", required=True, choices=("mariadb", "postgres"))
    sql.add_argument("--database", help="database to connect to (PostgreSQL: created if missing)")
    group = sql.add_mutually_exclusive_group(required=True)
    group.add_argument("-f", "--file", help="SQL file to run")
    group.add_argument("-c", "--command", help="SQL text to run")
    sql.set_defaults(handler=_local_sql)


# --- app, policies, synth -------------------------------------------------------------------------


def _load(args: argparse.Namespace, outdir: str | None = None) -> App:
    from .app import AppError, load_app

    out = outdir or getattr(args, "out", None)
    try:
        if out is None:
            import tempfile

            with tempfile.TemporaryDirectory() as scratch:
                return load_app(args.app, scratch)
        return load_app(args.app, out)
    except AppError as error:
        message = str(error)
        raise (UsageError if "not found" in message else Failure)(message) from None


def _stacks(app: App, only: Sequence[str] | None) -> list[DataPipelineStack]:
    from .app import AppError, stacks_of

    try:
        return stacks_of(app, only)
    except AppError as error:
        raise UsageError(str(error)) from None


def _violations(stacks: Sequence[DataPipelineStack]) -> dict[str, list[Any]]:
    return {s.node.id: s.governance.violations() for s in stacks}


def _report_violations(found: dict[str, list[Any]], as_json: bool, warnings: Sequence[str] = ()) -> int:
    count = sum(len(v) for v in found.values())
    if as_json:
        listed = {k: [v.as_dict() for v in vs] for k, vs in found.items()}
        print(json.dumps({"ok": count == 0, "violations": listed, "warnings": list(warnings)}, indent=2))
    else:
        for stack, violations in found.items():
            for violation in violations:
                print(printable(f"{violation}  [{violation.policy}]"), file=sys.stderr)
            if not violations:
                print(f"{stack}: all policies pass")
        if count:
            print(f"datapipe: {count} policy violation(s); fix them or opt out with a written reason", file=sys.stderr)
    return FAILED if count else OK


def _validate(args: argparse.Namespace) -> int:
    app = _load(args)
    stacks = _stacks(app, args.stack)
    warnings = [f"{path}: {message}" for stack in stacks for path, message in stack.registry.warnings]
    if not args.json:
        for warning in warnings:
            print(f"warning: {printable(warning)}", file=sys.stderr)
    return _report_violations(_violations(stacks), args.json, warnings)


def _synth_app(args: argparse.Namespace, as_json: bool = False) -> tuple[App, list[DataPipelineStack], int]:
    app = _load(args, args.out)
    stacks = _stacks(app, None)
    found = _violations(stacks)
    if any(found.values()):
        return app, stacks, _report_violations(found, as_json)
    try:
        app.synth()
    except RuntimeError as error:
        raise Failure(f"synth failed: {str(error).splitlines()[0]}\n{_jsii_details(error)}") from None
    for warning in synth_warnings(Path(args.out)):
        print(f"warning: {printable(warning)}", file=sys.stderr)
    return app, stacks, OK


def synth_warnings(out: Path) -> list[str]:
    """``<construct path>: <message>`` for every warning annotation of the last synth (``<out>/manifest.json``),
    ours and the user's own constructs' alike: cdktf records them there and prints none."""
    try:
        stacks = json.loads((out / "manifest.json").read_text()).get("stacks", {})
    except (OSError, ValueError):
        return []
    return [
        f"{note.get('constructPath')}: {note.get('message')}"
        for stack in stacks.values()
        for note in stack.get("annotations", [])
        if note.get("level") == "@cdktf/warn"
    ]


def _synth(args: argparse.Namespace) -> int:
    _, stacks, code = _synth_app(args, args.json)
    if code != OK:
        return code
    written = {s.node.id: [str(p) for p in write_side_files(s, Path(args.out) / "stacks" / s.node.id)] for s in stacks}
    if args.json:
        files = {stack: [str(Path(args.out) / "stacks" / stack / "cdk.tf.json"), *side] for stack, side in written.items()}
        print(json.dumps({"ok": True, "out": args.out, "files": files, "warnings": synth_warnings(Path(args.out))}, indent=2))
    else:
        for stack, side in written.items():
            print(f"{stack}: {Path(args.out) / 'stacks' / stack / 'cdk.tf.json'} + {', '.join(Path(f).name for f in side)}")
    return OK


def write_side_files(stack: DataPipelineStack, directory: Path) -> list[Path]:
    """Lineage (JSON, OpenLineage, Mermaid, DOT; SVG when Graphviz is installed) and the catalog, beside ``cdk.tf.json``."""
    from .catalog import to_json as catalog_json
    from .lineage import LineageGraph

    graph = LineageGraph.of(stack)
    directory.mkdir(parents=True, exist_ok=True)
    contents = {
        "lineage.json": graph.to_json(),
        "lineage.mmd": graph.mermaid(),
        "lineage.dot": graph.dot(),
        "openlineage.json": json.dumps(graph.openlineage_events(), indent=2) + "\n",
        "catalog.json": catalog_json(stack),
    }
    paths: list[Path] = []
    if shutil.which("dot"):
        contents["lineage.svg"] = render_svg(contents["lineage.dot"])
    for name, text in contents.items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


# --- reviews --------------------------------------------------------------------------------------


def _lineage(args: argparse.Namespace) -> int:
    from .lineage import LineageGraph

    graphs = [LineageGraph.of(s) for s in _stacks(_load(args), args.stack)]
    if args.format == "json":
        print(json.dumps([g.as_dict() for g in graphs], indent=2))
    elif args.format == "openlineage":
        print(json.dumps([e for g in graphs for e in g.openlineage_events()], indent=2))
    elif args.format == "svg":
        for graph in graphs:
            sys.stdout.write(render_svg(graph.dot()))
    else:
        for graph in graphs:
            sys.stdout.write(graph.mermaid() if args.format == "mermaid" else graph.dot())
    return OK


def render_svg(dot: str) -> str:
    """Render Graphviz DOT to SVG with the ``dot`` program."""
    try:
        done = subprocess.run(["dot", "-Tsvg"], input=dot, capture_output=True, text=True, check=False, timeout=60)
    except FileNotFoundError:
        raise UsageError("rendering SVG needs Graphviz's dot: apt-get install graphviz (or use --format dot)") from None
    if done.returncode != 0:
        raise Failure(f"dot failed: {done.stderr.strip()}")
    return done.stdout


def _catalog(args: argparse.Namespace) -> int:
    from .catalog import catalog

    print(json.dumps([catalog(s) for s in _stacks(_load(args), args.stack)], indent=2))
    return OK


def _synthesized(out: str, only: Sequence[str] | None) -> dict[str, dict[str, Any]]:
    from .access import load_stack

    root = Path(out) / "stacks"
    names = list(only) if only else sorted(p.name for p in root.glob("*") if (p / "cdk.tf.json").is_file())
    if not names:
        raise UsageError(f"no synthesized stacks under {root}: run `datapipe synth` first")
    try:
        return {name: load_stack(root / name) for name in names}
    except FileNotFoundError as error:
        raise UsageError(str(error)) from None


def _access(args: argparse.Namespace) -> int:
    from .access import format_table, review

    rows = []
    for name, stack in _synthesized(args.out, args.stack).items():
        for entry in review(stack):
            if not (args.all or entry.can_read):
                continue
            if args.principal and entry.principal != args.principal:
                continue
            if args.resource and entry.resource != args.resource:
                continue
            rows.append((name, entry))
    if args.json:
        print(json.dumps([{"stack": name, **e.as_dict()} for name, e in rows], indent=2))
        return OK
    for name in dict.fromkeys(n for n, _ in rows):
        title = f"who can reach {args.resource}" if args.resource else ("every grant" if args.all else "who can read what")
        print(f"== {name}: {title} ==")
        sys.stdout.write(format_table(e for n, e in rows if n == name))
    return OK


def _expired(args: argparse.Namespace) -> int:
    from .access import expired_grants, live_kafka_acls, parse_time

    try:
        now = parse_time(args.at) if args.at else datetime.now(UTC)
    except ValueError:
        raise UsageError(f"--at must be an RFC 3339 time such as 2030-01-31T00:00:00Z, got {args.at!r}") from None
    live = None
    if args.bootstrap:
        config = {"bootstrap.servers": args.bootstrap, "security.protocol": args.security_protocol}
        if args.sasl_username:
            password = os.environ.get("DATAPIPE_KAFKA_PASSWORD")
            if not password:
                raise UsageError("set DATAPIPE_KAFKA_PASSWORD for --sasl-username (passwords never go on the command line)")
            config.update({"sasl.mechanism": args.sasl_mechanism, "sasl.username": args.sasl_username, "sasl.password": password})
        try:
            live = live_kafka_acls(config)
        except ImportError:
            raise UsageError("the live check needs confluent-kafka: pip install 'datapipe-cdk[runtime]'") from None
        except Exception as error:
            detail = "timed out" if isinstance(error, TimeoutError) else str(error) or repr(error)
            raise Failure(
                f"cannot list ACLs on {args.bootstrap} ({detail}): check --bootstrap, --security-protocol and the SASL settings"
            ) from None
    found = [
        (name, g)
        for name, stack in _synthesized(args.out, args.stack).items()
        for g in expired_grants(stack, now=now, live_acls=live)
    ]
    if args.json:
        print(json.dumps([{"stack": name, **g.as_dict()} for name, g in found], indent=2))
    else:
        for name, grant in found:
            print(f"{name}: {grant.principal} {grant.resource} expired {grant.until}; {grant.remedy}")
        if not found:
            print("no expired temporary grants")
    return FAILED if found else OK


def _worker_secrets(args: argparse.Namespace) -> int:
    from .access import manifest as manifest_of

    rows = [
        {"stack": name, **secret}
        for name, stack in _synthesized(args.out, args.stack).items()
        for secret in manifest_of(stack).get("worker_secrets", [])
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return OK
    for row in rows:
        keys = ", ".join(row["keys"]) if row["keys"] else "the whole file"
        print(f"{row['stack']}: {row['file']}  ({keys}; read by connector {row['used_by']}): {row.get('what', '')}")
    return OK


# --- Terraform ------------------------------------------------------------------------------------


def _deployable(args: argparse.Namespace) -> tuple[list[Any], Any]:
    """Synthesize, then each selected stack's directory and a runner for it."""
    from .deploy import Runner, StackDir, local_stack_ready

    if args.local and (reason := local_stack_ready()):
        raise Failure(reason)
    _, stacks, code = _synth_app(args)
    if code != OK:
        raise Failure("")
    names = [s.node.id for s in _stacks_selected(stacks, args.stack)]
    return [StackDir.read(Path(args.out), name) for name in names], Runner(local=args.local, color=sys.stdout.isatty())


def _stacks_selected(stacks: Sequence[DataPipelineStack], only: Sequence[str] | None) -> list[DataPipelineStack]:
    if not only:
        return list(stacks)
    known = {s.node.id for s in stacks}
    unknown = sorted(set(only) - known)
    if unknown:
        raise UsageError(f"no stack named {', '.join(unknown)} (stacks: {', '.join(sorted(known))})")
    return [s for s in stacks if s.node.id in only]


def _deploy(args: argparse.Namespace) -> int:
    from .plan import PlanError, parse_allow

    try:
        allowed = parse_allow(args.allow)
    except PlanError as error:
        raise UsageError(str(error)) from None
    stacks, runner = _deployable(args)
    missed: list[str] = []
    for stack in stacks:
        before = _deployed_before(runner, stack)
        plan_json = _reviewed(runner, stack, allowed, auto_approve=args.auto_approve)
        if plan_json is None:
            return REFUSED
        runner.deploy(stack, auto_approve=True, saved_plan=True)
        print(f"{stack.name}: deployed", file=sys.stderr)
        missed += _snapshot_added_tables(runner, stack, before)
        missed += _snapshot_rewritten_tables(runner, stack, plan_json)
    if missed:
        raise Failure("\n".join(missed))
    return OK


def _reviewed(runner: Any, stack: Any, allowed: frozenset[str], *, auto_approve: bool) -> dict[str, Any] | None:
    """Plan ``stack`` (kept for the apply) and classify it as ``datapipe plan`` does: risky changes not allowed
    refuse the deploy (None); other changes are shown and, without ``auto_approve``, confirmed on the terminal.
    The plan, as JSON, when it may be applied."""
    from .deploy import PLAN_FILE
    from .plan import RISKY_CHANGES, classify, exit_status, render_table

    pending, plan_json = runner.plan(stack, keep=True)
    changes = classify(plan_json, stack.synthesized, stack.deployed_paths)
    status = exit_status(changes, allowed)
    if status == RISKY_CHANGES or (pending and not auto_approve):
        sys.stderr.write(f"== {stack.name} ==\n{render_table(changes, (), allowed)}")
    if status == RISKY_CHANGES:
        (stack.directory / PLAN_FILE).unlink(missing_ok=True)
        print(f"datapipe: {stack.name} not deployed: risky changes not allowed (marked !); review them, then deploy "
              "again with --allow", file=sys.stderr)  # fmt: skip
        return None
    if pending and not auto_approve:
        try:
            answer = input(f"Apply these changes to {stack.name}? Only 'yes' applies: ").strip()
        except EOFError:
            answer = "(no terminal: pass --auto-approve to deploy without asking)"
        if answer != "yes":
            (stack.directory / PLAN_FILE).unlink(missing_ok=True)
            raise Failure(f"{stack.name}: not deployed, nothing was changed; answer {answer!r}")
    return dict(plan_json)


def rewritten_tables(plan_json: Mapping[str, Any], manifest: Any) -> dict[str, list[str]]:
    """Source id -> captured tables whose changelog or state table ``plan_json`` replaces: they start empty, so
    their rows must be read again (a latest-state view would otherwise show only rows changed since)."""
    owners: dict[tuple[str, str], tuple[str, str]] = {}
    for sink in manifest.sinks:
        for table in sink.tables:
            for table_id in (table.table, table.state_table):
                if table_id:
                    owners[(sink.dataset, table_id)] = (sink.source, table.source_table)
    found: dict[str, list[str]] = {}
    for rc in plan_json.get("resource_changes") or []:
        change = rc.get("change") or {}
        actions, after = change.get("actions") or [], change.get("after") or {}
        owner = owners.get((str(after.get("dataset_id")), str(after.get("table_id"))))
        if rc.get("type") == "google_bigquery_table" and {"delete", "create"} <= set(actions) and owner:
            source, table = owner
            if source and table not in found.setdefault(source, []):
                found[source].append(table)
    return found


def _snapshot_rewritten_tables(runner: Any, stack: Any, plan_json: Mapping[str, Any]) -> list[str]:
    """After a deploy that replaced changelog or state tables: an incremental snapshot of those tables; problems."""
    from .connect_api import ConnectError
    from .manifest import ManifestError
    from .runtime.credentials import CredentialsError
    from .runtime.operations import OperationError

    wanted = rewritten_tables(plan_json, stack.manifest)
    if not wanted:
        return []
    deployed = runner.deployed_manifest(stack)
    problems = []
    for name, tables in wanted.items():
        listed = ", ".join(f"{name}.{t}" for t in tables)
        try:
            signal = _request_snapshots(runner, stack, deployed.source(name), tables, wait=True)
        except (OperationError, CredentialsError, ConnectError, ManifestError) as error:
            again = " ".join(f"--table {name}.{t}" for t in tables)
            problems.append(
                f"{stack.name}: deployed, but the replaced {listed} not re-read: {error}\nthen: datapipe snapshot {again}"
            )
            continue
        print(f"{stack.name}: {listed}: changelog replaced, so its rows are read again (incremental snapshot, signal "
              f"{signal})", file=sys.stderr)  # fmt: skip
    return problems


def _destroy(args: argparse.Namespace) -> int:
    stacks, runner = _deployable(args)
    for stack in reversed(stacks):
        runner.destroy(stack, auto_approve=args.auto_approve)
        print(f"{stack.name}: destroyed", file=sys.stderr)
    return OK


def _plan(args: argparse.Namespace) -> int:
    from .plan import PlanError, classify, classify_drift, exit_status, parse_allow, render_table, report

    try:
        allowed = parse_allow(args.allow)
    except PlanError as error:
        raise UsageError(str(error)) from None
    stacks, runner = _deployable(args)
    worst = OK
    reports = []
    for stack in stacks:
        _, plan_json = runner.plan(stack)
        changes = classify(plan_json, stack.synthesized, stack.deployed_paths)
        drift = classify_drift(plan_json, stack.synthesized, stack.deployed_paths)
        run_state = runner.run_state_drift(stack)
        status = exit_status(changes, allowed)
        if run_state and status == OK:
            status = CHANGES  # a connector to resume is a change `deploy` will make
        worst = max(worst, status)
        reports.append({"stack": stack.name, **report(changes, drift, allowed), "connectors_not_running": run_state})
        if not args.json:
            print(f"== {stack.name} ==")
            sys.stdout.write(render_table(changes, drift, allowed))
            for line in run_state:
                print(f"run state: {line} (deploy resumes it)")
    if args.json:
        print(json.dumps({"ok": worst in (OK, CHANGES), "exit_status": worst, "stacks": reports}, indent=2))
    elif worst == REFUSED:
        print("datapipe: the plan holds risky changes not allowed (marked !); review, then pass --allow", file=sys.stderr)
    return worst


def _compact(args: argparse.Namespace) -> int:
    from .compactor import compact
    from .runtime.warehouse import bigquery_client

    stacks, runner = _deployable(args)
    done = []
    for stack in stacks:
        manifest = runner.deployed_manifest(stack)
        if not manifest.sinks:
            continue
        client = bigquery_client(manifest.bigquery)
        done += [{"stack": stack.name, **r.to_dict()} for r in compact(client, manifest, args.sink)]
    if args.json:
        print(json.dumps({"ok": True, "compacted": done}, indent=2))
    for row in [] if args.json else done:
        print(
            f"{row['stack']}: {row['table']} -> {row['state_table']}: merged {row['merged_rows']}, "
            f"purged {row['purged_rows']} deleted ({row['seconds']} s)"
        )
    return OK


def _doctor(args: argparse.Namespace) -> int:
    from .deploy import StackDir
    from .runtime.doctor import ERROR, counts, examine, parse_duration, render

    try:
        budget = parse_duration(args.outage_budget)
    except ValueError as error:
        raise UsageError(f"--outage-budget: {error}") from None
    _, stacks, code = _synth_app(args, args.json)
    if code != OK:
        return code
    reports: list[dict[str, Any]] = []
    for stack in _stacks_selected(stacks, args.stack):
        synthesized = StackDir.read(Path(args.out), stack.node.id)
        findings = examine(synthesized.manifest, synthesized.synthesized, outage_budget=budget)
        reports.append({"stack": stack.node.id, "counts": counts(findings), "findings": [f.as_dict() for f in findings]})
        if not args.json:
            print(f"== {stack.node.id} ==")
            sys.stdout.write(render(findings))
    failed = any(r["counts"][ERROR] for r in reports)
    if args.json:
        print(json.dumps({"ok": not failed, "stacks": reports}, indent=2))
    return FAILED if failed else OK


# --- operations: snapshots, pause / resume, dead letters ----------------------------------------


def _stack_declaring(stacks: Sequence[Any], what: str, name: str, names: Callable[[Any], list[str]]) -> Any:
    """The synthesized stack whose ``names`` include ``name``; a usage error listing the app's ``what``s otherwise."""
    for stack in stacks:
        if name in names(stack):
            return stack
    known = sorted({n for stack in stacks for n in names(stack)})
    raise UsageError(f"the app declares no {what} named {name!r} ({what}s: {', '.join(known) or 'none'})")


def _deployed_before(runner: Any, stack: Any) -> Any:
    """What is deployed before this deploy (None: nothing, or no source that signals): to find tables added."""
    from .deploy import DeployError
    from .manifest import ManifestError

    if not any(source.signal_table for source in stack.manifest.sources):
        return None
    try:
        return runner.deployed_manifest(stack)
    except (DeployError, ManifestError):
        return None


def _request_snapshots(runner: Any, stack: Any, source: Any, tables: list[str], *, wait: bool) -> str:
    """Signal an incremental snapshot of ``tables`` (after the running tasks capture them, when ``wait``); the signal id."""
    from .runtime.credentials import load_credentials
    from .runtime.operations import qualified_tables, request_incremental_snapshot, wait_until_captured

    if wait:
        wait_until_captured(runner.connect_client(stack), source.connector, qualified_tables(source, tables))
    publication = stack.connector_config(source.connector).get("publication.name")
    return str(request_incremental_snapshot(source, tables, load_credentials().database(source), publication=publication))


def _snapshot_added_tables(runner: Any, stack: Any, before: Any) -> list[str]:
    """After a deploy: an incremental snapshot of each table added to a running source (only those); problems."""
    from .connect_api import ConnectError
    from .runtime.credentials import CredentialsError
    from .runtime.operations import OperationError, added_tables

    if not added_tables(before, stack.manifest):
        return []
    after = runner.deployed_manifest(stack)
    problems = []
    for name, tables in added_tables(before, after).items():
        source, listed = after.source(name), ", ".join(f"{name}.{t}" for t in tables)
        try:
            signal = _request_snapshots(runner, stack, source, tables, wait=True)
        except (OperationError, CredentialsError, ConnectError) as error:
            again = " ".join(f"--table {name}.{t}" for t in tables)
            problems.append(f"{stack.name}: deployed, but {listed} not snapshotted: {error}\nthen: datapipe snapshot {again}")
            continue
        print(f"{stack.name}: {listed} added to running source {name}: incremental snapshot requested (signal {signal} in "
              f"{source.signal_table}); its other tables are not re-read", file=sys.stderr)  # fmt: skip
    return problems


def _snapshot(args: argparse.Namespace) -> int:
    from .runtime.credentials import CredentialsError
    from .runtime.operations import OperationError

    wanted: dict[str, list[str]] = {}
    for item in args.table:
        source, dot, table = item.rpartition(".")
        if not dot or not source or not table:
            raise UsageError(f"--table must be SOURCE.TABLE (a CdcSource id and one of its tables), got {item!r}")
        wanted.setdefault(source, []).append(table)
    stacks, runner = _deployable(args)
    deployed: dict[str, Any] = {}
    for name, tables in wanted.items():
        stack = _stack_declaring(stacks, "source", name, lambda s: [x.name for x in s.manifest.sources])
        if stack.name not in deployed:
            deployed[stack.name] = runner.deployed_manifest(stack)
        source = deployed[stack.name].source(name)
        try:
            signal = _request_snapshots(runner, stack, source, tables, wait=False)
        except (OperationError, CredentialsError) as error:
            raise Failure(str(error)) from None
        state = runner.connect_client(stack).status(source.connector).state
        later = "" if state == "RUNNING" else f"; connector {source.connector} is {state}: it reads the signal once it runs"
        print(f"{stack.name}: incremental snapshot of {', '.join(tables)} requested from source {name} (signal {signal} "
              f"in {source.signal_table}){later}")  # fmt: skip
    return OK


def _pause(args: argparse.Namespace) -> int:
    return _run_state(args, pause=True)


def _resume(args: argparse.Namespace) -> int:
    return _run_state(args, pause=False)


def _run_state(args: argparse.Namespace, *, pause: bool) -> int:
    from .runtime.operations import OperationError, pause_connector, resume_connector

    stacks, runner = _deployable(args)
    stack = _stack_declaring(stacks, "connector", args.connector, lambda s: list(s.connectors))
    try:
        state = (pause_connector if pause else resume_connector)(runner.connect_client(stack), args.connector)
    except OperationError as error:
        raise Failure(str(error)) from None
    tasks = ", ".join(state.tasks) or "none"
    print(f"{stack.name}: connector {args.connector} is {state.state} (tasks: {tasks})")
    if pause:
        print(f"it stays paused until `datapipe resume {args.connector}` or the next `datapipe deploy` (which resumes every "
              "declared connector); until then `datapipe plan` reports it as run-state drift")  # fmt: skip
    return OK


def _dlq(args: argparse.Namespace) -> int:
    from .runtime.credentials import CredentialsError, load_credentials
    from .runtime.replay import ReplayError, bigquery_insert, replay_dead_letters
    from .runtime.stream import StreamError
    from .runtime.warehouse import bigquery_client

    stacks, runner = _deployable(args)
    stack = _stack_declaring(stacks, "sink", args.sink, lambda s: [x.name for x in s.manifest.sinks])
    manifest = runner.deployed_manifest(stack)
    sink = next((x for x in manifest.sinks if x.name == args.sink), None)
    if sink is None:
        raise Failure(f"sink {args.sink} is declared but not deployed in stack {stack.name}: run datapipe deploy first")
    config = runner.connect_client(stack).config(sink.connector) or stack.connector_config(sink.connector)
    insert = bigquery_insert(bigquery_client(manifest.bigquery))
    try:
        report = replay_dead_letters(
            manifest.kafka, load_credentials().kafka, sink, config, insert, manifest.bigquery.project, dry_run=args.dry_run
        )
    except (ReplayError, StreamError, CredentialsError) as error:
        raise Failure(str(error)) from None
    if args.json:
        print(json.dumps({"ok": not report.failed, "stack": stack.name, **report.to_dict()}, indent=2))
        return FAILED if report.failed else OK
    statuses = ("convertible", "dropped", "failed") if args.dry_run else ("delivered", "dropped", "failed")
    counts = ", ".join(f"{len(report.of(s))} {s}" for s in statuses)
    verb = "would replay (dry run)" if args.dry_run else "replayed"
    print(f"{stack.name}: {report.dead_letter_topic} {verb} for sink {sink.name}: {counts} (group {report.group})")
    for item in report.outcomes:
        where = f" -> {item.table}" if item.table else ""
        print(f"  {item.status:<9} {report.dead_letter_topic}[{item.dlq_partition}]@{item.dlq_offset}  {item.origin}{where}"
              f"{': ' + item.detail if item.detail else ''}")  # fmt: skip
    if report.failed:
        print(f"datapipe: {len(report.failed)} record(s) still cannot be delivered and stay in {report.dead_letter_topic}: fix "
              f"them (or the sink's declaration and deploy), then run `datapipe dlq replay --sink {sink.name}` again",
              file=sys.stderr)  # fmt: skip
    return FAILED if report.failed else OK


def _freshness(args: argparse.Namespace) -> int:
    from .runtime.freshness import measure, render
    from .runtime.warehouse import WarehouseClient

    stacks, runner = _deployable(args)
    report, missed = [], False
    for stack in stacks:
        manifest = runner.deployed_manifest(stack)
        rows = measure(manifest, WarehouseClient(manifest.bigquery))
        missed = missed or any(r.missed for r in rows)
        report.append({"stack": stack.name, "tables": [r.to_dict() for r in rows]})
        if not args.json:
            print(f"== {stack.name} ==")
            sys.stdout.write(render(rows))
    if args.json:
        print(json.dumps({"ok": not missed, "stacks": report}, indent=2))
    return FAILED if missed else OK


def _schema(args: argparse.Namespace) -> int:
    from .teamspec import schema_json

    sys.stdout.write(schema_json())
    return OK


# --- the local stack ------------------------------------------------------------------------------


def _local_setup(args: argparse.Namespace) -> int:
    from .local import setup
    from .local.config import StackConfig

    setup.setup(StackConfig(), with_toolchain=not args.no_toolchain)
    return OK


def _local_up(args: argparse.Namespace) -> int:
    from .local import services, setup
    from .local.config import StackConfig

    cfg = StackConfig()
    setup.setup(cfg)
    services.up(services.select(args.only), cfg)
    return _print_local_status(cfg, as_json=False)


def _local_down(args: argparse.Namespace) -> int:
    from .local import services
    from .local.config import StackConfig

    services.down(services.select(args.only), StackConfig())
    return OK


def _local_status(args: argparse.Namespace) -> int:
    from .local.config import StackConfig

    return _print_local_status(StackConfig(), as_json=args.json)


def _print_local_status(cfg: Any, *, as_json: bool) -> int:
    from .local import services

    states = services.states(list(services.ORDER), cfg)
    guide = services.connection_guide(cfg)
    healthy = all(s.startswith("healthy") for s in states.values())
    if as_json:
        print(json.dumps({"healthy": healthy, "services": states, "connect": guide}, indent=2))
    else:
        for name, state in states.items():
            print(f"{name:<10} {state}")
        print()
        for line in guide["how"]:
            print(line)
    return OK if healthy else FAILED


def _local_reset(args: argparse.Namespace) -> int:
    from .local import services
    from .local.config import StackConfig

    cfg = StackConfig()
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError(f"reset deletes {cfg.run_dir} (all local data and state): pass --yes")
        answer = input(f"Delete {cfg.run_dir} (all local data, secrets and Terraform state)? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            return FAILED
    services.reset(cfg)
    return OK


def _local_sql(args: argparse.Namespace) -> int:
    from .local import services
    from .local.config import StackConfig

    try:
        text = Path(args.file).read_text(encoding="utf-8") if args.file else args.command
    except OSError as error:
        raise UsageError(f"cannot read the SQL file: {error}") from None
    try:
        results = services.run_sql(StackConfig(), args.engine, text, args.database)
    except Exception as error:  # the driver's own error (syntax, missing table, refused login): said plainly
        if type(error).__module__.split(".")[0] not in ("pymysql", "psycopg"):
            raise
        raise Failure(f"{args.engine}: {type(error).__name__}: {str(error).strip()}") from None
    for columns, rows in results:
        print("\t".join(columns))
        for row in rows:
            print("\t".join("NULL" if value is None else str(value) for value in row))
        print(f"({len(rows)} row{'s' * (len(rows) != 1)})")
    return OK


def _jsii_details(error: BaseException) -> str:
    return "\n".join(line for line in str(error).splitlines()[1:] if line.strip().startswith("["))


if __name__ == "__main__":
    sys.exit(main())
