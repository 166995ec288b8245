"""Synth, ``tofu plan`` and ``apply`` time on the local stack for pipelines of 10 and 100 tables, and the
no-change re-plan that every CI run of an unchanged pipeline pays.

Per size it writes the load benchmark's app (``_load.write_app``: one PostgreSQL source of N tables, one sink,
one view per table; about 11 resources per table), creates the tables, then runs the ``datapipe`` CLI as a
user would and times each command end to end (Python start, synth, ``tofu init`` / ``plan`` / ``apply``,
connector checks):

* ``synth --local``: the app synthesized, nothing planned;
* ``plan --local`` on nothing deployed: every resource to create;
* ``deploy --local``: synth, plan, apply, and the wait until every connector runs;
* ``plan --local`` again: the no-change re-plan (refreshes every resource against the live services);
* ``destroy --local``.

Results: ``bench/results/deploy.json`` (machine, commit, date, load average). The local stack must be up
(``datapipe local up``); this never starts or stops it.

    .venv/bin/python bench/deploy_bench.py                 # 10 and 100 tables, one run each (~15 min)
    .venv/bin/python bench/deploy_bench.py --sizes 10 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _load  # noqa: E402

RESULTS = HERE / "results"


def run_size(cfg: Any, tables: int, workdir: Path) -> dict[str, Any]:
    scenario = _load.Scenario("postgres", tables, 1)
    project = workdir / scenario.name
    app = _load.write_app(project, scenario)
    out = str(project / "cdktf.out")
    common = ["--local", "--app", str(app), "--out", out]
    _load.prepare_database(cfg, scenario)
    timings: dict[str, Any] = {"tables": tables, "load_average_before": os.getloadavg()[0]}
    try:
        timings["synth_s"] = round(_load.datapipe("synth", *common), 1)
        timings["first_plan_s"] = round(_load.datapipe("plan", *common, ok=(0, 2)), 1)
        timings["deploy_s"] = round(_load.datapipe("deploy", *common, "--auto-approve"), 1)
        document = json.loads((project / "cdktf.out" / "stacks" / _load.STACK_ID / "cdk.tf.json").read_text())
        timings["resources"] = sum(len(v) for v in document.get("resource", {}).values())
        timings["no_change_replan_s"] = round(_load.datapipe("plan", *common, ok=(0, 2)), 1)
    finally:
        timings["destroy_s"] = round(_load.datapipe("destroy", *common, "--auto-approve"), 1)
        _load.drop_database(cfg, scenario)
    timings["load_average_after"] = os.getloadavg()[0]
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10,100", help="table counts, comma separated")
    parser.add_argument("--repeats", type=int, default=1, help="runs per size (medians reported)")
    parser.add_argument("--output", default=str(RESULTS / "deploy.json"))
    args = parser.parse_args(argv)
    problem = _load.stack_ready()
    if problem:
        print(problem, file=sys.stderr)
        return 2
    from datapipe_cdk.local.config import StackConfig

    cfg = StackConfig()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    runs: dict[int, list[dict[str, Any]]] = {size: [] for size in sizes}
    with tempfile.TemporaryDirectory(prefix="deploy-bench-") as tmp:
        for _ in range(args.repeats):
            for size in sizes:
                print(f"{size} tables: synth, plan, deploy, re-plan, destroy", flush=True)
                found = run_size(cfg, size, Path(tmp))
                print(f"{size} tables: {json.dumps(found)}", flush=True)
                runs[size].append(found)
    keys = ("synth_s", "first_plan_s", "deploy_s", "no_change_replan_s", "destroy_s")
    result = {
        "benchmark": "deploy",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": _load.git_commit(),
        "machine": _load.machine_facts(),
        "what": "wall seconds of each datapipe command, end to end, on the local stack (tofu + real providers)",
        "sizes": [
            {
                "tables": size,
                "resources": runs[size][0].get("resources"),
                **{key: statistics.median(r[key] for r in runs[size]) for key in keys if all(key in r for r in runs[size])},
                "runs": runs[size],
            }
            for size in sizes
        ],
    }
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(f"recorded in {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
