"""Synth at scale against the usual way: datapipe-cdk vs. prebuilt cdktf bindings, same resources, same run.

For each size (source tables; default 10, 100, 1,000 and 3,000) it times, in a fresh interpreter per
run and alternating the two sides, import + build + synth of:

* **ours**: ``bench/synth_app.py``, a generated app (one DataPipelineStack; databases of 50 tables,
  MySQL and PostgreSQL in turn, each a CdcSource and a BigQuerySink; one MicroWarehouse exposing
  every table), in the project venv;
* **baseline**: ``bench/synth_baseline.py``, the same resources written with the prebuilt
  ``cdktf-cdktf-provider-google`` bindings and generic ``TerraformResource``s for Kafka, in
  ``bench/.venv-baseline`` (created by ``bench/setup_baseline.sh`` if missing). Its resource list is
  taken from ours before timing, and both outputs are compared resource by resource.

Per run: wall time of each phase, CPU time and peak resident memory (VmHWM) of Python plus jsii's Node.js
process. Per size: medians, the baseline/ours ratios. Over sizes: a least-squares line ``a + b * tables``
per side (``b`` is the time per table), extrapolated to 10,000 tables. Then, at one size
(``--profile``), what the time is spent on: jsii round trips by kind, both sides, and a cProfile of ours.

Results: ``bench/results/synth_scale.json`` (machine, commit, date, every run, medians, fits, targets,
breakdown), ``bench/results/synth_scale.png``, and one summary line appended to
``bench/results/synth_scale_history.jsonl``. Never asserted in tests; the exit status is 1 when a target
is missed. Targets (2 cores): 1,000 tables <= 2 s and <= 200 MB; 10,000 tables <= 20 s; at every
size >= 5x faster than the baseline and <= 1/4 of its memory.

    .venv/bin/python bench/synth_bench.py                         # everything (~1 hour on 2 cores)
    .venv/bin/python bench/synth_bench.py --sizes 10,100 --profile 100 --repeats 3   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import _harness  # noqa: E402

RESULTS = HERE / "results"
BASELINE_VENV = HERE / ".venv-baseline"
BASELINE_PYTHON = BASELINE_VENV / "bin" / "python"
OURS, BASELINE = "ours", "baseline"
TARGETS = {
    "tables_1000_seconds": 2.0,
    "tables_1000_mb": 200.0,
    "tables_10000_seconds": 20.0,
    "speedup_min": 5.0,
    "memory_fraction_max": 0.25,
}
RUN_TIMEOUT = 3600
REFERENCE = re.compile(r"\$\{([a-z0-9_-]+)\.([A-Za-z0-9_-]+)\.[a-z0-9_]+\}")


# --- running one measurement ------------------------------------------------------------------------


def child_env(count_jsii: bool = False) -> dict[str, str]:
    env = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    # Bytecode cached, as users see it from the second run on (some images disable writing it, which
    # makes every run recompile: seconds of noise, tens of seconds for the baseline's 1,470 modules).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("DATAPIPE_TARGET", None)  # the production target, as `datapipe synth` without --local
    env.pop("BENCH_COUNT_JSII", None)
    if count_jsii:
        env["BENCH_COUNT_JSII"] = "1"
    return env


def command(side: str, tables: int, outdir: Path, spec: Path | None) -> list[str]:
    if side == OURS:
        return [sys.executable, str(HERE / "synth_app.py"), "--tables", str(tables), "--outdir", str(outdir)]
    assert spec is not None
    return [str(BASELINE_PYTHON), str(HERE / "synth_baseline.py"), "--spec", str(spec), "--outdir", str(outdir)]


def measure(argv: list[str], *, count_jsii: bool = False, cwd: Path, extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run one child; its own report (phases, CPU, VmHWM) plus the process wall time and a sampled tree RSS."""
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    env = {**child_env(count_jsii), **(extra_env or {})}
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd)
    sampled = 0.0
    while process.poll() is None:
        pids = [process.pid, *_harness.descendants(process.pid)]
        sampled = max(sampled, sum(_harness.status_kb(p, "VmRSS") for p in pids) / 1024)
        time.sleep(0.05)
        if time.perf_counter() - started > RUN_TIMEOUT:
            process.kill()
    out, err = process.communicate()
    wall = time.perf_counter() - started
    lines = [line for line in out.splitlines() if line.startswith("BENCH ")]
    if process.returncode != 0 or not lines:
        raise SystemExit(f"benchmark run failed (exit {process.returncode}): {' '.join(argv)}\n{err[-4000:]}")
    report: dict[str, Any] = json.loads(lines[-1].removeprefix("BENCH "))
    report["process_s"] = round(wall, 3)
    report["sampled_peak_mb"] = round(sampled, 1)
    report["load_before"] = round(load_before, 2)
    report["load_after"] = round(os.getloadavg()[0], 2)
    return report


# --- the baseline's spec and the comparison of outputs -------------------------------------------------


def synthesized(outdir: Path) -> Path:
    return outdir / "stacks" / "scale" / "cdk.tf.json"


def write_spec(synth_json: Path, spec: Path) -> int:
    """The resources of a synthesized stack, dependencies first, as the baseline reads them. Returns the count."""
    document = json.loads(synth_json.read_text())
    nodes: dict[str, tuple[str, str, dict[str, Any], list[str], set[str]]] = {}
    for kind, resources in document["resource"].items():
        for name, block in resources.items():
            attributes = {k: v for k, v in block.items() if k != "//"}
            depends_on = attributes.pop("depends_on", [])
            refs = {f"{t}.{n}" for t, n in REFERENCE.findall(json.dumps(attributes))}
            nodes[f"{kind}.{name}"] = (kind, name, attributes, depends_on, refs)
    order: list[str] = []
    seen: set[str] = set()
    for key in nodes:  # depth-first, post-order: whatever a resource references is written before it
        todo = [(key, False)]
        while todo:
            current, finished = todo.pop()
            if finished:
                order.append(current)
                continue
            if current in seen:
                continue
            seen.add(current)
            todo.append((current, True))
            todo.extend((r, False) for r in sorted(set(nodes[current][3]) | nodes[current][4]) if r not in seen)
    header = {
        "variables": document.get("variable", {}),
        "providers": {name: blocks[0] for name, blocks in document["provider"].items()},
        "required_providers": document["terraform"]["required_providers"],
    }
    with spec.open("w") as handle:
        handle.write(json.dumps({"header": header}) + "\n")
        for key in order:
            kind, name, attributes, depends_on, _ = nodes[key]
            item: dict[str, Any] = {"type": kind, "name": name, "attributes": attributes}
            if depends_on:
                item["depends_on"] = depends_on
            handle.write(json.dumps(item) + "\n")
    return len(order)


def _normal(value: Any) -> Any:
    """A block as a one-element list and as an object mean the same to Terraform; metadata is not compared."""
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items() if k != "//"}
    if isinstance(value, list):
        if len(value) == 1 and isinstance(value[0], dict):
            return _normal(value[0])
        return [_normal(v) for v in value]
    return value


def compare(ours: Path, baseline: Path) -> dict[str, Any]:
    """Resources per type in both outputs, and how many differ (missing, extra or other attributes)."""
    a = json.loads(ours.read_text())["resource"]
    b = json.loads(baseline.read_text())["resource"]
    differing: list[str] = []
    total = 0
    for kind in sorted(set(a) | set(b)):
        for name in sorted(set(a.get(kind, {})) | set(b.get(kind, {}))):
            total += 1
            if _normal(a.get(kind, {}).get(name)) != _normal(b.get(kind, {}).get(name)):
                differing.append(f"{kind}.{name}")
    return {
        "resources": total,
        "by_type": {kind: len(resources) for kind, resources in sorted(a.items())},
        "differing": len(differing),
        "differing_examples": differing[:5],
        "ours_json_bytes": ours.stat().st_size,
        "baseline_json_bytes": baseline.stat().st_size,
    }


# --- statistics ----------------------------------------------------------------------------------------


def fit(points: list[tuple[float, float]]) -> dict[str, float]:
    """Least squares ``y = a + b x``, with r^2."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    sxx = sum((x - mean_x) ** 2 for x, _ in points)
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in points)
    slope = sxy / sxx if sxx else 0.0
    intercept = mean_y - slope * mean_x
    ss_tot = sum((y - mean_y) ** 2 for _, y in points)
    ss_res = sum((y - intercept - slope * x) ** 2 for x, y in points)
    return {"intercept": intercept, "slope": slope, "r2": 1 - ss_res / ss_tot if ss_tot else 1.0}


def medians(runs: list[dict[str, Any]]) -> dict[str, float]:
    keys = [k for k, v in runs[0].items() if isinstance(v, int | float) and not isinstance(v, bool)]
    return {k: round(statistics.median(float(r[k]) for r in runs), 3) for k in keys}


# --- where the time goes -------------------------------------------------------------------------------


def _area(filename: str, function: str) -> str:
    if function == "<method 'readline' of '_io.BufferedReader' objects>":
        return "waiting for Node.js (jsii kernel: work in Node + pipe)"
    if function.startswith("<method 'flush'") or function.startswith("<method 'write' of '_io.Buffered"):
        return "writing jsii requests to the pipe"
    for marker, area in (
        ("/datapipe_cdk/", "datapipe_cdk ({module})"),
        ("/jsii/", "jsii Python runtime (serialization, references)"),
        ("/cattrs/", "jsii Python runtime (serialization, references)"),
        ("/attr/", "jsii Python runtime (serialization, references)"),
        ("/typeguard/", "typeguard (cdktf argument checks)"),
        ("/cdktf/", "cdktf Python bindings"),
        ("/constructs/", "cdktf Python bindings"),
        ("/jinja2/", "jinja2 (templates)"),
        ("/json/", "json"),
        ("<frozen importlib", "imports"),
        ("/re/", "re"),
    ):
        if marker in filename:
            if "{module}" in area:
                module = filename.split("/datapipe_cdk/", 1)[1].removesuffix(".py")
                return area.format(module=module)
            return area
    if filename.endswith(".j2"):
        return "jinja2 (templates)"
    if filename == "~":
        return "builtins ({})".format(function.split(" of ")[0].strip("<>").replace("method ", "").replace("built-in ", ""))
    return "other Python"


def profile_breakdown(prof: Path, top: int = 25) -> dict[str, Any]:
    """cProfile's own time grouped by area (jsii wait, jsii runtime, datapipe_cdk modules ...), and the top functions."""
    stats = pstats.Stats(str(prof))
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values())
    areas: dict[str, float] = defaultdict(float)
    for (filename, _line, function), (_cc, _nc, tottime, _ct, _callers) in raw.items():
        areas[_area(filename, function)] += tottime
    own = sorted(raw.items(), key=lambda item: -item[1][2])[:top]
    cumulative = sorted(
        ((k, v) for k, v in raw.items() if "/datapipe_cdk/" in k[0] or "/bench/" in k[0]), key=lambda item: -item[1][3]
    )[:top]

    def row(key: Any, value: Any) -> dict[str, Any]:
        filename, line, function = key
        where = filename.split("site-packages/")[-1].split("/work/main/")[-1]
        return {
            "function": f"{where}:{line}({function})",
            "calls": value[1],
            "own_s": round(value[2], 3),
            "cum_s": round(value[3], 3),
        }

    return {
        "profiled_s": round(total, 3),
        "by_area": {
            area: {"seconds": round(seconds, 3), "share": round(seconds / total, 3)}
            for area, seconds in sorted(areas.items(), key=lambda item: -item[1])
            if seconds >= 0.005 * total
        },
        "top_own_time": [row(k, v) for k, v in own],
        "top_cumulative_datapipe": [row(k, v) for k, v in cumulative],
    }


NODE_AREAS = (
    ("waiting for Python (kernel reads its next request)", lambda fn, url: fn == "read" and url == ""),
    ("stack traces (captureStackTrace, prepareStackTrace)",
     lambda fn, url: fn in ("captureStackTrace", "defaultPrepareStackTrace", "get stack") or "stack-trace.js" in url),
    ("cdktf token resolution (resolve.js, encoding.js)", lambda fn, url: "/cdktf/lib/tokens/" in url),
    ("garbage collector", lambda fn, url: fn == "(garbage collector)"),
    ("jsii kernel (program.js: (de)serialization, util.inspect)",
     lambda fn, url: "program.js" in url or "node:internal/util/inspect" in url),
    ("cdktf (other)", lambda fn, url: "/cdktf/" in url),
    ("constructs", lambda fn, url: "/constructs/" in url),
    ("idle", lambda fn, url: fn == "(idle)"),
)  # fmt: skip


def node_profile_breakdown(directory: Path, top: int = 20) -> dict[str, Any]:
    """Self time of the jsii kernel's Node.js process (the largest ``--cpu-prof`` profile) by area, the top
    functions, and who calls the heaviest ones (first frames outside Node's internals)."""
    profiles = sorted(directory.glob("*.cpuprofile"), key=lambda p: p.stat().st_size)
    if not profiles:
        return {"error": "no Node.js profile written"}
    document = json.loads(profiles[-1].read_text())
    nodes = {n["id"]: n for n in document["nodes"]}
    parent = {child: n["id"] for n in document["nodes"] for child in n.get("children", ())}
    self_us: dict[int, int] = defaultdict(int)
    for sample, delta in zip(document["samples"], document["timeDeltas"], strict=True):
        self_us[sample] += delta
    total = sum(self_us.values()) or 1
    areas: dict[str, float] = defaultdict(float)
    functions: dict[str, float] = defaultdict(float)
    callers: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for node_id, micros in self_us.items():
        frame = nodes[node_id]["callFrame"]
        name, url = frame["functionName"] or "(anonymous)", frame["url"]
        area = next((label for label, test in NODE_AREAS if test(name, url)), "other")
        areas[area] += micros
        where = f"{name} {url.rsplit('/', 1)[-1]}:{frame['lineNumber']}"
        functions[where] += micros
        chain, current = [], node_id
        while current in parent and len(chain) < 3:
            current = parent[current]
            outer = nodes[current]["callFrame"]
            if outer["url"] and not outer["url"].startswith("node:"):
                chain.append(f"{outer['functionName'] or '(anonymous)'} {outer['url'].rsplit('/', 1)[-1]}:{outer['lineNumber']}")
        callers[where][" <- ".join(chain)] += micros
    busy = total - areas.get("waiting for Python (kernel reads its next request)", 0) - areas.get("idle", 0)
    heavy = [f for f, _ in sorted(functions.items(), key=lambda item: -item[1]) if not f.startswith(("read ", "(idle)"))]
    return {
        "profiled_s": round(total / 1e6, 3),
        "busy_s": round(busy / 1e6, 3),
        "by_area": {
            area: {"seconds": round(us / 1e6, 3), "share_of_busy": round(us / busy, 3) if "waiting" not in area else None}
            for area, us in sorted(areas.items(), key=lambda item: -item[1])
        },
        "top_self_time": [{"function": f, "seconds": round(functions[f] / 1e6, 3)} for f in heavy[:top]],
        "callers_of_heaviest": {
            f: {chain: round(us / 1e6, 3) for chain, us in sorted(callers[f].items(), key=lambda item: -item[1])[:3]}
            for f in heavy[:6]
        },
    }


# --- machine and commit --------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in line),
        platform.processor(),
    )
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))

    def version(argv: list[str]) -> str:
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=60).stdout.strip()
        except OSError:
            return "unavailable"

    def packages(python: Path | str, names: tuple[str, ...]) -> str:
        code = "import importlib.metadata as m, sys; print(' '.join(p + '==' + m.version(p) for p in sys.argv[1:]))"
        return version([str(python), "-c", code, *names])

    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory_gb": round(mem_kb / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "node": version(["node", "--version"]),
        "ours_packages": packages(sys.executable, ("cdktf", "jsii", "constructs")),
        "ours_core": version(
            [sys.executable, "-c", "try:\n import datapipe_cdk._cdk as c; print(c.CORE)\nexcept ImportError:\n print('cdktf')"]
        ),
        "baseline_packages": packages(BASELINE_PYTHON, ("cdktf", "jsii", "constructs", "cdktf-cdktf-provider-google")),
    }


def commit() -> dict[str, str]:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, cwd=ROOT).stdout.strip()

    return {"describe": git("describe", "--always", "--dirty", "--abbrev=7"), "sha": git("rev-parse", "HEAD")}


# --- the report ------------------------------------------------------------------------------------------


def evaluate(sizes: dict[int, dict[str, Any]], fits: dict[str, Any]) -> dict[str, Any]:
    """Each target with the measured (or fitted) figure and whether it is met."""
    checks: dict[str, Any] = {}
    if 1000 in sizes:
        ours = sizes[1000][OURS]["median"]
        checks["tables_1000_seconds"] = {"target": TARGETS["tables_1000_seconds"], "measured": ours["total_s"]}
        checks["tables_1000_mb"] = {"target": TARGETS["tables_1000_mb"], "measured": ours["peak_mb"]}
    if 10000 in sizes:
        checks["tables_10000_seconds"] = {
            "target": TARGETS["tables_10000_seconds"],
            "measured": sizes[10000][OURS]["median"]["total_s"],
        }
    elif OURS in fits:
        predicted = fits[OURS]["total_s"]["intercept"] + 10000 * fits[OURS]["total_s"]["slope"]
        checks["tables_10000_seconds"] = {"target": TARGETS["tables_10000_seconds"], "fitted": round(predicted, 2)}
    for tables, entry in sizes.items():
        ratios = entry.get("ratios")
        if ratios:
            checks[f"speedup_{tables}"] = {"target": TARGETS["speedup_min"], "measured": ratios["speedup"]}
            checks[f"memory_fraction_{tables}"] = {
                "target": TARGETS["memory_fraction_max"],
                "measured": ratios["memory_fraction"],
            }
    for name, check in checks.items():
        value = check.get("measured", check.get("fitted"))
        lower_is_better = not name.startswith("speedup")
        check["met"] = value <= check["target"] if lower_is_better else value >= check["target"]
    return checks


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted(int(s) for s in result["sizes"])
    fig, (ax_time, ax_mem, ax_phase) = plt.subplots(1, 3, figsize=(17, 5.2))
    colors = {OURS: "tab:blue", BASELINE: "tab:red"}
    labels = {OURS: "datapipe-cdk", BASELINE: "prebuilt bindings (baseline)"}
    for side in (OURS, BASELINE):
        xs = [n for n in sizes if side in result["sizes"][str(n)]]
        if not xs:
            continue
        runs = [result["sizes"][str(n)][side]["runs"] for n in xs]
        t = [result["sizes"][str(n)][side]["median"]["total_s"] for n in xs]
        m = [result["sizes"][str(n)][side]["median"]["peak_mb"] for n in xs]
        t_err = [
            [tm - min(r["total_s"] for r in rs) for tm, rs in zip(t, runs, strict=True)],
            [max(r["total_s"] for r in rs) - tm for tm, rs in zip(t, runs, strict=True)],
        ]
        ax_time.errorbar(xs, t, yerr=t_err, fmt="o-", color=colors[side], label=f"{labels[side]} (median, min-max)", capsize=3)
        ax_mem.plot(xs, m, "o-", color=colors[side], label=labels[side])
        line = result["fits"].get(side)
        if line:
            grid = [10, 30, 100, 300, 1000, 3000, 10000]
            a, b = line["total_s"]["intercept"], line["total_s"]["slope"]
            ax_time.plot(grid, [a + b * g for g in grid], ":", color=colors[side], alpha=0.7,
                         label=f"fit: {a:.2f} s + {b * 1000:.1f} ms/table")  # fmt: skip
    ax_time.scatter([1000, 10000], [TARGETS["tables_1000_seconds"], TARGETS["tables_10000_seconds"]], marker="*", s=160,
                    color="green", zorder=5, label="targets (1k: 2 s, 10k: 20 s)")  # fmt: skip
    ax_mem.scatter([1000], [TARGETS["tables_1000_mb"]], marker="*", s=160, color="green", zorder=5, label="target (1k: 200 MB)")
    for ax, title, unit in ((ax_time, "import + synth time", "seconds"), (ax_mem, "peak memory (Python + Node.js)", "MB")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("source tables")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    width = 0.38
    for offset, side in ((-width / 2, OURS), (width / 2, BASELINE)):
        xs = [i for i, n in enumerate(sizes) if side in result["sizes"][str(n)]]
        bottom = [0.0] * len(xs)
        for phase, hatch in (("import_s", ""), ("build_s", "//"), ("synth_s", "..")):
            values = [result["sizes"][str(sizes[i])][side]["median"][phase] for i in xs]
            ax_phase.bar([i + offset for i in xs], values, width, bottom=bottom, color=colors[side], hatch=hatch,
                         edgecolor="white", label=f"{labels[side]}: {phase.removesuffix('_s')}")  # fmt: skip
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax_phase.set_xticks(range(len(sizes)), [str(n) for n in sizes])
    ax_phase.set_xlabel("source tables")
    ax_phase.set_ylabel("seconds (median, stacked)")
    ax_phase.set_title("phases")
    ax_phase.legend(fontsize=7)
    facts = result["machine"]
    fig.suptitle(
        f"synth at scale: {facts['cpus']} x {facts['cpu']}, Python {facts['python']}, Node {facts['node']}; "
        f"commit {result['commit']['describe']}, {result['date']}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- main ------------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10,100,1000,3000", help="source tables per app, comma separated")
    parser.add_argument("--repeats", type=int, default=None, help="runs per side and size (default: 5 up to 100 tables, else 3)")
    parser.add_argument("--baseline-max", type=int, default=3000, help="largest size the baseline runs at (default 3000)")
    parser.add_argument("--no-baseline", action="store_true", help="ours only (no ratios)")
    parser.add_argument("--profile", type=int, default=1000, help="size of the breakdown runs (jsii counts, cProfile); 0: none")
    parser.add_argument("--output", default=str(RESULTS / "synth_scale.json"), help="where the JSON goes (PNG beside it)")
    parser.add_argument("--replot", metavar="JSON", help="only redraw the PNG of an earlier results file")
    args = parser.parse_args()
    if args.replot:
        plot(json.loads(Path(args.replot).read_text()), Path(args.replot).with_suffix(".png"))
        return 0
    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    with_baseline = not args.no_baseline
    if with_baseline:
        subprocess.run(["bash", str(HERE / "setup_baseline.sh")], check=True)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="synth-bench-"))
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    result: dict[str, Any] = {
        "benchmark": "synth_scale",
        "date": started,
        "commit": commit(),
        "machine": machine(),
        "load_average_start": os.getloadavg(),
        "app": "bench/synth_app.py (GROUP=50 tables per CdcSource + BigQuerySink, MySQL/PostgreSQL alternating, one "
        "MicroWarehouse exposing every table); baseline: bench/synth_baseline.py replaying the same resources",
        "targets": TARGETS,
        "sizes": {},
    }
    try:
        print("warm-up (bytecode, page cache) ...", flush=True)
        warm = scratch / "warm-ours"
        measure(command(OURS, 10, warm, None), cwd=scratch)
        if with_baseline:
            write_spec(synthesized(warm), scratch / "warm.jsonl")
            measure(command(BASELINE, 10, scratch / "warm-baseline", scratch / "warm.jsonl"), cwd=scratch)
        for tables in sizes:
            repeats = args.repeats or (5 if tables <= 100 else 3)
            both = with_baseline and tables <= args.baseline_max
            spec = scratch / f"spec-{tables}.jsonl"
            runs: dict[str, list[dict[str, Any]]] = {OURS: [], BASELINE: []}
            kept: dict[str, Path] = {}
            for run in range(repeats):
                for side in (OURS, BASELINE) if both else (OURS,):
                    outdir = scratch / f"{side}-{tables}-{run}"
                    report = measure(command(side, tables, outdir, spec), cwd=scratch)
                    runs[side].append(report)
                    print(
                        f"{tables:>6} tables  {side:8s} run {run + 1}/{repeats}: {report['total_s']:8.2f} s "
                        f"(import {report['import_s']:.2f}, build {report['build_s']:.2f}, synth {report['synth_s']:.2f}; "
                        f"cpu {report['cpu_s']:.1f} s)  peak {report['peak_mb']:7.1f} MB  load {report['load_after']}",
                        flush=True,
                    )
                    if run == 0:
                        kept[side] = outdir
                        if side == OURS and both:
                            write_spec(synthesized(outdir), spec)
                    else:
                        shutil.rmtree(outdir, ignore_errors=True)
            entry: dict[str, Any] = {}
            for side, side_runs in runs.items():
                if side_runs:
                    entry[side] = {"runs": side_runs, "median": medians(side_runs)}
            ours_median = entry[OURS]["median"]
            if both:
                base_median = entry[BASELINE]["median"]
                entry["same_resources"] = compare(synthesized(kept[OURS]), synthesized(kept[BASELINE]))
                entry["ratios"] = {
                    "speedup": round(base_median["total_s"] / ours_median["total_s"], 2),
                    "cpu_speedup": round(base_median["cpu_s"] / ours_median["cpu_s"], 2),
                    "speedup_excluding_import": round(
                        (base_median["build_s"] + base_median["synth_s"]) / (ours_median["build_s"] + ours_median["synth_s"]), 2
                    ),
                    "memory_fraction": round(ours_median["peak_mb"] / base_median["peak_mb"], 3),
                }
                print(f"{tables:>6} tables  same resources: {entry['same_resources']['resources']} compared, "
                      f"{entry['same_resources']['differing']} differing; ratios {entry['ratios']}", flush=True)  # fmt: skip
            else:
                entry["resources"] = sum(len(v) for v in json.loads(synthesized(kept[OURS]).read_text())["resource"].values())
            for path in kept.values():
                shutil.rmtree(path, ignore_errors=True)
            result["sizes"][str(tables)] = entry

        fits: dict[str, Any] = {}
        for side in (OURS, BASELINE):
            points = {
                metric: [(int(n), float(r[metric])) for n, e in result["sizes"].items() if side in e for r in e[side]["runs"]]
                for metric in ("total_s", "cpu_s", "peak_mb", "build_s", "synth_s", "import_s")
            }
            if len({x for x, _ in points["total_s"]}) >= 2:
                fits[side] = {metric: fit(p) for metric, p in points.items()}
                fits[side]["ms_per_table"] = round(fits[side]["total_s"]["slope"] * 1000, 3)
                fits[side]["cpu_ms_per_table"] = round(fits[side]["cpu_s"]["slope"] * 1000, 3)
                fits[side]["mb_per_table"] = round(fits[side]["peak_mb"]["slope"], 4)
                fits[side]["predicted_10000_s"] = round(
                    fits[side]["total_s"]["intercept"] + 10000 * fits[side]["total_s"]["slope"], 2
                )
        result["fits"] = fits

        if args.profile:
            result["breakdown"] = breakdown(
                args.profile, scratch, with_baseline and args.profile <= args.baseline_max, output.parent
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    result["load_average_end"] = os.getloadavg()
    result["targets_checked"] = evaluate({int(k): v for k, v in result["sizes"].items()}, result["fits"])
    output.write_text(json.dumps(result, indent=1) + "\n")
    plot(result, output.with_suffix(".png"))
    summary = {
        "date": result["date"],
        "commit": result["commit"]["describe"],
        "load_average_start": result["load_average_start"],
        "sizes": {
            n: {
                side: {k: e[side]["median"][k] for k in ("total_s", "cpu_s", "peak_mb")} for side in (OURS, BASELINE) if side in e
            }
            | ({"ratios": e["ratios"]} if "ratios" in e else {})
            for n, e in result["sizes"].items()
        },
        "ms_per_table": {side: f["ms_per_table"] for side, f in result["fits"].items()},
        "targets_met": {name: c["met"] for name, c in result["targets_checked"].items()},
    }
    with (output.parent / "synth_scale_history.jsonl").open("a") as handle:
        handle.write(json.dumps(summary) + "\n")
    print_summary(result)
    print(f"recorded in {output.relative_to(ROOT) if output.is_relative_to(ROOT) else output} (+ .png)")
    return 0 if all(c["met"] for c in result["targets_checked"].values()) else 1


def breakdown(tables: int, scratch: Path, with_baseline: bool, results: Path) -> dict[str, Any]:
    """At one size: jsii round trips by kind on both sides, and a cProfile of ours (its .prof kept under results/)."""
    print(f"breakdown at {tables} tables (jsii round trips, cProfile, Node.js --cpu-prof) ...", flush=True)
    found: dict[str, Any] = {"tables": tables}
    outdir = scratch / f"count-{OURS}"
    found[OURS] = measure(command(OURS, tables, outdir, None), count_jsii=True, cwd=scratch)
    spec = scratch / "count.jsonl"
    if with_baseline:
        write_spec(synthesized(outdir), spec)
        found[BASELINE] = measure(command(BASELINE, tables, scratch / f"count-{BASELINE}", spec), count_jsii=True, cwd=scratch)
    prof = results / f"profile-ours-{tables}.prof"
    argv = command(OURS, tables, scratch / "profile-ours", None)
    measure([argv[0], "-m", "cProfile", "-o", str(prof), *argv[1:]], cwd=scratch)
    found["cprofile_ours"] = profile_breakdown(prof)
    found["cprofile_ours"]["file"] = str(prof.relative_to(ROOT) if prof.is_relative_to(ROOT) else prof)
    # Node.js's own profile: jsii starts `$JSII_NODE` (here a wrapper adding --cpu-prof; NODE_OPTIONS refuses it)
    # and the kernel's child process inherits the flag.
    profiles = scratch / "node-profiles"
    profiles.mkdir(exist_ok=True)
    wrapper = scratch / "node-cpu-prof.sh"
    wrapper.write_text(f'#!/bin/sh\nexec {shutil.which("node") or "node"} --cpu-prof --cpu-prof-dir={profiles} "$@"\n')
    wrapper.chmod(0o755)
    found["node_profile_ours"] = measure(
        command(OURS, tables, scratch / "node-profile-ours", None), cwd=scratch, extra_env={"JSII_NODE": str(wrapper)}
    )
    found["node_profile_ours"]["profile"] = node_profile_breakdown(profiles)
    return found


def print_summary(result: dict[str, Any]) -> None:
    print()
    print(f"{'tables':>7} | {'ours s':>8} {'ours MB':>8} | {'base s':>8} {'base MB':>8} | ", end="")
    print(f"{'speedup':>7} {'cpu x':>6} {'mem frac':>8} | same")
    for n, e in sorted(result["sizes"].items(), key=lambda item: int(item[0])):
        o = e[OURS]["median"]
        b = e.get(BASELINE, {}).get("median")
        r = e.get("ratios", {})
        same = e.get("same_resources", {})
        print(
            f"{n:>7} | {o['total_s']:8.2f} {o['peak_mb']:8.1f} | "
            + (f"{b['total_s']:8.2f} {b['peak_mb']:8.1f} | " if b else f"{'-':>8} {'-':>8} | ")
            + (
                f"{r['speedup']:7.2f} {r['cpu_speedup']:6.2f} {r['memory_fraction']:8.3f} | "
                if r
                else f"{'-':>7} {'-':>6} {'-':>8} | "
            )
            + (f"{same['resources']} resources, {same['differing']} differ" if same else "")
        )
    for side, f in result["fits"].items():
        print(f"fit {side:8s}: {f['total_s']['intercept']:.2f} s + {f['ms_per_table']:.2f} ms/table "
              f"(r2 {f['total_s']['r2']:.3f}; cpu {f['cpu_ms_per_table']:.2f} ms/table; {f['mb_per_table']:.3f} MB/table); "
              f"10,000 tables: {f['predicted_10000_s']:.1f} s")  # fmt: skip
    for name, check in result["targets_checked"].items():
        value = check.get("measured", check.get("fitted"))
        print(f"target {name:28s} {value!s:>9} vs {check['target']!s:>6}: {'met' if check['met'] else 'MISSED'}")
    if "breakdown" in result:
        b = result["breakdown"]
        for side in (OURS, BASELINE):
            if side in b and "jsii" in b[side]:
                j = b[side]["jsii"]
                print(f"jsii {side:8s} at {b['tables']} tables: {j['round_trips']} round trips, {j['round_trip_s']} s waiting; "
                      + ", ".join(f"{k} {v['calls']}x/{v['seconds']}s" for k, v in j["by_kind"].items()))  # fmt: skip
        for area, value in list(b["cprofile_ours"]["by_area"].items())[:10]:
            print(f"  cProfile ours: {value['share'] * 100:5.1f} %  {value['seconds']:7.2f} s  {area}")
        node = b.get("node_profile_ours", {}).get("profile", {})
        for area, value in list(node.get("by_area", {}).items())[:8]:
            print(f"  Node.js ours:  {value['seconds']:7.2f} s  {area}")


if __name__ == "__main__":
    sys.exit(main())
