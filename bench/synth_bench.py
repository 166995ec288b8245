"""Synth benchmarks: import time, example synth, and a generated 1,000-table pipeline.

Each case runs in a fresh interpreter (import cost and peak RSS are per process) and the results
are appended to ``bench/results/synth.jsonl`` with the machine and the commit. Targets (2 cores):
import <= 1 s, example synth <= 2 s, 1,000 tables <= 5 s and <= 300 MB. Never asserted in tests.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "synth.jsonl"
TARGETS = {"import": (1.0, None), "example": (2.0, None), "tables_1000": (5.0, 300.0)}

CASES = {
    "import": "import datapipe_cdk",
    "example": (
        "import os, tempfile; os.environ['DATAPIPE_PROFILE'] = 'production'\n"
        "from stacks.main import build\n"
        "build(outdir=tempfile.mkdtemp()).synth()"
    ),
    "tables_1000": (
        "import tempfile\n"
        "from cdktf import App\n"
        "from datapipe_cdk import *\n"
        "app = App(outdir=tempfile.mkdtemp())\n"
        "stack = DataPipelineStack(app, 'big', kafka=KafkaCluster(bootstrap_servers=['k:9092'], brokers=3),\n"
        "    connect=ConnectCluster(url='http://c:8083', principal=Principal.kafka_user('connect')),\n"
        "    gcp=GcpProject(project='acme-data'))\n"
        "tables = {f't{i:04d}': ['id'] for i in range(1000)}\n"
        "source = CdcSource(stack, 'db', engine='mysql', host='db', database='big', tables=tables, owner=Principal.group('o@acme.com'))\n"
        "sink = BigQuerySink(stack, 'raw', source=source, dataset='big_raw', owners=[Principal.group('o@acme.com')])\n"
        "wh = MicroWarehouse(stack, 'wh', owners=[Principal.group('o@acme.com')])\n"
        "for name in list(tables)[:100]: wh.expose(sink.table(name))\n"
        "app.synth()"
    ),
}


def run_case(name: str, code: str) -> dict[str, float | str]:
    wrapper = (
        "import time, resource, sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "t0 = time.perf_counter()\n"
        f"exec(compile({code!r}, 'case', 'exec'))\n"
        "elapsed = time.perf_counter() - t0\n"
        "own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
        "print(elapsed, own, kids)\n"
    )
    env = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    out = subprocess.run([sys.executable, "-c", wrapper], capture_output=True, text=True, check=True, env=env, cwd=ROOT)
    elapsed, python_mb, node_mb = (float(x) for x in out.stdout.split()[-3:])
    return {"case": name, "seconds": round(elapsed, 3), "python_peak_mb": round(python_mb, 1),
            "node_peak_mb": round(node_mb, 1), "peak_mb_total": round(python_mb + node_mb, 1)}


def main() -> int:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    failed = False
    for name, code in CASES.items():
        best = min((run_case(name, code) for _ in range(3)), key=lambda r: float(r["seconds"]))
        limit_s, limit_mb = TARGETS[name]
        ok = float(best["seconds"]) <= limit_s and (limit_mb is None or float(best["peak_mb_total"]) <= limit_mb)
        failed |= not ok
        record = {**best, "target_seconds": limit_s, "target_mb": limit_mb, "meets_target": ok, "commit": commit,
                  "cpus": os.cpu_count(), "python": platform.python_version(), "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        with RESULTS.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        print(f"{name:12s} {best['seconds']:>7.3f} s  python {best['python_peak_mb']:>6.1f} MB + node "
              f"{best['node_peak_mb']:>6.1f} MB  (target {limit_s} s{'' if limit_mb is None else f', {limit_mb} MB'}) "
              f"{'ok' if ok else 'MISSED'}")
    print(f"recorded in {RESULTS.relative_to(ROOT)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
