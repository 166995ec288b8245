"""The local real stack: Kafka (KRaft, SASL/SCRAM, ACLs), Kafka Connect with Debezium and KCBQ, MariaDB,
PostgreSQL and a BigQuery emulator, all on 127.0.0.1, each stopped by its PID.

Use it from the command line: ``datapipe local setup | up | down | status | reset | sql``, and deploy any
app onto it with ``datapipe deploy --local --app app.py``. All its state lives in one directory,
``$DATAPIPE_RUN_DIR`` (default ``~/.cache/datapipe-cdk/run``); downloads and builds are cached in
``$DATAPIPE_CACHE`` (default ``~/.cache/datapipe-cdk``).
"""
