"""Throughput and latency under load, with the ceilings measured in the same run.

For each scenario (MariaDB and PostgreSQL, 1 and 20 tables) it deploys its own app on the running local
stack (``datapipe deploy --local --app <generated app> --auto-approve``), then writes inserts, updates and
deletes (60/30/10) at stepped rates for ``--step-seconds`` each (default: 2 rows/s, the low-rate latency,
then 500, 1k, 2k, 5k, 10k rows/s for 60 s). After each step it lets the pipeline drain (bounded). Per step:

* achieved rows/s at the source (generator commits), in Kafka (records by record time) and in the
  warehouse (changelog row counts);
* per-stage latency (p50/p95/p99/max) of sampled changes: commit -> Debezium -> Kafka -> changelog
  (``_kafka.insertTime``) -> latest-state view; changes that never arrived count as infinitely late;
* rows waiting before Kafka and before the changelogs, the sink group's lag and the end-to-end lag (the
  age of the oldest change not in its changelog yet) over time;
* CPU and RSS of every service process (``<run_dir>/pids/*.pid``), the generator and the benchmark.

A step is *sustained* when the source reached 90 % of the rate and what was left waiting at the end of the
step landed within ``SETTLE_S`` (15 s) after it: the backlog did not build up. (The changelog rate during the
step trails the source rate by the pipeline's latency, so it is reported but not judged.) Otherwise the
stage where rows waited is named the bottleneck, and by default the higher rates are skipped
(``--all-rates`` runs them). ``--reanalyse load.json`` recomputes the verdicts of a recorded run.

Ceilings, in the same run: Kafka's own producer benchmark (``ProducerPerformance``) against the same broker
with records the size of ours, and the emulator's raw ``insertAll`` rate in batches of 1,000-5,000 rows.
Our throughput is reported as a fraction of each.

Results: ``bench/results/load.json`` (``load_smoke.json`` with ``--smoke``), ``load_throughput.png``
(throughput and lag per rate), ``load_latency.png`` (latency ECDF per rate and stage), ``load_timeline.png``
(backlog, lag and CPU over time). The local stack must be up; this never starts or stops it, and removes
its own app and databases (``datapipe destroy --local``) when done.

    .venv/bin/python bench/load_bench.py --smoke            # a few minutes: tiny rates, 10 s steps
    .venv/bin/python bench/load_bench.py                    # the full run
    .venv/bin/python bench/load_bench.py --engines postgres --tables 20 --partitions 8 --rates 2,500,1000
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
SETTLE_S = 15.0
"""A step is sustained when its backlog landed within this many seconds after it (three warehouse polls)."""
TARGETS = {
    "sustained_rows_per_s": 5000,
    "low_rate_p99_s": 1.0,
    "rate_1000_p50_s": 1.0,
    "rate_1000_p99_s": 3.0,
}
FULL = {
    "rates": "2,500,1000,2000,5000,10000",
    "step_seconds": 60.0,
    "drain_seconds": 120.0,
    "poll": 5.0,
    "view_poll": 10.0,
    "producer_records": 500_000,
    "insert_seconds": 15.0,
    "insert_batches": 40,
}
SMOKE = {
    "rates": "1,5",
    "step_seconds": 10.0,
    "drain_seconds": 90.0,
    "poll": 2.0,
    "view_poll": 4.0,
    "producer_records": 20_000,
    "insert_seconds": 3.0,
    "insert_batches": 2,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--smoke", action="store_true", help="a quick check: 1 table per engine, rates 1 and 5 rows/s, 10 s steps"
    )
    parser.add_argument("--engines", default="mariadb,postgres", help="comma separated: mariadb, postgres")
    parser.add_argument("--tables", default=None, help="table counts, comma separated (default 1,20; smoke: 1)")
    parser.add_argument("--partitions", type=int, default=1, help="partitions per table topic (sink tasks = min(this, 8))")
    parser.add_argument("--rates", default=None, help=f"rows/s per step, comma separated (default {FULL['rates']})")
    parser.add_argument("--step-seconds", type=float, default=None, help="seconds per step (default 60; smoke 10)")
    parser.add_argument("--drain-seconds", type=float, default=None, help="longest wait for the backlog after a step")
    parser.add_argument("--all-rates", action="store_true", help="run every rate even after a step was not sustained")
    parser.add_argument("--samples-per-second", type=float, default=20.0, help="changes decoded and timed per second")
    parser.add_argument("--no-ceilings", action="store_true", help="skip the Kafka producer and emulator insertAll ceilings")
    parser.add_argument("--keep", action="store_true", help="leave the last app deployed and its databases (debugging)")
    parser.add_argument("--output", default=None, help="results JSON (default bench/results/load.json or load_smoke.json)")
    parser.add_argument("--reanalyse", default=None, help="recompute the verdicts, ratios and plots of this recorded run")
    args = parser.parse_args(argv)
    preset = SMOKE if args.smoke else FULL
    args.tables = args.tables or ("1" if args.smoke else "1,20")
    args.rates = [float(r) for r in (args.rates or preset["rates"]).split(",")]
    args.step_seconds = args.step_seconds or preset["step_seconds"]
    args.drain_seconds = args.drain_seconds or preset["drain_seconds"]
    args.poll = preset["poll"]
    args.view_poll = preset["view_poll"]
    args.producer_records = preset["producer_records"]
    args.insert_seconds = preset["insert_seconds"]
    args.insert_batches = preset["insert_batches"]
    args.output = Path(args.output or RESULTS / ("load_smoke.json" if args.smoke else "load.json"))
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = sorted(set(engines) - set(_load.ENGINES))
    if unknown:
        parser.error(f"unknown engine(s) {', '.join(unknown)}: choose from {', '.join(_load.ENGINES)}")
    args.scenarios = [
        _load.Scenario(engine, int(count), args.partitions)
        for engine in engines
        for count in args.tables.split(",")
        if count.strip()
    ]
    return args


def run_scenario(cfg: Any, scenario: _load.Scenario, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Deploy, step through the rates, measure, destroy. Returns the scenario's results."""
    project_dir = workdir / scenario.name
    app = _load.write_app(project_dir, scenario)
    out = project_dir / "cdktf.out"
    result: dict[str, Any] = {
        "scenario": scenario.name,
        "engine": scenario.engine,
        "tables": scenario.tables,
        "partitions": scenario.partitions,
        "steps": [],
    }
    print(f"[{scenario.name}] creating database {scenario.database} and deploying", flush=True)
    _load.prepare_database(cfg, scenario)
    instruments: _load.Instruments | None = None
    try:
        result["deploy_s"] = round(_load.datapipe("deploy", *_load.deploy_args(app, out)), 1)
        project, table_pipes = _load.pipes(_load.manifest(out))
        by_topic = {p.topic: p for p in table_pipes}
        result["connectors"] = _load.connector_facts(cfg, [_load.SOURCE_ID, _load.SINK_ID])
        result["first_rows_landed_s"] = round(_load.wait_for_flow(cfg, scenario, project, table_pipes, timeout=600), 1)
        print(
            f"[{scenario.name}] deployed in {result['deploy_s']} s; first rows landed after {result['first_rows_landed_s']} s",
            flush=True,
        )
        instruments = _load.Instruments.start(
            cfg,
            scenario,
            project,
            table_pipes,
            project_dir,
            poll_interval=args.poll,
            view_interval=args.view_poll,
            sample_interval=args.poll,
            samples_per_second=args.samples_per_second,
        )
        for rate in args.rates:
            step = {"rate": rate, "start": time.time()}
            instruments.generator.set_rate(rate)
            time.sleep(args.step_seconds / 2)
            step["sink_threads"] = sink_threads(cfg)  # what the sink does mid-step: the bottleneck's evidence
            time.sleep(max(0.0, step["start"] + args.step_seconds - time.time()))
            instruments.generator.set_rate(0)
            step["end"] = time.time()
            while not instruments.drained() and time.time() - step["end"] < args.drain_seconds:
                time.sleep(1.0)
            step["drained"] = instruments.drained()
            step["drain_end"] = time.time()
            result["steps"].append(step)
            latest = instruments.poller.latest() or {}
            print(
                f"[{scenario.name}] {rate:>7.0f} rows/s: written {instruments.generator.written - instruments.base['written']}, "
                f"in Kafka {latest.get('kafka', 0) - instruments.base['kafka']}, "
                f"in changelogs {latest.get('changelog', 0) - instruments.base['changelog']}; "
                f"{'drained' if step['drained'] else 'NOT drained'} {step['drain_end'] - step['end']:.0f} s after the step",
                flush=True,
            )
            print(f"[{scenario.name}]          sink task threads mid-step: {step['sink_threads']}", flush=True)
            if not step["drained"] and not args.all_rates:
                print(
                    f"[{scenario.name}] not sustained at {rate:.0f} rows/s: higher rates skipped (--all-rates runs them)",
                    flush=True,
                )
                break
        instruments.stop()
        result["connectors_after"] = _load.connector_facts(cfg, [_load.SOURCE_ID, _load.SINK_ID])
        analyse(result, instruments, by_topic)
        instruments = None
    finally:
        if instruments is not None:
            instruments.stop()
        if args.keep:
            print(f"[{scenario.name}] kept deployed (--keep): datapipe destroy {' '.join(_load.deploy_args(app, out))}")
        else:
            try:
                result["destroy_s"] = round(_load.datapipe("destroy", *_load.deploy_args(app, out)), 1)
            finally:
                _load.drop_database(cfg, scenario)
    return result


def sink_threads(cfg: Any) -> dict[str, Any]:
    """The sink task threads' stacks, sampled (see ``_load.sink_thread_profile``); an error is recorded, not raised."""
    try:
        pid = _load.service_pids(cfg.run_dir)["connect"]
        return _load.sink_thread_profile(pid, _load.SINK_ID)
    except Exception as error:  # evidence only: never stops the benchmark
        return {"error": str(error)[:300]}


def analyse(result: dict[str, Any], instruments: _load.Instruments, by_topic: dict[str, _load.Pipe]) -> None:
    """Per step: rates per stage, latency percentiles per stage, backlog and lag, CPU per process, verdict."""
    commits = _load.CommitLog(instruments.commits_path)
    snapshots = instruments.poller.snapshots
    rows = _load.sample_latencies(instruments.tail.samples, commits, by_topic)
    series = _load.lag_series(snapshots, commits, instruments.base)
    result["timeline"] = series
    result["cpu_timeline"] = instruments.sampler.samples
    result["poller_errors"] = instruments.poller.errors[-20:]
    result["kafka_mean_value_bytes"] = round(instruments.tail.value_bytes / max(1, instruments.tail.count))
    result["samples"] = len(rows)
    for step in result["steps"]:
        start, end, drain_end = step["start"], step["end"], step["drain_end"]
        seconds = end - start
        written = commits.written_between(start, end)
        in_kafka = instruments.tail.records_between(start, end)
        landed = [_load.interpolate(snapshots, "changelog", moment) for moment in (start, end)]
        landed_rate = (landed[1] - landed[0]) / seconds if None not in landed else None  # type: ignore[operator]
        step_rows = [r for r in rows if start <= r["committed"] < end]
        at_end = next((s for s in series if s["t"] >= end), series[-1] if series else None)
        at_drain = next((s for s in reversed(series) if s["t"] <= drain_end), None)
        step.update(
            {
                "seconds": round(seconds, 1),
                "source_rows_per_s": round(written / seconds, 1),
                "kafka_rows_per_s": round(in_kafka / seconds, 1),
                "changelog_rows_per_s": None if landed_rate is None else round(landed_rate, 1),
                "latency": _load.stage_summary(step_rows),
                "latency_samples": {k: [r[k] for r in step_rows] for k in _load.STAGES},
                "backlog_at_step_end": at_end,
                "backlog_after_drain": at_drain,
                "max_end_to_end_lag_s": max(
                    (s["end_to_end_lag_s"] for s in series if start <= s["t"] <= drain_end), default=None
                ),
                "cpu_pct": instruments.sampler.mean_cpu(start, end),
            }
        )
    judge(result)


def judge(result: dict[str, Any]) -> None:
    """Each step's verdict and the scenario's saturation point (also for a recorded run: ``--reanalyse``)."""
    for step in result["steps"]:
        step["verdict"] = verdict(step)
    sustained = [s["rate"] for s in result["steps"] if s["verdict"]["sustained"]]
    result["saturation"] = {
        "highest_sustained_rate": max(sustained, default=None),
        "first_unsustained": next(
            (s["verdict"] | {"rate": s["rate"]} for s in result["steps"] if not s["verdict"]["sustained"]), None
        ),
    }


def verdict(step: dict[str, Any]) -> dict[str, Any]:
    """Sustained or not, and if not, where the rows waited (with the figures that show it)."""
    rate = step["rate"]
    source = step["source_rows_per_s"]
    landed = step["changelog_rows_per_s"] or 0.0
    end = step["backlog_at_step_end"] or {}
    evidence = {
        "target_rows_per_s": rate,
        "source_rows_per_s": source,
        "kafka_rows_per_s": step["kafka_rows_per_s"],
        "changelog_rows_per_s": landed,
        "waiting_for_kafka_at_step_end": end.get("waiting_for_kafka"),
        "waiting_for_changelog_at_step_end": end.get("waiting_for_changelog"),
        "sink_group_lag_at_step_end": end.get("sink_group_lag"),
        "drained_within_window": step["drained"],
        "cpu_pct_of_one_core": step.get("cpu_pct"),
        "sink_task_threads": step.get("sink_threads"),
    }
    settle = step["drain_end"] - step["end"]
    evidence["settled_s_after_step"] = round(settle, 1)
    sustained = source >= 0.9 * rate and step["drained"] and settle <= SETTLE_S
    bottleneck = None
    if not sustained:
        if source < 0.9 * rate:
            bottleneck = "source: the generator and database did not reach the rate"
        elif (end.get("waiting_for_kafka") or 0) > max(5 * source, 50) and (end.get("waiting_for_kafka") or 0) >= (
            end.get("waiting_for_changelog") or 0
        ):
            bottleneck = "Debezium: rows waited between the source commit and Kafka"
        else:
            bottleneck = "sink: rows waited in Kafka for the BigQuery sink (Kafka -> changelog)"
    return {"sustained": sustained, "bottleneck": bottleneck, "evidence": evidence}


def ceilings(cfg: Any, args: argparse.Namespace, record_size: int) -> dict[str, Any]:
    found: dict[str, Any] = {}
    print(f"ceiling: Kafka ProducerPerformance, {args.producer_records} records of {record_size} bytes", flush=True)
    try:
        found["kafka_producer"] = _load.kafka_producer_ceiling(
            cfg, records=args.producer_records, record_size=record_size, partitions=args.partitions
        )
    except Exception as error:
        found["kafka_producer"] = {"error": str(error)[:500]}
    print("ceiling: emulator insertAll, batches of 1,000 / 2,000 / 5,000 rows", flush=True)
    try:
        found["emulator_insert_all"] = _load.emulator_insert_ceiling(
            cfg, batch_sizes=(1000, 2000, 5000), seconds_each=args.insert_seconds, max_batches=args.insert_batches
        )
    except Exception as error:
        found["emulator_insert_all"] = {"error": str(error)[:500]}
    return found


def fractions(result: dict[str, Any]) -> None:
    """Each scenario's best sustained (and best achieved) warehouse rate as a fraction of each ceiling."""
    producer = result["ceilings"].get("kafka_producer", {}).get("records_per_s")
    inserts = result["ceilings"].get("emulator_insert_all", {}).get("rows_per_s")
    for scenario in result["scenarios"]:
        steps = scenario.get("steps", [])
        sustained = scenario.get("saturation", {}).get("highest_sustained_rate")
        best = max((s.get("changelog_rows_per_s") or 0 for s in steps), default=0)
        best_kafka = max((s.get("kafka_rows_per_s") or 0 for s in steps), default=0)
        scenario["versus_ceilings"] = {
            "best_changelog_rows_per_s": best,
            "best_kafka_rows_per_s": best_kafka,
            "highest_sustained_rate": sustained,
            "changelog_fraction_of_insert_all": round(best / inserts, 5) if inserts else None,
            "kafka_fraction_of_producer_perf": round(best_kafka / producer, 5) if producer else None,
            "sustained_fraction_of_insert_all": round(sustained / inserts, 5) if inserts and sustained else None,
        }


def targets(result: dict[str, Any]) -> dict[str, Any]:
    checks: dict[str, Any] = {}
    for scenario in result["scenarios"]:
        steps = scenario.get("steps", [])
        name = scenario["scenario"]
        sustained = scenario.get("saturation", {}).get("highest_sustained_rate") or 0
        checks[f"{name}: sustained >= {TARGETS['sustained_rows_per_s']} rows/s"] = {
            "measured": sustained,
            "met": sustained >= TARGETS["sustained_rows_per_s"],
        }
        if steps:
            low = min(steps, key=lambda s: s["rate"])
            p99 = low["latency"]["commit_to_changelog"].get("p99_s")
            checks[f"{name}: end-to-end p99 <= {TARGETS['low_rate_p99_s']} s at {low['rate']:.0f} rows/s"] = {
                "measured": p99,
                "met": p99 is not None and p99 <= TARGETS["low_rate_p99_s"],
            }
        at_1000 = next((s for s in steps if s["rate"] == 1000), None)
        if at_1000 is not None:
            e2e = at_1000["latency"]["commit_to_changelog"]
            checks[f"{name}: p50 <= 1 s and p99 <= 3 s at 1,000 rows/s"] = {
                "measured": {"p50_s": e2e.get("p50_s"), "p99_s": e2e.get("p99_s")},
                "met": e2e.get("p50_s") is not None
                and e2e["p50_s"] <= TARGETS["rate_1000_p50_s"]
                and e2e.get("p99_s") is not None
                and e2e["p99_s"] <= TARGETS["rate_1000_p99_s"],
            }
    return checks


def plots(result: dict[str, Any], output: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = [s for s in result["scenarios"] if s.get("steps")]
    if not scenarios:
        return []
    written: list[str] = []
    stem = output.with_suffix("")
    producer = result["ceilings"].get("kafka_producer", {}).get("records_per_s")
    inserts = result["ceilings"].get("emulator_insert_all", {}).get("rows_per_s")

    # throughput vs lag, per scenario
    fig, axes = plt.subplots(1, len(scenarios), figsize=(5.5 * len(scenarios), 4.6), squeeze=False)
    for ax, scenario in zip(axes[0], scenarios, strict=True):
        steps = scenario["steps"]
        rates = [s["rate"] for s in steps]
        for key, label, style in (
            ("source_rows_per_s", "source (commits)", "o-"),
            ("kafka_rows_per_s", "Kafka", "s-"),
            ("changelog_rows_per_s", "changelog (warehouse)", "^-"),
        ):
            ax.plot(rates, [max(s.get(key) or 0, 0.1) for s in steps], style, label=label)
        ax.plot(rates, rates, ":", color="grey", label="offered")
        if producer:
            ax.axhline(producer, color="tab:green", ls="--", lw=1, label=f"Kafka producer ceiling {producer:,.0f}/s")
        if inserts:
            ax.axhline(inserts, color="tab:purple", ls="--", lw=1, label=f"emulator insertAll ceiling {inserts:,.0f}/s")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("offered rows/s")
        ax.set_ylabel("achieved rows/s")
        ax.set_title(scenario["scenario"])
        twin = ax.twinx()
        twin.plot(rates, [s.get("max_end_to_end_lag_s") or 0 for s in steps], "x--", color="tab:red", label="max end-to-end lag")
        twin.set_ylabel("max end-to-end lag in step + drain (s)", color="tab:red")
        lines = ax.get_legend_handles_labels()
        extra = twin.get_legend_handles_labels()
        ax.legend(lines[0] + extra[0], lines[1] + extra[1], fontsize=7, loc="upper left")
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(f"throughput vs lag ({result['commit']['describe']}, {result['date']})", fontsize=10)
    fig.tight_layout()
    path = Path(f"{stem}_throughput.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    written.append(path.name)

    # latency ECDF per rate, per stage
    stages = ["commit_to_kafka", "kafka_to_changelog", "commit_to_changelog", "commit_to_view"]
    fig, axes = plt.subplots(len(scenarios), len(stages), figsize=(4.4 * len(stages), 3.4 * len(scenarios)), squeeze=False)
    for row, scenario in zip(axes, scenarios, strict=True):
        for ax, stage in zip(row, stages, strict=True):
            for step in scenario["steps"]:
                recorded = step["latency_samples"][stage]
                values = [v for v in recorded if v is not None]
                if values:
                    xs, ys = _load.ecdf([max(v, 1e-3) for v in values], total=len(recorded))
                    missing = f", {len(recorded) - len(values)} not arrived" if len(recorded) > len(values) else ""
                    ax.step(xs, ys, where="post", label=f"{step['rate']:.0f}/s (n={len(values)}{missing})")
            ax.set_xscale("log")
            ax.set_title(f"{scenario['scenario']}: {_load.STAGES[stage]}", fontsize=8)
            ax.set_xlabel("seconds")
            ax.set_ylabel("fraction of changes")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=6)
    fig.tight_layout()
    path = Path(f"{stem}_latency.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    written.append(path.name)

    # backlog, lag and CPU over time
    fig, axes = plt.subplots(2, len(scenarios), figsize=(6 * len(scenarios), 7), squeeze=False)
    for column, scenario in enumerate(scenarios):
        series = scenario.get("timeline", [])
        if not series:
            continue
        t0 = series[0]["t"]
        ax = axes[0][column]
        ts = [s["t"] - t0 for s in series]
        ax.plot(ts, [s["waiting_for_kafka"] for s in series], label="rows waiting for Kafka")
        ax.plot(ts, [s["waiting_for_changelog"] for s in series], label="rows waiting for the changelog")
        ax.plot(ts, [s["sink_group_lag"] or 0 for s in series], ":", label="sink group lag (committed offsets)")
        ax.set_ylabel("rows")
        twin = ax.twinx()
        twin.plot(ts, [s["end_to_end_lag_s"] for s in series], color="tab:red", label="end-to-end lag (s)")
        twin.set_ylabel("end-to-end lag (s)", color="tab:red")
        for step in scenario["steps"]:
            ax.axvspan(step["start"] - t0, step["end"] - t0, alpha=0.08, color="tab:blue")
            ax.text(step["start"] - t0, ax.get_ylim()[1] * 0.95 if ax.get_ylim()[1] else 1, f"{step['rate']:.0f}/s", fontsize=7)
        ax.set_title(scenario["scenario"])
        handles = ax.get_legend_handles_labels()
        extra = twin.get_legend_handles_labels()
        ax.legend(handles[0] + extra[0], handles[1] + extra[1], fontsize=7, loc="upper left")
        cpu_ax = axes[1][column]
        names = sorted({n for sample in scenario.get("cpu_timeline", []) for n in sample["services"]})
        for name in names:
            points = [
                (s["t"] - t0, s["services"][name]["cpu_pct"])
                for s in scenario["cpu_timeline"]
                if name in s["services"] and "cpu_pct" in s["services"][name]
            ]
            if points and max(p[1] for p in points) >= 2:
                cpu_ax.plot([p[0] for p in points], [p[1] for p in points], label=name)
        cpu_ax.set_xlabel("seconds since the first step")
        cpu_ax.set_ylabel("CPU (% of one core)")
        cpu_ax.legend(fontsize=7, ncol=2)
        cpu_ax.grid(True, alpha=0.3)
    fig.tight_layout()
    path = Path(f"{stem}_timeline.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    written.append(path.name)
    return written


def write(result: dict[str, Any], output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=1, default=str) + "\n")


def summary(result: dict[str, Any]) -> None:
    print()
    for scenario in result["scenarios"]:
        print(f"{scenario['scenario']}: deploy {scenario.get('deploy_s')} s, first rows {scenario.get('first_rows_landed_s')} s")
        for step in scenario.get("steps", []):
            e2e = step["latency"]["commit_to_changelog"]
            print(
                f"  {step['rate']:>7.0f}/s  source {step['source_rows_per_s']:>8.1f}  Kafka {step['kafka_rows_per_s']:>8.1f}  "
                f"changelog {step['changelog_rows_per_s'] or 0:>8.1f}  e2e p50 {e2e.get('p50_s')} p99 {e2e.get('p99_s')} "
                f"(n {e2e.get('n')}, not arrived {e2e.get('censored')})  "
                + ("sustained" if step["verdict"]["sustained"] else f"NOT sustained: {step['verdict']['bottleneck']}")
            )
        if "versus_ceilings" in scenario:
            print(f"  versus ceilings: {scenario['versus_ceilings']}")
    for name, check in result.get("targets_checked", {}).items():
        print(f"target {name}: {check['measured']} {'met' if check['met'] else 'MISSED'}")


def reanalyse(path: Path) -> int:
    """Verdicts, saturation, ratios, targets and plots recomputed from a recorded run, written back."""
    result = json.loads(path.read_text())
    for scenario in result["scenarios"]:
        if scenario.get("steps"):
            judge(scenario)
    fractions(result)
    result["targets_checked"] = targets(result)
    result["plots"] = plots(result, path)
    result["reanalysed"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    write(result, path)
    summary(result)
    print(f"reanalysed {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.reanalyse:
        return reanalyse(Path(args.reanalyse))
    from datapipe_cdk.local.config import StackConfig

    reason = _load.stack_ready()
    if reason:
        print(
            f"the local stack is not ready: {reason}\nstart it with `datapipe local up` (this benchmark never does)",
            file=sys.stderr,
        )
        return 2
    cfg = StackConfig()
    result: dict[str, Any] = {
        "benchmark": "load",
        "smoke": args.smoke,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": _load.git_commit(),
        "machine": _load.machine_facts(),
        "settings": {
            "rates": args.rates,
            "step_seconds": args.step_seconds,
            "drain_seconds": args.drain_seconds,
            "poll_seconds": args.poll,
            "view_poll_seconds": args.view_poll,
            "samples_per_second": args.samples_per_second,
            "mix_insert_update_delete": _load.MIX,
            "partitions": args.partitions,
            "all_rates": args.all_rates,
            "run_dir": str(cfg.run_dir),
        },
        "targets": TARGETS,
        "stages": _load.STAGES,
        "scenarios": [],
        "ceilings": {},
    }
    workdir = Path(tempfile.mkdtemp(prefix="datapipe-loadbench-"))
    try:
        for scenario in args.scenarios:
            try:
                result["scenarios"].append(run_scenario(cfg, scenario, args, workdir))
            except Exception as error:
                result["scenarios"].append({"scenario": scenario.name, "error": f"{type(error).__name__}: {error}"[:2000]})
                print(f"[{scenario.name}] failed: {error}", file=sys.stderr, flush=True)
            write(result, args.output)  # partial results survive a later failure
        if not args.no_ceilings:
            sizes = [s["kafka_mean_value_bytes"] for s in result["scenarios"] if s.get("kafka_mean_value_bytes")]
            result["ceilings"] = ceilings(cfg, args, record_size=int(sum(sizes) / len(sizes)) if sizes else 1500)
        fractions(result)
        result["targets_checked"] = targets(result)
        result["plots"] = plots(result, args.output)
        write(result, args.output)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    summary(result)
    print(f"recorded in {args.output}")
    failed = any("error" in s for s in result["scenarios"])
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    sys.exit(main())
