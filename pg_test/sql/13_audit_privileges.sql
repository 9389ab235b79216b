-- Who may write the trail. A merge uses only the caller's own privileges on production and
-- staging; its run and row images are written by the extension's own code as the extension owner,
-- so a writer with no right on dwr is audited, and nobody else can forge or erase audit rows. A
-- merge that fails is recorded as FAILED by a background worker, although its transaction rolls
-- back and its error reaches the caller.
-- (where in the PL/pgSQL an error was raised is not shown: CONTEXT lines)
\set SHOW_CONTEXT never
CREATE SCHEMA priv;
CREATE TABLE priv.t (id int PRIMARY KEY, val text, updated_at timestamp);
INSERT INTO priv.t VALUES (1, 'v1', '2025-01-01');
SELECT dwr_create_staging('priv.t', staging_schema => 'priv_staging');
INSERT INTO priv_staging.t VALUES (1, 'v2', '2025-01-02'), (2, 'v2', '2025-01-02');
CREATE ROLE dwr_reader;
CREATE ROLE dwr_writer;
GRANT USAGE ON SCHEMA priv, priv_staging TO dwr_reader, dwr_writer;
GRANT SELECT ON priv.t, priv_staging.t TO dwr_reader;
GRANT SELECT, INSERT, UPDATE, DELETE ON priv.t, priv_staging.t TO dwr_writer;

-- a role that may only read: 42501, nothing changed, and the failure is on record
SET ROLE dwr_reader;
\set VERBOSITY default
SELECT * FROM dwr_merge('priv.t');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
TABLE priv.t ORDER BY id;
SELECT count(*) AS still_new FROM priv_staging.t WHERE _dwr_status = 'NEW';
SELECT kind, target_name, status, run_by, error_sqlstate, error_message,
       finished_at >= started_at AS timed, inserted IS NULL AS no_counts
  FROM dwr.merge_runs WHERE target_name = 'priv.t' ORDER BY run_id;

-- (a merge that fails on dwr.lock_timeout is recorded the same way: pg_test/specs/merge_vs_merge)

-- a writer with no right on dwr merges, and its run and images are recorded
SET ROLE dwr_writer;
SELECT status, inserted, updated FROM dwr_merge('priv.t');
RESET ROLE;
SELECT run_by, status FROM dwr.merge_runs WHERE target_name = 'priv.t' AND status <> 'FAILED';
SELECT action, key FROM dwr.row_changes r JOIN dwr.merge_runs m USING (run_id)
 WHERE m.target_name = 'priv.t' ORDER BY key;

-- ... but it cannot forge, change or erase audit rows, nor read the row images
SET ROLE dwr_writer;
INSERT INTO dwr.merge_runs (target, target_name, source_name, dry_run, status, run_by, session_user_name, backend_pid, started_at)
VALUES (1, 'forged', 'forged', false, 'SUCCEEDED', 'x', 'x', 0, now());
UPDATE dwr.merge_runs SET status = 'SUCCEEDED';
DELETE FROM dwr.merge_runs;
TRUNCATE dwr.merge_runs;
INSERT INTO dwr.row_changes (run_id, target, key, action) VALUES (1, 1, '[1]', 'insert');
DELETE FROM dwr.row_changes;
SELECT count(*) FROM dwr.row_changes;
SELECT dwr_purge_audit('0 seconds');
RESET ROLE;
SELECT count(*) AS runs FROM dwr.merge_runs WHERE target_name = 'priv.t';

DROP OWNED BY dwr_reader, dwr_writer;
DROP ROLE dwr_reader, dwr_writer;
