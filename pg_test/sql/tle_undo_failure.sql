-- The pg_tle package's side of 20_undo_failure: an undo that fails for a reason that is not about
-- one row (a trigger that cancels it) rolls back whole, like the compiled extension's, but leaves no
-- FAILED undo run: the compiled extension writes that record from a background worker, outside the
-- failing transaction, and a trusted extension has none (a failed merge is recorded by calling
-- dwr_merge_recorded, a procedure that can commit; an undo is run by hand, and its error is the
-- record). The merge can then still be undone. (docs/managed-postgresql.md)
\set SHOW_CONTEXT never
\i pg_test/include/undo_failure_setup.psql
SELECT kind, status, undo_of IS NULL AS undo_of_null, error_sqlstate, error_message
  FROM dwr.merge_runs WHERE target = 'undofail.t'::regclass ORDER BY run_id;
\i pg_test/include/undo_failure_retry.psql
