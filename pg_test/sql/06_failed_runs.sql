-- The merges of registered tables that failed in 06_errors are on record (FAILED, with their error),
-- written by a background worker after the rollback; calls refused before a registered table was
-- known leave no run. (The compiled extension: the pg_tle package records a failed merge through
-- CALL dwr_merge_recorded, pg_test/specs/tle_merge_failure_record.)
SELECT target_name, status, error_sqlstate FROM dwr.merge_runs WHERE target_name LIKE 'errs.%' ORDER BY run_id;
