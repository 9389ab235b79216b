-- An undo that fails for a reason that is not about one row (here a trigger that cancels it) rolls
-- back whole, and is recorded all the same: a FAILED undo run, written outside the failing
-- transaction. The merge it tried to take back can then still be undone.
\i pg_test/include/undo_failure_setup.psql
SELECT kind, status, undo_of IS NULL AS undo_of_null, source_name = 'dwr.row_changes of run ' || :merged AS names_the_run,
       error_sqlstate, error_message
  FROM dwr.merge_runs WHERE target = 'undofail.t'::regclass ORDER BY run_id;
\i pg_test/include/undo_failure_retry.psql
