-- The pg_tle package's side of 20_undo_failure: an undo that fails for a reason that is not about
-- one row (a trigger that cancels it) rolls back whole, like the compiled extension's, but leaves no
-- FAILED undo run: the compiled extension writes that record from a background worker, outside the
-- failing transaction, and a trusted extension has none (a failed merge is recorded by calling
-- dwr_merge_recorded, a procedure that can commit; an undo is run by hand, and its error is the
-- record). The merge can then still be undone. (docs/managed-postgresql.md)
\set SHOW_CONTEXT never
CREATE SCHEMA undofail;
CREATE TABLE undofail.t (id int PRIMARY KEY, val text, updated_at int);
INSERT INTO undofail.t VALUES (1, 'v1', 1);
SELECT dwr_create_staging('undofail.t', 'undofail_staging');
\! ${DWR_TLE_SYNC:-true}
INSERT INTO undofail_staging.t (id, val, updated_at) VALUES (1, 'v2', 2), (2, 'new', 2);
SELECT run_id AS merged FROM dwr_merge('undofail.t') \gset
CREATE FUNCTION undofail.stop() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'undo canceled' USING ERRCODE = 'query_canceled';
END $$;
CREATE TRIGGER stop BEFORE DELETE ON undofail.t FOR EACH ROW EXECUTE FUNCTION undofail.stop();
SELECT status FROM dwr_undo(:merged);
SELECT kind, status, undo_of IS NULL AS undo_of_null, error_sqlstate, error_message
  FROM dwr.merge_runs WHERE target = 'undofail.t'::regclass ORDER BY run_id;
TABLE undofail.t ORDER BY id;
DROP TRIGGER stop ON undofail.t;
SET client_min_messages = warning;   -- (the undo's NOTICE names the run)
SELECT status, updated FROM dwr_undo(:merged);
RESET client_min_messages;
TABLE undofail.t ORDER BY id;
SELECT dwr_drop_staging('undofail.t');
DROP SCHEMA undofail, undofail_staging CASCADE;
