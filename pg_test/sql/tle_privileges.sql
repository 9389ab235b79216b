\set SHOW_CONTEXT never
-- Who may write the trail, in the pg_tle package (13_audit_privileges for the compiled extension).
-- A merge uses the caller's own privileges on production and staging; the run and its row images
-- are written by SECURITY DEFINER functions of the package owner, which act only for the session's
-- own roles and its own running run. A failed SELECT dwr_merge(...) leaves no FAILED run here (no
-- background worker): CALL dwr_merge_recorded(...) does.
CREATE SCHEMA tpriv;
CREATE TABLE tpriv.t (id int PRIMARY KEY, val text, updated_at timestamp);
INSERT INTO tpriv.t VALUES (1, 'v1', '2025-01-01');
SELECT dwr_create_staging('tpriv.t', staging_schema => 'tpriv_staging');
\! ${DWR_TLE_SYNC:-true}
INSERT INTO tpriv_staging.t VALUES (1, 'v2', '2025-01-02'), (2, 'v2', '2025-01-02');
CREATE ROLE dwr_tle_reader;
CREATE ROLE dwr_tle_writer;
-- (an RDS master user is not a superuser: to act as a role it must be a member)
GRANT dwr_tle_reader, dwr_tle_writer TO CURRENT_USER;
GRANT USAGE ON SCHEMA tpriv, tpriv_staging TO dwr_tle_reader, dwr_tle_writer;
GRANT SELECT ON tpriv.t, tpriv_staging.t TO dwr_tle_reader;
GRANT SELECT, INSERT, UPDATE, DELETE ON tpriv.t, tpriv_staging.t TO dwr_tle_writer;

-- a role that may only read: 42501 and nothing changed; through dwr_merge_recorded, on record
SET ROLE dwr_tle_reader;
SELECT * FROM dwr_merge('tpriv.t');
CALL dwr_merge_recorded('tpriv.t');
RESET ROLE;
TABLE tpriv.t ORDER BY id;
SELECT kind, target_name, status, run_by, error_sqlstate, inserted IS NULL AS no_counts
  FROM dwr.merge_runs WHERE target_name = 'tpriv.t' ORDER BY run_id;

-- a writer with no right on dwr merges, and its run and images are recorded
SET ROLE dwr_tle_writer;
SELECT status, inserted, updated FROM dwr_merge('tpriv.t');
RESET ROLE;
SELECT run_by, status FROM dwr.merge_runs WHERE target_name = 'tpriv.t' AND status <> 'FAILED';
SELECT action, key FROM dwr.row_changes r JOIN dwr.merge_runs m USING (run_id)
 WHERE m.target_name = 'tpriv.t' ORDER BY key;

-- ... but it cannot forge, change or erase audit rows, nor read the row images
SET ROLE dwr_tle_writer;
INSERT INTO dwr.merge_runs (target, target_name, source_name, dry_run, status, run_by, session_user_name, backend_pid, started_at)
VALUES (1, 'forged', 'forged', false, 'SUCCEEDED', 'x', 'x', 0, now());
UPDATE dwr.merge_runs SET status = 'SUCCEEDED';
DELETE FROM dwr.merge_runs;
INSERT INTO dwr.row_changes (run_id, target, key, action) VALUES (1, 1, '[1]', 'insert');
SELECT count(*) FROM dwr.row_changes;
SELECT dwr_purge_audit('0 seconds');
-- nor make the package's helpers act for a role it cannot become, or on a run that is not its own
SELECT dwr._begin_run('merge', NULL, 'tpriv.t'::regclass, 'x', 'x', false, false, 'postgres');
SELECT run_id AS finished_run FROM dwr.merge_runs WHERE target_name = 'tpriv.t' AND status = 'SUCCEEDED' \gset
\set VERBOSITY sqlstate
SELECT dwr._finish_run(:finished_run, 'SUCCEEDED', 0, 0, 0, 0, 0, 0, 0, 0, NULL);
\set VERBOSITY default
SELECT :'LAST_ERROR_MESSAGE' = format('run %s is not a running run of this session', :finished_run) AS refused_not_running;
SELECT dwr._record_failed('tpriv.t', 'x', false, now(), 'postgres', 'XX000', 'forged');
RESET ROLE;
SELECT count(*) AS runs, count(*) FILTER (WHERE status = 'FAILED') AS failed
  FROM dwr.merge_runs WHERE target_name = 'tpriv.t';

SELECT dwr_drop_staging('tpriv.t');
DROP SCHEMA tpriv CASCADE;
DROP OWNED BY dwr_tle_reader, dwr_tle_writer;
DROP ROLE dwr_tle_reader, dwr_tle_writer;
\! ${DWR_TLE_SYNC:-true}
