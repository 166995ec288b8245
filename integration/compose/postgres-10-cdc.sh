#!/bin/bash
# docker-compose only: run by the postgres image's entrypoint on first start (docker-entrypoint-initdb.d).
# Same roles, grants and schema as datapipe_cdk/local/databases.py; the password comes from the environment.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER}" --dbname postgres -v cdc_password="${DEBEZIUM_PASSWORD}" <<'SQL'
CREATE ROLE payments_owner NOLOGIN;
CREATE ROLE debezium WITH LOGIN REPLICATION PASSWORD :'cdc_password';
GRANT payments_owner TO debezium;
CREATE DATABASE payments;
GRANT CONNECT, CREATE ON DATABASE payments TO debezium;
SQL
psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER}" --dbname payments -f /datapipe-sql/postgres/payments.sql
# The image's pg_hba.conf covers "all" databases, which does not include replication connections.
echo "host replication debezium all scram-sha-256" >> "${PGDATA}/pg_hba.conf"
