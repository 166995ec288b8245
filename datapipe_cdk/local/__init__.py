"""Launcher for the local real stack: Kafka (KRaft), Kafka Connect, databases, BigQuery emulator.

Every service binds to 127.0.0.1, writes a pid file under the run directory and is stopped by PID.
Use ``python -m datapipe_cdk.local up|down|status``.
"""
