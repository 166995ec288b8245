#!/bin/bash
# docker-compose only: run by the mariadb image's entrypoint on first start (docker-entrypoint-initdb.d).
# Same grants and schema as datapipe_cdk/local/databases.py; the password comes from the environment.
set -euo pipefail
mariadb --protocol=socket -uroot -p"${MARIADB_ROOT_PASSWORD}" <<SQL
CREATE USER IF NOT EXISTS 'debezium'@'%' IDENTIFIED BY '${DEBEZIUM_PASSWORD}';
GRANT SELECT, RELOAD, SHOW DATABASES, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'debezium'@'%';
FLUSH PRIVILEGES;
SQL
mariadb --protocol=socket -uroot -p"${MARIADB_ROOT_PASSWORD}" < /datapipe-sql/mariadb/payments.sql
