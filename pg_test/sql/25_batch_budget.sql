-- CALL dwr_merge_batches with a stall budget: with max_stall the batches are sized from the time
-- the last one took, so that no row stays locked longer than that. How many batches that makes
-- depends on the machine's speed, so their NOTICEs are not shown, and this file runs last (the
-- runs it makes would shift the run numbers later files show). The end state is the single
-- merge's, as always (the data of 19_batches). Run against the pg_tle package too.
\set SHOW_CONTEXT never
\i pg_test/fixtures/batches_setup.sql
CREATE SCHEMA bat_budget_one;
CREATE SCHEMA bat_budget_many;
SELECT pg_temp.setup('bat_budget_one'), pg_temp.setup('bat_budget_many');
\! ${DWR_TLE_SYNC:-true}
SELECT inserted, updated, unchanged, skipped_stale, errors FROM dwr_merge('bat_budget_one.t');
SET client_min_messages = warning;
CALL dwr_merge_batches('bat_budget_many.t', batch_size => 20, max_stall => interval '50 ms');
RESET client_min_messages;
SELECT count(*) AS differing_rows FROM (
  (SELECT * FROM bat_budget_one.t EXCEPT SELECT * FROM bat_budget_many.t)
  UNION ALL (SELECT * FROM bat_budget_many.t EXCEPT SELECT * FROM bat_budget_one.t)) d;
SELECT count(*) AS differing_statuses FROM (
  (SELECT id, _dwr_status, _dwr_error FROM bat_budget_one_staging.t EXCEPT SELECT id, _dwr_status, _dwr_error FROM bat_budget_many_staging.t)
  UNION ALL (SELECT id, _dwr_status, _dwr_error FROM bat_budget_many_staging.t EXCEPT SELECT id, _dwr_status, _dwr_error FROM bat_budget_one_staging.t)) d;
-- every planned step merged once: the runs' rows add up to the staged rows
SELECT count(*) >= 1 AS runs, sum(inserted + updated + unchanged + skipped_stale + skipped_deleted
       + skipped_outside_window + deferred + errors) AS rows_merged
  FROM dwr.merge_runs WHERE target = 'bat_budget_many.t'::regclass;
-- every run, the single merge's and each batch's, recorded when it began writing production: the
-- time from then to its commit is how long its rows stayed locked, which sizes the next batch
SELECT target, count(*) FILTER (WHERE writes_began > started_at AND writes_began < finished_at)
                  = count(*) AS every_run_stamped
  FROM dwr.merge_runs WHERE target IN ('bat_budget_one.t'::regclass, 'bat_budget_many.t'::regclass)
 GROUP BY target ORDER BY target::text COLLATE "C";
-- batch_size is the largest a batch may grow to under a budget: never more than 20 keys here
SELECT max(inserted + updated + unchanged + skipped_stale + skipped_deleted + skipped_outside_window
           + deferred + errors) <= 20 AS at_most_batch_size
  FROM dwr.merge_runs WHERE target = 'bat_budget_many.t'::regclass;
-- A budget given with batch_size left at its default (50,000 keys) still sizes the batches: the
-- first is 1000 keys, then each is sized from the last one's time (so 3000 staged keys take at
-- least two batches, whatever the machine's speed).
CREATE SCHEMA bat_budget_default;
CREATE TABLE bat_budget_default.t (id int PRIMARY KEY, val text, updated_at timestamptz NOT NULL);
SELECT dwr_create_staging('bat_budget_default.t', 'bat_budget_default_staging');
INSERT INTO bat_budget_default_staging.t (id, val, updated_at)
SELECT g, 'staged ' || g, '2025-01-01'::timestamptz + g * interval '1 minute' FROM generate_series(1, 3000) g;
\! ${DWR_TLE_SYNC:-true}
SET client_min_messages = warning;
CALL dwr_merge_batches('bat_budget_default.t', max_stall => interval '10 s');
RESET client_min_messages;
SELECT count(*) >= 2 AS several_batches, min(inserted) FILTER (WHERE run_id = first) AS first_batch,
       sum(inserted) AS inserted
  FROM dwr.merge_runs, LATERAL (SELECT min(run_id) AS first FROM dwr.merge_runs
                                 WHERE target = 'bat_budget_default.t'::regclass) f
 WHERE target = 'bat_budget_default.t'::regclass;
SELECT count(*) AS production_rows FROM bat_budget_default.t;
SELECT dwr_drop_staging('bat_budget_default.t');
DROP SCHEMA bat_budget_default, bat_budget_default_staging CASCADE;
\set VERBOSITY default
CALL dwr_merge_batches('bat_budget_many.t', max_stall => interval '0');
\set VERBOSITY terse
SELECT dwr_drop_staging('bat_budget_one.t'), dwr_drop_staging('bat_budget_many.t');
DROP SCHEMA bat_budget_one, bat_budget_one_staging, bat_budget_many, bat_budget_many_staging CASCADE;
