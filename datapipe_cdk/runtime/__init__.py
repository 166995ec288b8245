"""Runtime helpers for the notebooks, the integration tests and the CLI.

They talk to deployed services (sources, Kafka, BigQuery) and import confluent-kafka,
google-cloud-bigquery and pandas, so the synth path (``datapipe_cdk`` itself) never imports this
subpackage. Modules: ``manifest`` (finds a stack's manifest; the classes are ``datapipe_cdk.manifest``'s),
``credentials`` (logins for it), ``source`` / ``stream`` / ``warehouse`` (one client each), ``writes``
(whether probes may write into a source: by default only on the local stack), ``latency`` (the marker
probe), ``observe`` (read-only latency from changes that already flowed), ``quality`` (reconciliation and
PII checks), ``pii`` (detectors), ``stats`` (percentiles), ``plots`` (figures saved as PNG).
"""
