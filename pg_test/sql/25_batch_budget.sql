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
\set VERBOSITY default
CALL dwr_merge_batches('bat_budget_many.t', max_stall => interval '0');
\set VERBOSITY terse
SELECT dwr_drop_staging('bat_budget_one.t'), dwr_drop_staging('bat_budget_many.t');
DROP SCHEMA bat_budget_one, bat_budget_one_staging, bat_budget_many, bat_budget_many_staging CASCADE;
