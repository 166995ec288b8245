"""``datapipe``: synth, check and deploy pipeline stacks; print lineage, catalog and access reviews.

Exit codes: 0 ok, 1 a policy / validation failure (or a failed plan/deploy), 2 a usage error.
The app is a Python file exposing ``build(outdir) -> cdktf.App`` (default ``stacks/main.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cdktf import App

    from .stack import DataPipelineStack

OK, FAILED, USAGE = 0, 1, 2
DEFAULT_APP = "stacks/main.py"
DEFAULT_OUT = "cdktf.out"


class UsageError(Exception):
    """Bad command line or missing input: exit code 2."""


class Failure(Exception):
    """Policy, validation or tool failure: exit code 1."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return USAGE
    try:
        result: int = args.handler(args)
        return result
    except UsageError as error:
        print(f"datapipe: error: {error}", file=sys.stderr)
        return USAGE
    except Failure as error:
        if str(error):
            print(f"datapipe: {error}", file=sys.stderr)
        return FAILED
    except BrokenPipeError:  # e.g. `datapipe catalog | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="datapipe",
        description="Synth, check and deploy datapipe-cdk stacks; print their lineage, catalog and access review.",
        epilog="Exit codes: 0 ok, 1 policy/validation failure or failed plan/deploy, 2 usage error.",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    def command(
        name: str,
        handler: Callable[[argparse.Namespace], int],
        summary: str,
        *,
        app: bool = True,
        out: bool = False,
        stack: bool = False,
        json_flag: bool = False,
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
            sub.add_argument("--json", action="store_true", help="machine-readable output")
        return sub

    command(
        "synth",
        _synth,
        "check policies, synthesize Terraform JSON, write lineage and catalog beside it",
        out=True,
        json_flag=True,
    )
    command("validate", _validate, "check policies only (fast, no synth)", stack=True, json_flag=True)
    lineage = command("lineage", _lineage, "print the lineage graph of a stack", stack=True)
    lineage.add_argument(
        "--format",
        choices=("json", "openlineage", "mermaid", "dot", "svg"),
        default="json",
        help="svg renders the DOT graph with Graphviz (apt-get install graphviz)",
    )
    command("catalog", _catalog, "print the catalog manifest (JSON) of a stack", stack=True)
    access = command(
        "access", _access, "who can read what, from the synthesized stack", app=False, out=True, stack=True, json_flag=True
    )
    access.add_argument("--principal", help="only this principal (e.g. group:finance@acme.com or User:analyst)")
    access.add_argument("--all", action="store_true", help="every grant, not only read access")
    expired = command(
        "expired-grants",
        _expired,
        "list expired temporary Kafka grants still present",
        app=False,
        out=True,
        stack=True,
        json_flag=True,
    )
    expired.add_argument("--at", help="check as of this RFC 3339 time (default: now)")
    expired.add_argument("--bootstrap", help="check a live cluster instead of the synthesized stack (host:port)")
    expired.add_argument(
        "--security-protocol",
        default="SASL_PLAINTEXT",
        help="live check: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (default: %(default)s)",
    )
    expired.add_argument("--sasl-mechanism", default="SCRAM-SHA-512", help="live check (default: %(default)s)")
    expired.add_argument("--sasl-username", help="live check; the password is read from $DATAPIPE_KAFKA_PASSWORD")
    for name, summary in (
        ("plan", "synth, then show what Terraform would change"),
        ("deploy", "synth, then apply the stacks"),
        ("destroy", "destroy the stacks"),
    ):
        sub = command(name, _terraform, summary, out=True, stack=True)
        sub.add_argument("--tool", choices=("tofu", "cdktf"), default="tofu", help="run OpenTofu directly or cdktf-cli")
        sub.add_argument("--auto-approve", action="store_true", help="do not ask before applying or destroying")
        sub.add_argument("--dry-run", action="store_true", help="print the commands instead of running them")
        sub.set_defaults(action=name)
    command("schema", _schema, "print the team-file JSON Schema (schemas/team.schema.json)", app=False)
    return parser


def _load_app(path: str, outdir: str = DEFAULT_OUT) -> App:
    file = Path(path)
    if not file.is_file():
        raise UsageError(f"app file {path} not found: pass --app <file.py> (a file exposing build(outdir))")
    namespace = runpy.run_path(str(file), run_name="datapipe_app")
    build = namespace.get("build")
    if not callable(build):
        raise UsageError(f"{path} has no build(outdir) function returning a cdktf App")
    from .errors import DatapipeError

    try:
        app: App = build(outdir)
    except DatapipeError as error:
        raise Failure(f"error: {error}") from None
    return app


def _stacks(app: App, only: Sequence[str] | None) -> list[DataPipelineStack]:
    from .stack import DataPipelineStack

    found = [c for c in app.node.children if isinstance(c, DataPipelineStack)]
    if only:
        unknown = sorted(set(only) - {s.node.id for s in found})
        if unknown:
            raise UsageError(f"no stack named {', '.join(unknown)} (stacks: {', '.join(s.node.id for s in found)})")
        found = [s for s in found if s.node.id in only]
    return found


def _violations(stacks: Sequence[DataPipelineStack]) -> dict[str, list[Any]]:
    from .governance.state import Governance

    return {s.node.id: Governance.of(s).violations() for s in stacks}


def _report_violations(found: dict[str, list[Any]], as_json: bool) -> int:
    count = sum(len(v) for v in found.values())
    if as_json:
        print(json.dumps({"ok": count == 0, "violations": {k: [v.as_dict() for v in vs] for k, vs in found.items()}}, indent=2))
    else:
        for stack, violations in found.items():
            for violation in violations:
                print(f"{violation}  [{violation.policy}]", file=sys.stderr)
            if not violations:
                print(f"{stack}: all policies pass")
        if count:
            print(f"datapipe: {count} policy violation(s); fix them or opt out with a written reason", file=sys.stderr)
    return FAILED if count else OK


def _validate(args: argparse.Namespace) -> int:
    app = _load_app(args.app)
    return _report_violations(_violations(_stacks(app, args.stack)), args.json)


def _synth(args: argparse.Namespace) -> int:
    app = _load_app(args.app, args.out)
    stacks = _stacks(app, None)
    found = _violations(stacks)
    if any(found.values()):
        return _report_violations(found, args.json)
    try:
        app.synth()
    except RuntimeError as error:
        raise Failure(f"synth failed: {str(error).splitlines()[0]}\n{_jsii_details(error)}") from None
    written = {s.node.id: [str(p) for p in write_side_files(s, Path(args.out) / "stacks" / s.node.id)] for s in stacks}
    if args.json:
        print(json.dumps({"ok": True, "out": args.out, "files": written}, indent=2))
    else:
        for stack, files in written.items():
            print(f"{stack}: {Path(args.out) / 'stacks' / stack / 'cdk.tf.json'} + {', '.join(Path(f).name for f in files)}")
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


def _lineage(args: argparse.Namespace) -> int:
    from .lineage import LineageGraph

    graphs = [LineageGraph.of(s) for s in _stacks(_load_app(args.app), args.stack)]
    if args.format == "json":
        print(json.dumps([g.as_dict() for g in graphs] if len(graphs) != 1 else graphs[0].as_dict(), indent=2))
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

    catalogs = [catalog(s) for s in _stacks(_load_app(args.app), args.stack)]
    print(json.dumps(catalogs[0] if len(catalogs) == 1 else catalogs, indent=2))
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
            if (args.all or entry.can_read) and (not args.principal or entry.principal == args.principal):
                rows.append((name, entry))
    if args.json:
        print(json.dumps([{"stack": name, **e.as_dict()} for name, e in rows], indent=2))
        return OK
    for name in dict.fromkeys(n for n, _ in rows):
        print(f"== {name}: {'every grant' if args.all else 'who can read what'} ==")
        sys.stdout.write(format_table(e for n, e in rows if n == name))
    return OK


def _expired(args: argparse.Namespace) -> int:
    from .access import expired_grants, live_kafka_acls, parse_time

    try:
        now = parse_time(args.at) if args.at else datetime.now(UTC)
    except ValueError:
        raise UsageError(f"--at must be an RFC 3339 time such as 2027-01-31T00:00:00Z, got {args.at!r}") from None
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
            raise UsageError("the live check needs confluent-kafka: pip install -e '.[runtime]'") from None
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
            print(
                f"{name}: {grant.principal} {grant.resource} expired {grant.until}; {grant.acls_present} ACL(s) still "
                f"in the {grant.where}: remove the grant_read(..., until=...) and deploy"
            )
        if not found:
            print("no expired temporary Kafka grants")
    return FAILED if found else OK


def _terraform(args: argparse.Namespace) -> int:
    from ._toolchain import toolchain_env

    app = _load_app(args.app, args.out)
    stacks = _stacks(app, args.stack)
    if args.action != "destroy" or args.tool == "tofu":
        found = _violations(stacks)
        if any(found.values()):
            return _report_violations(found, False)
        if not args.dry_run:
            app.synth()
    env = toolchain_env()
    for stack in stacks:
        for command, cwd in terraform_commands(
            args.action, stack.node.id, args.out, tool=args.tool, auto_approve=args.auto_approve, color=sys.stdout.isatty()
        ):
            print(f"$ (cd {cwd} && {' '.join(command)})", file=sys.stderr)
            if args.dry_run:
                continue
            try:
                code = subprocess.run(command, cwd=cwd, env=env, check=False).returncode
            except FileNotFoundError:
                raise UsageError(f"{command[0]} not found: run `make toolchain`") from None
            if code != 0:
                raise Failure(f"{command[0]} {command[1]} failed for stack {stack.node.id} (exit {code})")
    return OK


def terraform_commands(
    action: str, stack: str, out: str, *, tool: str, auto_approve: bool, color: bool = True
) -> list[tuple[list[str], str]]:
    """The commands ``plan`` / ``deploy`` / ``destroy`` run for one stack, with their working directory."""
    if tool == "cdktf":
        verb = {"plan": "diff", "deploy": "deploy", "destroy": "destroy"}[action]
        # Offline, `providers lock` would ask the registries; every verb skips it (the mirror is the source).
        command = ["cdktf", verb, stack, "--skip-synth", "--output", out, "--skip-provider-lock"]
        if auto_approve and verb != "diff":
            command.append("--auto-approve")
        return [(command, ".")]
    directory = str(Path(out) / "stacks" / stack)
    verb = {"plan": "plan", "deploy": "apply", "destroy": "destroy"}[action]
    plain = [] if color else ["-no-color"]
    command = ["tofu", verb, "-input=false", *plain]
    if auto_approve and verb != "plan":
        command.append("-auto-approve")
    return [(["tofu", "init", "-input=false", *plain], directory), (command, directory)]


def _schema(args: argparse.Namespace) -> int:
    from .teamspec import schema_json

    sys.stdout.write(schema_json())
    return OK


def _jsii_details(error: BaseException) -> str:
    return "\n".join(line for line in str(error).splitlines()[1:] if line.strip().startswith("["))


if __name__ == "__main__":
    sys.exit(main())
