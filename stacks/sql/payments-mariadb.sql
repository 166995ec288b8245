-- Example payments schema for MariaDB (database `payments`), captured by Debezium's MariaDB connector.
-- Applied as any user's DDL is: datapipe local sql --engine mariadb -f stacks/sql/payments-mariadb.sql
-- Topics: <topic.prefix>.payments.accounts / .orders / .refunds.
-- No foreign keys on purpose: tests write each table on its own. Idempotent (IF NOT EXISTS).
CREATE DATABASE IF NOT EXISTS payments CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS payments.accounts (
    id          BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name        VARCHAR(200) NOT NULL,
    email       VARCHAR(320) NULL,
    phone       VARCHAR(40)  NULL,
    country     CHAR(2)      NOT NULL,
    created_at  TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
) ENGINE = InnoDB;

CREATE TABLE IF NOT EXISTS payments.orders (
    id          BIGINT        NOT NULL AUTO_INCREMENT PRIMARY KEY,
    account_id  BIGINT        NOT NULL,
    amount      DECIMAL(12,2) NOT NULL,
    currency    CHAR(3)       NOT NULL,
    status      VARCHAR(20)   NOT NULL,
    created_at  TIMESTAMP(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at  TIMESTAMP(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    KEY orders_account_id (account_id)
) ENGINE = InnoDB;

CREATE TABLE IF NOT EXISTS payments.refunds (
    id          BIGINT        NOT NULL AUTO_INCREMENT PRIMARY KEY,
    order_id    BIGINT        NOT NULL,
    amount      DECIMAL(12,2) NOT NULL,
    reason      VARCHAR(200)  NULL,
    created_at  TIMESTAMP(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    KEY refunds_order_id (order_id)
) ENGINE = InnoDB;
