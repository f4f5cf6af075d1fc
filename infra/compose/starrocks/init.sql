-- Target schema in StarRocks: dbmazz loads into existing Primary Key tables whose key
-- matches the source's, and adds missing columns and its audit columns
-- (dbmazz_op_type, dbmazz_is_deleted, dbmazz_synced_at, dbmazz_cdc_version) itself.
-- One backend in the all-in-one image, hence replication_num = 1.
CREATE DATABASE IF NOT EXISTS shop;

CREATE TABLE IF NOT EXISTS shop.customers (
    id         BIGINT NOT NULL,
    name       STRING,
    email      STRING,
    created_at DATETIME
) PRIMARY KEY (id)
DISTRIBUTED BY HASH (id)
PROPERTIES ("replication_num" = "1");

CREATE TABLE IF NOT EXISTS shop.orders (
    id          BIGINT NOT NULL,
    customer_id BIGINT,
    status      STRING,
    total       DECIMAL(12,2),
    created_at  DATETIME
) PRIMARY KEY (id)
DISTRIBUTED BY HASH (id)
PROPERTIES ("replication_num" = "1");

CREATE TABLE IF NOT EXISTS shop.order_items (
    order_id BIGINT NOT NULL,
    line     INT NOT NULL,
    sku      STRING,
    quantity INT,
    price    DECIMAL(12,2)
) PRIMARY KEY (order_id, line)
DISTRIBUTED BY HASH (order_id)
PROPERTIES ("replication_num" = "1");
