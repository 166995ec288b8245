"""Figures for the notebooks, each saved as a PNG into a figures directory (headless: Agg backend)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from datapipe_cdk.runtime.stats import STAGES


def _save(fig: plt.Figure, directory: Path, name: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def latency_distribution(latencies: pd.DataFrame, directory: Path, target_s: float = 3.0) -> Path:
    """Histogram and ECDF of latency per stage, with the end-to-end target as a line."""
    fig, (hist, ecdf) = plt.subplots(1, 2, figsize=(11, 4))
    for stage in STAGES:
        values = latencies.loc[latencies["stage"] == stage, "latency_s"].dropna().to_numpy(dtype=float)
        if not len(values):
            continue
        hist.hist(values, bins=20, alpha=0.5, label=stage)
        ordered = np.sort(values)
        ecdf.step(ordered, np.arange(1, len(ordered) + 1) / len(ordered), where="post", label=stage)
    for axis in (hist, ecdf):
        axis.axvline(target_s, color="red", linestyle="--", linewidth=1, label=f"target {target_s:g} s")
        axis.set_xlabel("latency (s)")
        axis.legend(fontsize=8)
    hist.set_ylabel("samples")
    hist.set_title("Latency per stage")
    ecdf.set_ylabel("fraction of samples")
    ecdf.set_title("ECDF")
    return _save(fig, directory, "latency_distribution")


def latency_over_time(latencies: pd.DataFrame, directory: Path, target_s: float = 3.0, objective_s: float | None = None) -> Path:
    """Latency of every marker (or observed change) against its commit time, one series per stage; the
    table's freshness objective as a line when it declares one."""
    fig, axis = plt.subplots(figsize=(11, 4))
    for stage in STAGES:
        part = latencies[latencies["stage"] == stage].dropna(subset=["latency_s"])
        if len(part):
            axis.plot(part["committed_at"], part["latency_s"], marker="o", markersize=3, linewidth=1, label=stage)
    axis.axhline(target_s, color="red", linestyle="--", linewidth=1, label=f"target {target_s:g} s")
    if objective_s is not None:
        axis.axhline(objective_s, color="purple", linestyle=":", linewidth=1.5, label=f"freshness objective {objective_s:g} s")
    axis.set_xlabel("commit time (UTC)")
    axis.set_ylabel("latency (s)")
    axis.set_title("Latency over time (by source commit)")
    axis.legend(fontsize=8)
    fig.autofmt_xdate()
    return _save(fig, directory, "latency_over_time")


def freshness(frame: pd.DataFrame, directory: Path) -> Path:
    """Age of the newest changelog event per table (seconds)."""
    fig, axis = plt.subplots(figsize=(8, max(2.5, 0.5 * len(frame) + 1)))
    if len(frame):
        ages = pd.to_numeric(frame["age_s"], errors="coerce")
        bars = axis.barh(frame["table"], ages.fillna(0.0))
        labels = ["no events" if pd.isna(age) else f"{age:.0f} s" for age in ages]
        axis.bar_label(bars, labels=labels, padding=3, fontsize=8)
    axis.set_xlabel("seconds since the newest source commit")
    axis.set_title("Freshness of changelog tables")
    return _save(fig, directory, "freshness")


def null_rates(frame: pd.DataFrame, directory: Path) -> Path:
    """Null rate of every column of every latest-state view."""
    fig, axis = plt.subplots(figsize=(8, max(2.5, 0.3 * len(frame) + 1)))
    if len(frame):
        labels = frame["table"] + "." + frame["column"]
        bars = axis.barh(labels, frame["null_rate"].astype(float))
        axis.bar_label(bars, fmt="{:.1%}", padding=3, fontsize=8)
    axis.set_xlim(0, 1)
    axis.set_xlabel("share of rows that are NULL")
    axis.set_title("Null rates in latest-state views")
    return _save(fig, directory, "null_rates")


def close_all() -> None:
    plt.close("all")
