"""Soak: one steady rate for a long time (default 30 minutes); lag and every service's memory must stay flat.

It deploys the same generated app as ``load_bench.py`` (one engine, N tables), writes inserts, updates and
deletes at ``--rate`` rows/s, and every ``--sample-seconds`` (default 10) records the backlog before Kafka
and before the changelogs, the end-to-end lag (age of the oldest change not in its changelog yet), and the
CPU and RSS of every service process (``<run_dir>/pids/*.pid``), the generator and this benchmark. The
default rate is half the highest sustained rate of the same scenario in ``bench/results/load.json``.

Flat means: over the second half of the soak, the end-to-end lag grows by less than ``--lag-slope`` seconds
per minute (default 0.05) and no service's RSS grows by more than ``--rss-growth`` percent (default 10).

Results: ``bench/results/soak.json`` and ``bench/results/soak.png`` (lag, backlog, RSS and CPU over time).
The local stack must be up; this never starts or stops it, and removes its own app and database after.

    .venv/bin/python bench/soak.py --engine postgres --tables 1 --rate 5          # 30 minutes
    .venv/bin/python bench/soak.py --engine mariadb --rate 2 --minutes 2           # a quick check
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _load  # noqa: E402

RESULTS = HERE / "results"


def default_rate(scenario: _load.Scenario) -> float | None:
    """Half the highest sustained rate of this scenario in the latest full load run, if there is one."""
    path = RESULTS / "load.json"
    if not path.is_file():
        return None
    for found in json.loads(path.read_text()).get("scenarios", []):
        if found.get("engine") == scenario.engine and found.get("tables") == scenario.tables:
            rate = (found.get("saturation") or {}).get("highest_sustained_rate")
            return rate / 2 if rate else None
    return None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", default="postgres", choices=_load.ENGINES)
    parser.add_argument("--tables", type=int, default=1)
    parser.add_argument("--partitions", type=int, default=1, help="partitions per table topic (sink tasks = min(this, 8))")
    parser.add_argument("--rate", type=float, default=None, help="rows/s (default: half the sustained rate in load.json)")
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--sample-seconds", type=float, default=10.0, help="how often lag, CPU and RSS are sampled")
    parser.add_argument("--drain-seconds", type=float, default=300.0, help="longest wait for the backlog at the end")
    parser.add_argument("--lag-slope", type=float, default=0.05, help="flat: lag grows less than this many s per minute")
    parser.add_argument("--rss-growth", type=float, default=10.0, help="flat: no service's RSS grows more than this %%")
    parser.add_argument("--keep", action="store_true", help="leave the app deployed and its database (debugging)")
    parser.add_argument("--output", default=str(RESULTS / "soak.json"))
    args = parser.parse_args(argv)
    args.scenario = _load.Scenario(args.engine, args.tables, args.partitions)
    if args.rate is None:
        args.rate = default_rate(args.scenario)
        if args.rate is None:
            parser.error("--rate is required: bench/results/load.json has no sustained rate for this scenario")
    args.output = Path(args.output)
    return args


def flatness(series: list[dict[str, Any]], cpu: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    """Slopes over the second half: lag (s per minute) and each service's RSS (% over the half)."""
    if not series:
        return {"flat": False, "reason": "no samples"}
    middle = series[0]["t"] + (series[-1]["t"] - series[0]["t"]) / 2
    half = [s for s in series if s["t"] >= middle]
    lag_slope = _load.slope([(s["t"] / 60, s["end_to_end_lag_s"]) for s in half])
    backlog_slope = _load.slope([(s["t"] / 60, s["waiting_for_changelog"]) for s in half])
    rss: dict[str, Any] = {}
    for name in sorted({n for sample in cpu for n in sample["services"]}):
        points = [(s["t"], s["services"][name]["rss_mb"]) for s in cpu if s["t"] >= middle and name in s["services"]]
        if len(points) < 2:
            continue
        start_mb = points[0][1] or 1.0
        growth = _load.slope(points) * (points[-1][0] - points[0][0])
        rss[name] = {
            "start_mb": points[0][1],
            "end_mb": points[-1][1],
            "max_mb": max(p[1] for p in points),
            "growth_pct": round(100 * growth / start_mb, 1),
        }
    growing = [n for n, r in rss.items() if r["growth_pct"] > args.rss_growth]
    lag_flat = lag_slope < args.lag_slope
    return {
        "flat": lag_flat and not growing,
        "lag_slope_s_per_min": round(lag_slope, 4),
        "backlog_slope_rows_per_min": round(backlog_slope, 1),
        "lag_flat": lag_flat,
        "rss_second_half": rss,
        "rss_growing": growing,
    }


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = result["timeline"]
    cpu = result["cpu_timeline"]
    if not series:
        return
    t0 = series[0]["t"]
    fig, (ax_lag, ax_rss, ax_cpu) = plt.subplots(3, 1, figsize=(11, 10), sharex=True)
    minutes = [(s["t"] - t0) / 60 for s in series]
    ax_lag.plot(minutes, [s["end_to_end_lag_s"] for s in series], color="tab:red", label="end-to-end lag (s)")
    ax_lag.set_ylabel("seconds")
    backlog = ax_lag.twinx()
    backlog.plot(minutes, [s["waiting_for_kafka"] for s in series], ":", label="rows waiting for Kafka")
    backlog.plot(minutes, [s["waiting_for_changelog"] for s in series], "--", label="rows waiting for the changelog")
    backlog.set_ylabel("rows")
    handles = ax_lag.get_legend_handles_labels()
    extra = backlog.get_legend_handles_labels()
    ax_lag.legend(handles[0] + extra[0], handles[1] + extra[1], fontsize=8, loc="upper left")
    flat = result["flatness"]
    ax_lag.set_title(
        f"soak {result['scenario']} at {result['rate']:.0f} rows/s for {result['minutes']:.0f} min: "
        f"{'flat' if flat.get('flat') else 'NOT flat'} (lag slope {flat.get('lag_slope_s_per_min')} s/min)",
        fontsize=10,
    )
    names = sorted({n for sample in cpu for n in sample["services"]})
    for name in names:
        points = [((s["t"] - t0) / 60, s["services"][name]) for s in cpu if name in s["services"]]
        ax_rss.plot([p[0] for p in points], [p[1]["rss_mb"] for p in points], label=name)
        cpu_points = [(m, e["cpu_pct"]) for m, e in points if "cpu_pct" in e]
        if cpu_points:
            ax_cpu.plot([p[0] for p in cpu_points], [p[1] for p in cpu_points], label=name)
    ax_rss.set_ylabel("RSS (MB)")
    ax_rss.legend(fontsize=7, ncol=3)
    ax_cpu.set_ylabel("CPU (% of one core)")
    ax_cpu.set_xlabel("minutes")
    ax_cpu.legend(fontsize=7, ncol=3)
    for ax in (ax_lag, ax_rss, ax_cpu):
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from datapipe_cdk.local.config import StackConfig

    reason = _load.stack_ready()
    if reason:
        print(
            f"the local stack is not ready: {reason}\nstart it with `datapipe local up` (this benchmark never does)",
            file=sys.stderr,
        )
        return 2
    cfg = StackConfig()
    scenario = args.scenario
    workdir = Path(tempfile.mkdtemp(prefix="datapipe-soak-"))
    project_dir = workdir / scenario.name
    app = _load.write_app(project_dir, scenario)
    out = project_dir / "cdktf.out"
    result: dict[str, Any] = {
        "benchmark": "soak",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": _load.git_commit(),
        "machine": _load.machine_facts(),
        "scenario": scenario.name,
        "rate": args.rate,
        "minutes": args.minutes,
        "sample_seconds": args.sample_seconds,
    }
    instruments: _load.Instruments | None = None
    _load.prepare_database(cfg, scenario)
    try:
        result["deploy_s"] = round(_load.datapipe("deploy", *_load.deploy_args(app, out)), 1)
        project, table_pipes = _load.pipes(_load.manifest(out))
        result["connectors"] = _load.connector_facts(cfg, [_load.SOURCE_ID, _load.SINK_ID])
        result["first_rows_landed_s"] = round(_load.wait_for_flow(cfg, scenario, project, table_pipes, timeout=600), 1)
        instruments = _load.Instruments.start(
            cfg,
            scenario,
            project,
            table_pipes,
            project_dir,
            poll_interval=args.sample_seconds,
            view_interval=max(args.sample_seconds, 30.0),
            sample_interval=args.sample_seconds,
            samples_per_second=5.0,
        )
        print(f"soak: {scenario.name} at {args.rate:.1f} rows/s for {args.minutes:.0f} min", flush=True)
        started = time.time()
        instruments.generator.set_rate(args.rate)
        while time.time() - started < args.minutes * 60:
            time.sleep(min(60.0, args.minutes * 60 - (time.time() - started)))
            latest = instruments.poller.latest() or {}
            print(
                f"  {(time.time() - started) / 60:5.1f} min: written {instruments.generator.written}, "
                f"waiting {latest.get('waiting_changelog')} samples",
                flush=True,
            )
        instruments.generator.set_rate(0)
        ended = time.time()
        while not instruments.drained() and time.time() - ended < args.drain_seconds:
            time.sleep(2.0)
        result["drained_s"] = round(time.time() - ended, 1) if instruments.drained() else None
        instruments.stop()
        commits = _load.CommitLog(instruments.commits_path)
        by_topic = {p.topic: p for p in table_pipes}
        rows = _load.sample_latencies(instruments.tail.samples, commits, by_topic)
        result["timeline"] = _load.lag_series(instruments.poller.snapshots, commits, instruments.base)
        result["cpu_timeline"] = instruments.sampler.samples
        result["latency"] = _load.stage_summary([r for r in rows if started <= r["committed"] < ended])
        result["achieved_rows_per_s"] = round(commits.written_between(started, ended) / (ended - started), 2)
        result["flatness"] = flatness([s for s in result["timeline"] if s["t"] <= ended], instruments.sampler.samples, args)
        result["poller_errors"] = instruments.poller.errors[-20:]
        instruments = None
    finally:
        if instruments is not None:
            instruments.stop()
        if not args.keep:
            try:
                result["destroy_s"] = round(_load.datapipe("destroy", *_load.deploy_args(app, out)), 1)
            finally:
                _load.drop_database(cfg, scenario)
        shutil.rmtree(workdir, ignore_errors=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1, default=str) + "\n")
    plot(result, args.output.with_suffix(".png"))
    flat = result.get("flatness", {})
    print(f"soak {'flat' if flat.get('flat') else 'NOT flat'}: {json.dumps(flat)}")
    print(f"recorded in {args.output} (+ .png)")
    return 0 if flat.get("flat") else 1


if __name__ == "__main__":
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    sys.exit(main())
