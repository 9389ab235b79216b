-- Citus (a coordinator and two workers): the merge into distributed and reference tables, on their
-- shards. Staging, the tombstone table and the merge's work tables are placed like production;
-- deletes routed to the shards (also under session_replication_role = replica) stop staged rows;
-- the window, statuses, row errors, dry run and row audit behave as on a single server; and
-- dwr_merge_all orders reference, distributed and plain tables by their foreign keys.
\set SHOW_CONTEXT never
SET citus.shard_count = 4;
CREATE EXTENSION dms_window_reload;
CREATE SCHEMA production;
CREATE TABLE production.regions (region_id int PRIMARY KEY, name text NOT NULL, updated_at timestamptz NOT NULL);
CREATE TABLE production.customers (customer_id int PRIMARY KEY, region_id int REFERENCES production.regions,
    name text NOT NULL CHECK (name <> 'bad'), updated_at timestamptz NOT NULL);
CREATE TABLE production.orders (customer_id int NOT NULL, order_id int NOT NULL,
    amount numeric(10,2), updated_at timestamptz NOT NULL, PRIMARY KEY (customer_id, order_id));
CREATE TABLE production.notes (note_id int PRIMARY KEY, body text NOT NULL, updated_at timestamptz NOT NULL);
SELECT create_reference_table('production.regions');
SELECT create_distributed_table('production.customers', 'customer_id');
SELECT create_distributed_table('production.orders', 'customer_id', colocate_with => 'production.customers');
ALTER TABLE production.orders ADD FOREIGN KEY (customer_id) REFERENCES production.customers;
INSERT INTO production.regions VALUES (1, 'north', '2025-01-10');
INSERT INTO production.customers SELECT g, 1, 'c' || g, '2025-01-10' FROM generate_series(1, 10) g;
INSERT INTO production.orders SELECT g, 1, 10, '2025-01-10' FROM generate_series(1, 10) g;

-- staging and the tombstone table are co-located with production (reference for a reference table)
SELECT dwr_create_staging('production.regions'), dwr_create_staging('production.customers'),
       dwr_create_staging('production.orders'), dwr_create_staging('production.notes');
SELECT logicalrelid, CASE WHEN partmethod = 'h' THEN 'distributed' ELSE 'reference' END AS kind,
       colocationid = (SELECT colocationid FROM pg_dist_partition WHERE logicalrelid = 'production.customers'::regclass) AS with_customers
  FROM pg_dist_partition WHERE logicalrelid::text LIKE 'staging.%' AND logicalrelid::text NOT LIKE 'staging._dwr%' ORDER BY 1::text;
-- and the merge's work tables (named after production's oid), placed the same way
SELECT count(*) FILTER (WHERE partmethod = 'h') AS distributed, count(*) FILTER (WHERE partmethod = 'n') AS reference
  FROM pg_dist_partition WHERE logicalrelid::text LIKE 'staging._dwr%';
-- the delete tracking is on every shard, enabled ALWAYS
SELECT DISTINCT result AS shard_triggers FROM run_command_on_shards('production.customers',
  $$SELECT tgenabled FROM pg_trigger WHERE tgrelid = '%s'::regclass AND tgname LIKE 'dwr_record_delete%%'$$);

-- the reload of a past window: from now on CDC's deletes stop staged rows of the same key
SELECT dwr_begin_reload('{production.customers}', '2025-01-01', '2025-01-31') AS reload_id \gset
-- CDC deletes customers 3 and 4 as DMS does (replica role), one of them inside a transaction
-- that rolls back part of its work: only committed deletes leave a tombstone
SET session_replication_role = replica;
DELETE FROM production.orders WHERE customer_id IN (3, 4);
DELETE FROM production.customers WHERE customer_id = 3;
BEGIN;
DELETE FROM production.customers WHERE customer_id = 4;
SAVEPOINT s;
DELETE FROM production.orders WHERE customer_id = 5;
ROLLBACK TO SAVEPOINT s;
COMMIT;
RESET session_replication_role;
SELECT customer_id FROM staging.customers_dwr_tombstones ORDER BY 1;
SELECT customer_id, order_id FROM staging.orders_dwr_tombstones ORDER BY 1;

-- the reloaded window
INSERT INTO staging.customers (customer_id, region_id, name, updated_at) VALUES
  (1, 1, 'newer', '2025-01-11'),        -- updated
  (2, 1, 'older', '2025-01-09'),        -- stale: production is newer
  (3, 1, 'deleted by CDC', '2025-01-11'), -- CDC deleted it: never resurrected
  (5, 1, 'c5', '2025-01-10'),           -- unchanged
  (11, 1, 'new', '2025-01-11'),         -- inserted
  (15, 1, 'new too', '2025-01-11'),     -- inserted
  (12, 1, 'bad', '2025-01-11'),         -- production's check rejects it: ERROR, the rest goes on
  (13, 1, 'no version', NULL),          -- ERROR
  (14, 1, 'outside', '2025-03-01');     -- outside the window: stays NEW
-- a dry run counts exactly and changes nothing
SELECT status, inserted, updated, unchanged, skipped_stale, skipped_deleted, skipped_outside_window, deferred, errors
  FROM dwr_merge('production.customers', dry_run => true);
SELECT count(*) AS new_rows FROM staging.customers WHERE _dwr_status = 'NEW';
SELECT status, inserted, updated, unchanged, skipped_stale, skipped_deleted, skipped_outside_window, deferred, errors
  FROM dwr_merge('production.customers');
SELECT customer_id, name, updated_at FROM production.customers WHERE customer_id IN (1, 2, 3, 5, 11, 12, 13, 14, 15) ORDER BY 1;
-- (the shard's name in the error depends on shard ids)
SELECT customer_id, _dwr_status, regexp_replace(_dwr_error, '_[0-9]+"', '_<shard>"') AS _dwr_error FROM staging.customers ORDER BY 1;
-- row audit: the images, on the coordinator
SELECT action, key, before ->> 'name' AS before_name, after ->> 'name' AS after_name
  FROM dwr.row_changes WHERE target = 'production.customers'::regclass ORDER BY key;
-- undo, on the shards too: the insert deleted, the update restored, and the row CDC changed
-- since left alone
SELECT run_id AS merge_run FROM dwr.merge_runs WHERE target = 'production.customers'::regclass AND status = 'SUCCEEDED_WITH_ERRORS' \gset
UPDATE production.customers SET name = 'changed by CDC', updated_at = '2025-01-20' WHERE customer_id = 15;
SELECT status, updated, skipped_stale, skipped_deleted, deferred, errors FROM dwr_undo(:merge_run);
SELECT customer_id, name, updated_at FROM production.customers WHERE customer_id IN (1, 11, 15) ORDER BY 1;
SELECT r.action, r.key, r.before ->> 'name' AS before_name, r.after ->> 'name' AS after_name
  FROM dwr.row_changes r JOIN dwr.merge_runs m USING (run_id) WHERE m.kind = 'undo' ORDER BY r.key;
-- the merge's work tables stay next to staging (dwr_create_staging made them), empty, for the
-- next merge; the undo's lived only in its transaction
SELECT n.nspname, count(*) AS work_tables FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relname LIKE '\_dwr\_%' AND c.relkind = 'r' GROUP BY 1 ORDER BY 1;
SELECT (SELECT count(*) FROM pg_dist_partition p JOIN pg_class c ON c.oid = p.logicalrelid
         WHERE c.relname LIKE '\_dwr\_%' AND p.colocationid = (SELECT colocationid FROM pg_dist_partition
                                                               WHERE logicalrelid = 'production.customers'::regclass)) AS co_located;
SELECT dwr_end_reload(:reload_id);

-- a delete after staging, before the merge: the staged row is skipped, not re-inserted
INSERT INTO staging.customers (customer_id, region_id, name, updated_at) VALUES (6, 1, 'c6 again', '2025-01-12');
DELETE FROM production.orders WHERE customer_id = 6;
DELETE FROM production.customers WHERE customer_id = 6;
SELECT status, updated, skipped_deleted FROM dwr_merge('production.customers');
SELECT count(*) AS resurrected FROM production.customers WHERE customer_id = 6;

-- dwr_merge_all: the reference table first, then customers, then their orders (foreign keys), and
-- the plain table; each on its own placement
INSERT INTO staging.regions VALUES (2, 'south', '2025-01-11');
INSERT INTO staging.customers (customer_id, region_id, name, updated_at) VALUES (20, 2, 'in the south', '2025-01-11');
INSERT INTO staging.orders (customer_id, order_id, amount, updated_at) VALUES (20, 1, 99.5, '2025-01-11'), (1, 1, 12, '2025-01-11');
INSERT INTO staging.notes VALUES (1, 'a plain table', '2025-01-11');
SELECT target, status, inserted, updated FROM dwr_merge_all();
SELECT r.name AS region, c.name AS customer, o.amount FROM production.orders o
  JOIN production.customers c USING (customer_id) JOIN production.regions r USING (region_id)
 WHERE o.customer_id IN (1, 20) ORDER BY o.customer_id;
TABLE production.notes;
-- an update of the reference table, on every node's copy
INSERT INTO staging.regions VALUES (1, 'north (renamed)', '2025-01-12');
SELECT status, updated FROM dwr_merge('production.regions');
SELECT name FROM production.regions ORDER BY region_id;
-- undo on a reference table is refused (each node's copy has its own xmin)
SELECT dwr_undo((SELECT max(run_id) FROM dwr.merge_runs WHERE target = 'production.regions'::regclass));
-- the reference table's copies agree on every node
SELECT DISTINCT result FROM run_command_on_placements('production.regions',
  'SELECT string_agg(region_id || '':'' || name || '':'' || updated_at, '','' ORDER BY region_id) FROM %s');

-- tombstones are pruned like on a single server: once no staged row or open reload needs them
SELECT dwr_purge_staging('production.customers', 'ALL') AS purged;
SELECT count(*) AS tombstones_left FROM staging.customers_dwr_tombstones;

\set VERBOSITY terse
-- one transaction each: Citus refuses DDL on a reference table after parallel DDL on a
-- distributed one in the same transaction
SELECT dwr_drop_staging('production.orders');
SELECT dwr_drop_staging('production.customers');
SELECT dwr_drop_staging('production.regions');
SELECT dwr_drop_staging('production.notes');
SELECT count(*) AS citus_tables_left FROM pg_dist_partition WHERE logicalrelid::text LIKE 'staging.%';
DROP SCHEMA production CASCADE;
DROP SCHEMA staging CASCADE;
DROP EXTENSION dms_window_reload;
