"""Runtime helpers for the notebooks, the integration tests and the CLI.

They talk to deployed services (sources, Kafka, BigQuery) and import confluent-kafka,
google-cloud-bigquery and pandas, so the synth path (``datapipe_cdk`` itself) never imports this
subpackage. Modules: ``manifest`` (what a stack deployed), ``credentials`` (logins for it),
``source`` / ``stream`` / ``warehouse`` (one client each), ``latency`` (the marker probe),
``quality`` (reconciliation and PII checks), ``pii`` (detectors), ``stats`` (percentiles),
``plots`` (figures saved as PNG).
"""
