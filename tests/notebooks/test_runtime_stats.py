"""Percentiles per stage are computed on observed markers only, and missing ones are counted."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from datapipe_cdk.runtime.latency import Marker, latency_table
from datapipe_cdk.runtime.stats import END_TO_END, SOURCE_TO_KAFKA, STAGES, latency_summary, meets_target, target_sentence


def _long(stage: str, values: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"marker": range(len(values)), "op": "insert", "stage": stage, "latency_s": values})


def test_percentiles_interpolate_linearly() -> None:
    summary = latency_summary(_long(END_TO_END, [float(v) for v in range(1, 101)])).set_index("stage")
    assert summary.loc[END_TO_END, "p50_s"] == pytest.approx(50.5)
    assert summary.loc[END_TO_END, "p95_s"] == pytest.approx(95.05)
    assert summary.loc[END_TO_END, "p99_s"] == pytest.approx(99.01)
    assert summary.loc[END_TO_END, "max_s"] == 100.0
    assert summary.loc[END_TO_END, "samples"] == 100


def test_missing_markers_are_counted_not_averaged() -> None:
    summary = latency_summary(_long(END_TO_END, [1.0, 2.0, math.nan])).set_index("stage")
    assert summary.loc[END_TO_END, "samples"] == 2
    assert summary.loc[END_TO_END, "missing"] == 1
    assert summary.loc[END_TO_END, "p50_s"] == pytest.approx(1.5)


def test_every_stage_has_a_row_even_without_samples() -> None:
    summary = latency_summary(_long(SOURCE_TO_KAFKA, [0.2]))
    assert list(summary["stage"]) == list(STAGES)
    assert summary.set_index("stage")["p99_s"].isna()[END_TO_END]
    assert not meets_target(summary)
    assert "not met" in target_sentence(summary)


def test_target_verdict() -> None:
    fast = latency_summary(_long(END_TO_END, [0.5] * 99 + [2.0]))
    slow = latency_summary(_long(END_TO_END, [0.5] * 90 + [5.0] * 10))
    assert meets_target(fast, target_s=3.0) and "meets" in target_sentence(fast)
    assert not meets_target(slow, target_s=3.0) and "misses" in target_sentence(slow)


def test_latency_table_has_one_row_per_marker_and_stage() -> None:
    done = Marker(0, "insert", 7, "lp1", committed_at=100.0, kafka_ts_ms=100_250, changelog_at=100.75, view_at=101.0)
    lost = Marker(1, "delete", 8, None, committed_at=101.0)
    table = latency_table([done, lost]).set_index(["marker", "stage"])["latency_s"]
    assert len(table) == 2 * len(STAGES)
    assert table[(0, "source_to_kafka")] == pytest.approx(0.25)
    assert table[(0, "kafka_to_warehouse")] == pytest.approx(0.5)
    assert table[(0, "end_to_end")] == pytest.approx(1.0)
    assert table[1].isna().all()


def test_marker_matches_its_own_event_only() -> None:
    from datapipe_cdk.runtime.stream import ChangeEvent

    update = Marker(1, "update", 7, "lp2", committed_at=100.0)
    event = ChangeEvent("u", {"id": 7, "status": "lp1"}, {"id": 7, "status": "lp2"}, 1, 2, 3.0)
    assert update.matches(event, "id", "status")
    assert not update.matches(ChangeEvent("u", None, {"id": 7, "status": "lp9"}, 1, 2, 3.0), "id", "status")
    delete = Marker(2, "delete", 7, None, committed_at=100.0)
    assert delete.matches(ChangeEvent("d", {"id": 7}, None, 1, 2, 3.0), "id", "status")
    assert not delete.matches(event, "id", "status")


def test_kafka_time_falls_back_to_receive_time_when_stamped_before_the_commit() -> None:
    from datapipe_cdk.runtime.latency import _kafka_time_ms
    from datapipe_cdk.runtime.stream import ChangeEvent

    assert _kafka_time_ms(ChangeEvent("c", None, {}, None, 100_200, 100.5), committed_at=100.0) == 100_200
    assert _kafka_time_ms(ChangeEvent("c", None, {}, None, 98_000, 100.5), committed_at=100.0) == 100_500
    assert _kafka_time_ms(ChangeEvent("c", None, {}, None, None, 100.5), committed_at=100.0) == 100_500
