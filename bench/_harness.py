"""What a benchmark child process reports about itself: phase times, CPU and peak memory of its tree.

Standard library only, and cheap to import: the synth children import it before anything they time.
A child running cdktf has one descendant that matters, jsii's Node.js kernel; both are counted.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

_TICKS = os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc/<pid>/task/<tid>/children, recursively)."""
    found: list[int] = []
    stack = [pid]
    while stack:
        current = stack.pop()
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                children = Path(f"/proc/{current}/task/{tid}/children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                found.append(child)
                stack.append(child)
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far (/proc/<pid>/stat fields 14 and 15)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS


def status_kb(pid: int, key: str) -> int:
    """A ``kB`` line of /proc/<pid>/status (``VmHWM`` is the peak resident set, ``VmRSS`` the current one)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_usage(pid: int | None = None) -> dict[str, float]:
    """CPU seconds and peak resident memory (VmHWM) of a process and of its descendants, so far."""
    pid = os.getpid() if pid is None else pid
    kids = descendants(pid)
    return {
        "cpu_s": round(cpu_seconds(pid) + sum(cpu_seconds(k) for k in kids), 3),
        "python_cpu_s": round(cpu_seconds(pid), 3),
        "node_cpu_s": round(sum(cpu_seconds(k) for k in kids), 3),
        "peak_mb": round((status_kb(pid, "VmHWM") + sum(status_kb(k, "VmHWM") for k in kids)) / 1024, 1),
        "python_peak_mb": round(status_kb(pid, "VmHWM") / 1024, 1),
        "node_peak_mb": round(sum(status_kb(k, "VmHWM") for k in kids) / 1024, 1),
    }


class JsiiCounter:
    """Counts jsii kernel requests (create, invoke, get, callbacks completed, ...) and the time each kind
    waits, by wrapping the kernel's one send function. Only for breakdown runs: it costs a little."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = defaultdict(int)
        self.seconds: dict[str, float] = defaultdict(float)

    def install(self) -> None:
        from jsii._kernel.providers import process

        original = process._NodeProcess.send
        counter = self

        def send(self: Any, request: Any, response_type: Any) -> Any:
            kind = type(request).__name__.removesuffix("Request").lstrip("_") or "request"
            started = time.perf_counter()
            try:
                return original(self, request, response_type)
            finally:
                counter.calls[kind] += 1
                counter.seconds[kind] += time.perf_counter() - started

        process._NodeProcess.send = send  # type: ignore[method-assign]

    def report(self) -> dict[str, Any]:
        return {
            "round_trips": sum(self.calls.values()),
            "round_trip_s": round(sum(self.seconds.values()), 3),
            "by_kind": {
                kind: {"calls": self.calls[kind], "seconds": round(self.seconds[kind], 3)}
                for kind in sorted(self.calls, key=lambda k: -self.seconds[k])
            },
        }


def counter_if_asked() -> JsiiCounter | None:
    """A installed :class:`JsiiCounter` when the driver asked for one (``BENCH_COUNT_JSII=1``)."""
    if os.environ.get("BENCH_COUNT_JSII") != "1":
        return None
    counter = JsiiCounter()
    counter.install()
    return counter


def emit(report: dict[str, Any]) -> None:
    """The child's one line of output, read by the driver."""
    sys.stdout.write("BENCH " + json.dumps(report) + "\n")
    sys.stdout.flush()
