-- The progress of a merge: once it has run dwr.progress_notice_after (default 5 s; 0: every merge;
-- -1: never) it reports each phase it enters as a NOTICE, the same in both modes; the compiled
-- extension also shows the phase in pg_stat_activity.query (pg_test/specs/batches_progress).
-- (Run against the pg_tle package too; ${DWR_TLE_SYNC:-true} is where a pg_tle operator runs dwr
-- tle install.)
\set SHOW_CONTEXT never
CREATE SCHEMA prog;
CREATE TABLE prog.t (id int PRIMARY KEY, val text, updated_at int);
INSERT INTO prog.t SELECT g, 'old', 1 FROM generate_series(1, 5) g;
SELECT dwr_create_staging('prog.t', 'prog_staging');
\! ${DWR_TLE_SYNC:-true}
INSERT INTO prog_staging.t (id, val, updated_at) SELECT g, 'new', 2 FROM generate_series(3, 8) g;
-- quiet by default: a merge this short is done long before 5 s
SELECT inserted, updated FROM dwr_merge('prog.t', dry_run => true);
SET dwr.progress_notice_after = 0;
-- step by step (the default, or after the fast way failed), with row audit: a phase per step
SELECT inserted, updated FROM dwr_merge('prog.t', dry_run => true);
-- the fast way: one statement classifies and writes
SET dwr.fast_merge = on;
SET dwr.row_audit = off;
SELECT inserted, updated FROM dwr_merge('prog.t');
RESET dwr.fast_merge;
SET dwr.progress_notice_after = -1;
UPDATE prog_staging.t SET _dwr_status = 'NEW';
SELECT inserted, updated, unchanged FROM dwr_merge('prog.t');
RESET dwr.progress_notice_after;
RESET dwr.row_audit;
SELECT dwr_drop_staging('prog.t');
DROP SCHEMA prog, prog_staging CASCADE;
