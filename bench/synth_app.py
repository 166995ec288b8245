"""The generated app the synth benchmark times: N source tables, datapipe-cdk's way.

One ``DataPipelineStack``; the tables are spread over databases of ``GROUP`` tables each (MySQL and
PostgreSQL in turn), each database a ``CdcSource`` with a ``BigQuerySink`` into its own raw dataset;
one ``MicroWarehouse`` exposes every table as a latest-state view. Every table declares typed,
classified columns and has an owner, so the default policies pass as they would for a real app.

Run by ``bench/synth_bench.py`` in a fresh interpreter per measurement:

    python bench/synth_app.py --tables 1000 --outdir /tmp/out     # prints one ``BENCH {...}`` line
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()  # before any import this benchmark times

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

import _harness  # noqa: E402

GROUP = 50
"""Tables per database (one CdcSource and one BigQuerySink each)."""


def build(app: object, tables: int) -> None:
    """Add the generated stack for ``tables`` source tables to ``app``."""
    from datapipe_cdk import (
        BigQuerySink,
        CdcSource,
        Classification,
        Column,
        ColumnType,
        ConnectCluster,
        DataPipelineStack,
        Engine,
        GcpProject,
        KafkaCluster,
        MicroWarehouse,
        Principal,
        Table,
    )

    stack = DataPipelineStack(
        app,  # type: ignore[arg-type]
        "scale",
        kafka=KafkaCluster(bootstrap_servers=["kafka-1.acme.internal:9093"], brokers=3, tls=True, sasl_username="terraform"),
        connect=ConnectCluster(
            url="https://connect.acme.internal:8083",
            principal=Principal.kafka_user("connect"),
            basic_auth_username="terraform",
        ),
        gcp=GcpProject(project="acme-data", location="US"),
    )
    owner = Principal.group("data-eng@acme.com")
    table = Table(
        primary_key=["id"],
        columns=[
            Column("id", ColumnType.INT64, Classification.INTERNAL),
            Column("account_id", ColumnType.INT64, Classification.INTERNAL),
            Column("amount", ColumnType.NUMERIC, Classification.CONFIDENTIAL, precision=12, scale=2),
            Column("status", ColumnType.STRING, Classification.INTERNAL),
            Column("created_at", ColumnType.TIMESTAMP, Classification.INTERNAL),
            Column("updated_at", ColumnType.TIMESTAMP, Classification.INTERNAL),
        ],
    )
    warehouse = MicroWarehouse(
        stack, "analytics", owners=[Principal.group("analytics-eng@acme.com")], readers=[Principal.group("analysts@acme.com")]
    )
    for group, first in enumerate(range(0, tables, GROUP)):
        names = [f"t{i:05d}" for i in range(first, min(tables, first + GROUP))]
        engine = Engine.MYSQL if group % 2 == 0 else Engine.POSTGRESQL
        source = CdcSource(
            stack,
            f"db{group:03d}",
            engine=engine,
            host=f"db{group:03d}.acme.internal",
            database=f"db{group:03d}",
            tables=dict.fromkeys(names, table),
            owner=owner,
        )
        sink = BigQuerySink(stack, f"raw{group:03d}", source=source, dataset=f"raw{group:03d}", owners=[owner])
        for name in names:
            warehouse.expose(sink.table(name))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", type=int, required=True)
    parser.add_argument("--outdir", required=True)
    args = parser.parse_args()
    counter = _harness.counter_if_asked()

    try:  # the App of the CDK core datapipe-cdk runs on (cdktf, or cdktn where installed)
        from datapipe_cdk import App
    except ImportError:  # a datapipe-cdk that exports no App: cdktf's
        from cdktf import App

    import datapipe_cdk.sink
    import datapipe_cdk.source
    import datapipe_cdk.stack
    import datapipe_cdk.warehouse  # noqa: F401  (what the app's names load)

    imported = time.perf_counter()
    app = App(outdir=args.outdir)
    build(app, args.tables)
    built = time.perf_counter()
    app.synth()
    done = time.perf_counter()
    report = {
        "import_s": round(imported - STARTED, 3),
        "build_s": round(built - imported, 3),
        "synth_s": round(done - built, 3),
        "total_s": round(done - STARTED, 3),
        **_harness.tree_usage(),
    }
    if counter is not None:
        report["jsii"] = counter.report()
    _harness.emit(report)


if __name__ == "__main__":
    main()
