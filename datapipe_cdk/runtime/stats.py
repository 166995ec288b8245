"""Latency percentiles: the one place that turns per-marker latencies into p50/p95/p99.

Percentiles use linear interpolation between order statistics (pandas' default, numpy's
``linear``), so p99 of few samples lies between the two largest values instead of jumping to the max.
"""

from __future__ import annotations

import math

import pandas as pd

SOURCE_TO_KAFKA = "source_to_kafka"
KAFKA_TO_WAREHOUSE = "kafka_to_warehouse"
END_TO_END = "end_to_end"
STAGES = (SOURCE_TO_KAFKA, KAFKA_TO_WAREHOUSE, END_TO_END)
"""Stages in pipeline order: commit → Kafka record, Kafka record → changelog row queryable,
commit → latest-state view showing the change."""

QUANTILES = {"p50_s": 0.50, "p95_s": 0.95, "p99_s": 0.99}
SUMMARY_COLUMNS = ["stage", "samples", "missing", *QUANTILES, "max_s"]


def latency_summary(latencies: pd.DataFrame) -> pd.DataFrame:
    """p50/p95/p99 (seconds) per stage of a long latency table (columns ``stage``, ``latency_s``).

    ``missing`` counts markers never observed at that stage (``latency_s`` is NaN): they are left out
    of the percentiles, and a non-zero count means the percentiles are optimistic.
    """
    rows = []
    for stage in [*STAGES, *sorted(set(latencies.get("stage", [])) - set(STAGES))]:
        values = latencies.loc[latencies["stage"] == stage, "latency_s"] if len(latencies) else pd.Series([])
        observed = values.dropna().astype(float)
        row: dict[str, object] = {"stage": stage, "samples": len(observed), "missing": len(values) - len(observed)}
        for name, q in QUANTILES.items():
            row[name] = float(observed.quantile(q)) if len(observed) else math.nan
        row["max_s"] = float(observed.max()) if len(observed) else math.nan
        rows.append(row)
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def meets_target(summary: pd.DataFrame, *, target_s: float = 3.0, stage: str = END_TO_END, column: str = "p99_s") -> bool:
    """True when ``stage``'s ``column`` percentile is finite and below ``target_s`` seconds."""
    value = float(summary.loc[summary["stage"] == stage, column].iloc[0])
    return math.isfinite(value) and value < target_s


def target_sentence(summary: pd.DataFrame, *, target_s: float = 3.0, read_only: bool = False) -> str:
    """One sentence for the notebook: the end-to-end p99 against the target. ``read_only``: the samples are
    changes that already flowed (``observe``), whose end-to-end is a lower bound (commit → sink insert time)."""
    row = summary.loc[summary["stage"] == END_TO_END].iloc[0]
    p99 = float(row["p99_s"])
    if not math.isfinite(p99):
        if read_only:
            return (
                f"No change that already flowed was measured end to end, so the p99 target of {target_s:g} s "
                "cannot be judged read-only."
            )
        return f"No marker reached the latest-state view, so the end-to-end p99 target of {target_s:g} s is not met."
    verdict = "meets" if p99 < target_s else "misses"
    if read_only:
        return (
            f"End-to-end p99 (source commit → sink insert time, a lower bound) is {p99:.2f} s over "
            f"{int(row['samples'])} changes that already flowed: it {verdict} the target of p99 < {target_s:g} s."
        )
    return (
        f"End-to-end p99 is {p99:.2f} s over {int(row['samples'])} markers "
        f"({int(row['missing'])} not observed): it {verdict} the target of p99 < {target_s:g} s."
    )
