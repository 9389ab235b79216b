-- Deletes by absence: once the window's full load is complete, dwr_delete_absent removes the
-- production rows of the reload's window whose key the load lacks (the source deleted them during
-- the outage). Opt-in, a call of its own; a limit refuses more than expected; every removed row
-- keeps its before image and dwr_undo puts it back.
\set SHOW_CONTEXT never
CREATE SCHEMA da;
CREATE TABLE da.t (id int PRIMARY KEY, val text, updated_at timestamptz NOT NULL);
-- (on a Citus coordinator, pg_test/citus_schedule: production distributed, the same expected output)
\getenv citus DWR_CITUS
\if :{?citus}
SET citus.shard_count = 4;
SELECT create_distributed_table('da.t', 'id') AS distributed \gset
\endif
SELECT dwr_create_staging('da.t', 'da_staging');
\! ${DWR_TLE_SYNC:-true}
INSERT INTO da.t VALUES
  (1, 'in the window, loaded', '2025-01-12'),
  (2, 'in the window, deleted at the source', '2025-01-13'),
  (3, 'in the window, deleted at the source', '2025-01-14'),
  (4, 'before the window', '2025-01-02'),
  (5, 'after the window (CDC since)', '2025-02-01'),
  (6, 'in the window, loaded and merged', '2025-01-15');
-- without an open reload there is no window: refused
\set VERBOSITY default
SELECT dwr_delete_absent('da.t', max_deletes => 10);
\set VERBOSITY terse
SELECT dwr_begin_reload('{da.t}', '2025-01-10', '2025-01-20') > 0 AS reload_open;
-- the full load: keys 1 and 6 (6 merged already: a staged row in any status counts)
INSERT INTO da_staging.t (id, val, updated_at) VALUES (1, 'in the window, loaded', '2025-01-12'),
  (6, 'in the window, loaded and merged', '2025-01-16');
SELECT updated, unchanged FROM dwr_merge('da.t');
-- what it would remove: dwr_diff lists them
SELECT key, difference FROM dwr_diff('da.t') WHERE difference = 'missing_in_staging' ORDER BY key;
-- more than expected: refused, nothing removed
\set VERBOSITY default
SELECT dwr_delete_absent('da.t', max_deletes => 1);
\set VERBOSITY terse
SELECT count(*) AS rows_left FROM da.t;
-- a dry run counts and changes nothing
SELECT deleted, status FROM dwr_delete_absent('da.t', max_deletes => 2, dry_run => true);
SELECT count(*) AS rows_left FROM da.t;
-- the removal
SELECT deleted, deferred, status FROM dwr_delete_absent('da.t', max_deletes => 2);
SELECT id, val FROM da.t ORDER BY id;
-- on record, with the before images
SELECT deleted FROM dwr.merge_runs WHERE target = 'da.t'::regclass ORDER BY run_id DESC LIMIT 1;
SELECT key, action, before ->> 'val' AS before_val FROM dwr.row_changes
 WHERE run_id = (SELECT max(run_id) FROM dwr.merge_runs WHERE target = 'da.t'::regclass) ORDER BY key;
-- a removed key stays removed: a staged row of it (an older one) is skipped
INSERT INTO da_staging.t (id, val, updated_at) VALUES (2, 'loaded late', '2025-01-11');
SELECT inserted, skipped_deleted FROM dwr_merge('da.t');
-- undone: the rows come back
SELECT run_id AS absent_run FROM dwr.merge_runs WHERE target = 'da.t'::regclass AND deleted > 0 AND status = 'SUCCEEDED'
 ORDER BY run_id LIMIT 1 \gset
SET client_min_messages = warning;
SELECT inserted, status FROM dwr_undo(:absent_run);
RESET client_min_messages;
SELECT id, val FROM da.t ORDER BY id;
\set VERBOSITY default
SELECT dwr_delete_absent('da.t', max_deletes => -1);
SELECT dwr_delete_absent('da.t', max_deletes => NULL);
\set VERBOSITY terse
SELECT dwr_end_reload(r.reload_id) FROM dwr.reloads r WHERE 'da.t'::regclass = ANY (r.targets) AND r.ended_at IS NULL;
SELECT dwr_drop_staging('da.t');
DROP SCHEMA da, da_staging CASCADE;
