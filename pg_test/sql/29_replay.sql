-- dwr_replay: a window's change log replayed into production, deletes included. The log is what a
-- CDC task started at the window's start wrote (DMS to S3: Op, the commit time with
-- TimestampColumnName, then the row), loaded into a table. Per key the last change decides: I and
-- U are merged as staged rows are, D removes production's row when production's version is not
-- newer than the D's (its version column: the deleted row's before image).
\set SHOW_CONTEXT never
CREATE SCHEMA rp;
CREATE TABLE rp.customers (id int PRIMARY KEY, name text NOT NULL, city text, updated_at timestamptz NOT NULL);
-- (on a Citus coordinator, pg_test/citus_schedule: production distributed, the same expected output)
\getenv citus DWR_CITUS
\if :{?citus}
SET citus.shard_count = 4;
SELECT create_distributed_table('rp.customers', 'id') AS distributed \gset
\endif
SELECT dwr_create_staging('rp.customers', 'rp_staging');
\! ${DWR_TLE_SYNC:-true}
-- production as CDC left it: the window's changes were lost
INSERT INTO rp.customers VALUES
  (1, 'one', 'Oslo', '2025-01-01'),   -- the source updated it twice, then deleted it
  (2, 'two', 'Lima', '2025-01-01'),   -- the source deleted it
  (3, 'three', 'Pune', '2025-01-01'), -- the source updated it
  (4, 'four', 'Kyiv', '2025-03-01'),  -- deleted in the window, but CDC has a newer row since
  (5, 'five', 'Oslo', '2025-01-01'),  -- deleted, then inserted again: the insert is last
  (9, 'nine', 'Lima', '2025-01-01');  -- not in the log: left alone
SELECT dwr_begin_reload('{rp.customers}', '2025-01-10', '2025-01-20') > 0 AS reload_open;

CREATE TABLE rp.changes ("Op" text, commit_ts timestamptz, id int, name text, city text, updated_at timestamptz);
INSERT INTO rp.changes VALUES
  ('U', '2025-01-11 10:00', 1, 'one v2', 'Oslo', '2025-01-11 10:00'),
  ('U', '2025-01-12 10:00', 1, 'one v3', 'Oslo', '2025-01-12 10:00'),
  ('D', '2025-01-13 10:00', 1, 'one v3', 'Oslo', '2025-01-12 10:00'),
  ('D', '2025-01-11 11:00', 2, 'two', 'Lima', '2025-01-01'),
  -- two changes of 3; the log's order, not the versions, says which is last
  ('U', '2025-01-14 09:00', 3, 'three v3', 'Pune', '2025-01-14 09:00'),
  ('U', '2025-01-12 09:00', 3, 'three v2', 'Pune', '2025-01-12 09:00'),
  ('D', '2025-01-15 10:00', 4, 'four', 'Kyiv', '2025-01-11 00:00'),
  ('D', '2025-01-11 12:00', 5, 'five', 'Oslo', '2025-01-01'),
  ('I', '2025-01-16 12:00', 5, 'five again', 'Pune', '2025-01-16 12:00'),
  -- inserted and deleted in the window: production never had it
  ('I', '2025-01-12 08:00', 6, 'six', 'Kyiv', '2025-01-12 08:00'),
  ('D', '2025-01-17 08:00', 6, 'six', 'Kyiv', '2025-01-12 08:00'),
  -- inserted in the window
  ('I', '2025-01-18 08:00', 7, 'seven', 'Lima', '2025-01-18 08:00'),
  -- lowercase, as Debezium writes them: c(reate), u(pdate), d(elete)
  ('c', '2025-01-18 09:00', 8, 'eight', 'Oslo', '2025-01-18 09:00'),
  -- an operation nobody writes, and none: ERROR rows
  ('X', '2025-01-18 10:00', 10, 'ten', 'Oslo', '2025-01-18 10:00'),
  (NULL, '2025-01-18 11:00', 11, 'eleven', 'Oslo', '2025-01-18 11:00'),
  -- a delete without a version (a key-only log): an ERROR row, production's row stays
  ('D', '2025-01-18 12:00', 9, NULL, NULL, NULL);

-- a dry run counts exactly and changes nothing
SELECT inserted, updated, unchanged, skipped_stale, skipped_deleted, deleted, errors, status
  FROM dwr_replay('rp.customers', 'rp.changes', order_by => '{commit_ts}', dry_run => true);
SELECT id, name, city, updated_at FROM rp.customers ORDER BY id;
-- the replay
SELECT inserted, updated, unchanged, skipped_stale, skipped_deleted, deleted, errors, status
  FROM dwr_replay('rp.customers', 'rp.changes', order_by => '{commit_ts}');
SELECT id, name, city, updated_at FROM rp.customers ORDER BY id;
-- the run on record: its counts, and the before image of every row it removed
SELECT kind, source_name, inserted, updated, deleted, errors FROM dwr.merge_runs
 WHERE target = 'rp.customers'::regclass ORDER BY run_id DESC LIMIT 1;
SELECT key, action, before ->> 'name' AS before_name, after ->> 'name' AS after_name
  FROM dwr.row_changes WHERE run_id = (SELECT max(run_id) FROM dwr.merge_runs WHERE target = 'rp.customers'::regclass)
 ORDER BY key, action;

-- the deleted keys stay deleted: the window's full load, which copied 2 and 6 before the source
-- deleted them, brings neither back (the replay's deletes left their tombstones)
INSERT INTO rp_staging.customers (id, name, city, updated_at) VALUES
  (2, 'two', 'Lima', '2025-01-10 12:00'), (6, 'six', 'Kyiv', '2025-01-12 08:00');
SELECT inserted, updated, skipped_deleted FROM dwr_merge('rp.customers');
SELECT count(*) AS brought_back FROM rp.customers WHERE id IN (2, 6);

-- replayed again, nothing changes: every change is already in production
SELECT inserted, updated, unchanged, skipped_stale, deleted, errors
  FROM dwr_replay('rp.customers', 'rp.changes', order_by => '{commit_ts}');

-- undo of the replay puts the removed rows back (unless their key came back since) and takes
-- back its inserts and updates
SELECT run_id AS replay_run FROM dwr.merge_runs
 WHERE target = 'rp.customers'::regclass AND kind = 'merge' AND status <> 'DRY_RUN' AND deleted > 0
 ORDER BY run_id LIMIT 1 \gset
SET client_min_messages = warning;
SELECT inserted, updated, deleted, skipped_stale, status FROM dwr_undo(:replay_run);
RESET client_min_messages;
SELECT id, name, city, updated_at FROM rp.customers ORDER BY id;

-- what it refuses
\set VERBOSITY default
SELECT dwr_replay('rp.customers', 'rp.changes', order_by => '{}');
SELECT dwr_replay('rp.customers', 'rp.changes', order_by => '{commit_ts}', operation => 'op');
SELECT dwr_replay('rp.customers', 'rp.changes', order_by => '{commit_time}');
SELECT dwr_replay('rp.customers', 'rp.changes', order_by => NULL);
\set VERBOSITY terse

SELECT dwr_end_reload(r.reload_id) FROM dwr.reloads r WHERE 'rp.customers'::regclass = ANY (r.targets) AND r.ended_at IS NULL;
SELECT dwr_drop_staging('rp.customers');
DROP SCHEMA rp, rp_staging CASCADE;
