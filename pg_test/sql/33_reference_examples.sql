-- The examples of docs/reference.md, with the output they show there: the documentation check of
-- pg_test/run-all finds every example block of the reference in this file's expected output.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE SCHEMA shop;
CREATE TABLE shop.customers (customer_id int PRIMARY KEY, name text NOT NULL, city text,
    updated_at timestamptz NOT NULL);
CREATE TABLE shop.orders (order_id int PRIMARY KEY,
    customer_id int NOT NULL REFERENCES shop.customers, amount numeric(10,2),
    updated_at timestamptz NOT NULL);
INSERT INTO shop.customers VALUES
  (1, 'Ada', 'Oslo', '2025-01-02 09:00+00'), (2, 'Grace', 'Lima', '2025-01-02 09:00+00'),
  (3, 'Linus', 'Pune', '2025-01-12 09:00+00'), (4, 'Barbara', 'Kyiv', '2025-01-12 10:00+00');
INSERT INTO shop.orders VALUES (10, 1, 25.00, '2025-01-02 09:00+00');
SET TIME ZONE 'UTC';

-- @example dwr_create_staging
SELECT dwr_create_staging('shop.customers', 'shop_staging');
SELECT dwr_create_staging('shop.orders', 'shop_staging');

-- @example dwr_verify
SELECT * FROM dwr_verify('shop.customers');

-- @example dwr_begin_reload
SELECT dwr_begin_reload('{shop.customers,shop.orders}',
                        '2025-01-10 00:00+00', '2025-01-20 00:00+00') AS reload \gset
SELECT targets, window_start, window_end FROM dwr.reloads WHERE reload_id = :reload;

-- the window's full load, as DMS writes it into staging
INSERT INTO shop_staging.customers (customer_id, name, city, updated_at) VALUES
  (1, 'Ada', 'Bergen', '2025-01-11 08:00+00'),   -- newer: updated
  (3, 'Linus', 'Pune', '2025-01-11 08:00+00'),   -- older than production: skipped
  (5, 'Edsger', 'Delft', '2025-01-13 08:00+00'), -- missing: inserted
  (6, 'Alan', NULL, '2025-03-01 08:00+00');      -- outside the window: stays NEW
INSERT INTO shop_staging.orders (order_id, customer_id, amount, updated_at) VALUES
  (11, 5, 40.00, '2025-01-13 08:05+00');

-- @example dwr_diff_summary
SELECT * FROM dwr_diff_summary('shop.customers') ORDER BY difference;

-- @example dwr_diff
SELECT key, difference, production ->> 'city' AS production_city, staged ->> 'city' AS staged_city
  FROM dwr_diff('shop.customers') ORDER BY key;

-- @example dwr_merge
SELECT status, inserted, updated, unchanged, skipped_stale, skipped_outside_window, errors
  FROM dwr_merge('shop.customers', dry_run => true);
SELECT status, inserted, updated, unchanged, skipped_stale, skipped_outside_window, errors
  FROM dwr_merge('shop.customers');
SELECT customer_id, _dwr_status FROM shop_staging.customers ORDER BY 1;

-- @example dwr_merge_all
SELECT target, status, inserted, updated FROM dwr_merge_all(:reload);

-- @example dwr_retry_errors
INSERT INTO shop_staging.customers (customer_id, name, updated_at) VALUES (7, 'Kathleen', NULL);
SELECT errors FROM dwr_merge('shop.customers');
SELECT customer_id, _dwr_status, _dwr_error FROM shop_staging.customers WHERE _dwr_status = 'ERROR';
UPDATE shop_staging.customers SET updated_at = '2025-01-14 08:00+00' WHERE customer_id = 7;
SELECT dwr_retry_errors('shop.customers');
SELECT inserted FROM dwr_merge('shop.customers');

-- @example dwr_merge_batches
INSERT INTO shop_staging.customers (customer_id, name, city, updated_at)
  SELECT g, 'customer ' || g, 'Oslo', '2025-01-15 08:00+00' FROM generate_series(100, 2599) g;
CALL dwr_merge_batches('shop.customers', batch_size => 1000);
SELECT new_rows, processed FROM dwr.staging_status WHERE target = 'shop.customers'::regclass;

-- @example dwr_replay
CREATE TABLE shop_staging.customer_changes ("Op" text, commit_ts timestamptz, customer_id int, name text,
    city text, updated_at timestamptz);
INSERT INTO shop_staging.customer_changes VALUES
  ('U', '2025-01-16 09:00+00', 2, 'Grace', 'Quito', '2025-01-16 09:00+00'),
  ('D', '2025-01-17 09:00+00', 4, 'Barbara', 'Kyiv', '2025-01-12 10:00+00'),
  ('I', '2025-01-17 10:00+00', 8, 'Frances', 'Boston', '2025-01-17 10:00+00'),
  ('D', '2025-01-17 11:00+00', 8, 'Frances', 'Boston', '2025-01-17 10:00+00');
SELECT status, inserted, updated, unchanged, deleted
  FROM dwr_replay('shop.customers', 'shop_staging.customer_changes', order_by => '{commit_ts}');
SELECT customer_id, city FROM shop.customers WHERE customer_id <= 8 ORDER BY 1;

-- @example dwr_undo
SELECT run_id AS replay_run FROM dwr.merge_runs
 WHERE target = 'shop.customers'::regclass AND deleted > 0 \gset
SELECT status, deleted, updated, inserted FROM dwr_undo(:replay_run);
SELECT customer_id, city FROM shop.customers WHERE customer_id <= 8 ORDER BY 1;

-- @example dwr_delete_absent
SELECT status, deleted FROM dwr_delete_absent('shop.customers', max_deletes => 10, dry_run => true);
SELECT dwr_delete_absent('shop.customers', max_deletes => 0);
SELECT status, deleted FROM dwr_delete_absent('shop.customers', max_deletes => 10);

-- @example dwr_purge_staging
SELECT dwr_purge_staging('shop.customers');
SELECT * FROM dwr.staging_status WHERE target = 'shop.customers'::regclass;

-- @example dwr_dms_table_mappings
SELECT jsonb_pretty(dwr_dms_table_mappings(:reload, 'SALES') -> 'rules' -> 1);

-- @example dwr_dms_task_settings
SELECT jsonb_pretty(dwr_dms_task_settings(:reload) -> 'TargetMetadata');

-- @example dwr_dms_cdc_task
SELECT d ->> 'CdcStartTime' AS cdc_start_time, d ->> 'CdcStopPosition' AS cdc_stop_position,
       d -> 'ChangeLogs' -> 0 ->> 'replay' AS replay
  FROM dwr_dms_cdc_task(:reload, 'SALES') d;

-- @example dwr_schedule
SELECT dwr_schedule('shop.customers', '*/5 * * * *');

-- @example dwr_end_reload
SELECT dwr_end_reload(:reload);

-- @example dwr_purge_audit
SELECT dwr_purge_audit(interval '90 days');

-- @example dwr_drop_staging
SELECT dwr_drop_staging('shop.orders');
SELECT dwr_drop_staging('shop.customers');

DROP SCHEMA shop, shop_staging CASCADE;
