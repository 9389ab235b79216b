-- The row audit: every production row a merge changes gets its before and after image in
-- dwr.row_changes (dwr.row_audit, on by default), and dwr_undo takes a merge back from them.
-- (errors raised inside PL/pgSQL carry a CONTEXT line in the pg_tle package; not shown, as in
-- the compiled extension; ${DWR_TLE_SYNC:-true} is where a pg_tle operator runs dwr tle install)
\set SHOW_CONTEXT never
-- run ids from 1001 on, whichever scenarios ran before this one (messages below name runs)
SELECT setval('dwr.merge_runs_run_id_seq', 1000) AS last_run_id_before;
CREATE SCHEMA aud;
CREATE TABLE aud.t (
    id       uuid PRIMARY KEY,
    n        numeric(12,3),
    i        integer,
    b        boolean,
    txt      text,
    doc      jsonb,
    raw      bytea,
    tags     text[],
    at       timestamptz,
    day      date,
    updated_at timestamp
);
INSERT INTO aud.t VALUES
    ('00000000-0000-0000-0000-000000000001', 1.5, 1, true, 'one', '{"a": [1, 2]}', '\xdead', '{x,y}', '2025-01-01 10:00+00', '2025-01-01', '2025-01-01'),
    ('00000000-0000-0000-0000-000000000002', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '2025-01-01'),
    ('00000000-0000-0000-0000-000000000003', 3, 3, false, 'three', '[]', '\x00', '{}', '2025-01-03 10:00+00', '2025-01-03', '2025-01-01');
CREATE TEMP TABLE before_merge AS SELECT * FROM aud.t;
SELECT dwr_create_staging('aud.t', staging_schema => 'aud_staging');
\! ${DWR_TLE_SYNC:-true}
INSERT INTO aud_staging.t (id, n, i, b, txt, doc, raw, tags, at, day, updated_at) VALUES
    ('00000000-0000-0000-0000-000000000001', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '2025-01-02'),
    ('00000000-0000-0000-0000-000000000002', 2.25, 2, true, 'two', '{"b": null}', '\xbeef', '{"q r"}', '2025-01-02 10:00+00', '2025-01-02', '2025-01-02'),
    ('00000000-0000-0000-0000-000000000003', 33, 33, true, 'three, newer', '{}', '\x01', '{z}', '2025-01-03 11:00+00', '2025-01-04', '2025-01-02'),
    ('00000000-0000-0000-0000-000000000004', 4, 4, true, 'four', '{}', '\x04', '{}', '2025-01-04 10:00+00', '2025-01-04', '2025-01-02');
SELECT run_id AS merge_run, inserted, updated FROM dwr_merge('aud.t') \gset
\echo inserted :inserted updated :updated
-- one image pair per changed row; an insert has no before image
SELECT action, key, before IS NULL AS no_before, after ->> 'txt' AS after_txt
  FROM dwr.row_changes WHERE run_id = :merge_run ORDER BY key;
SELECT before, after FROM dwr.row_changes
 WHERE run_id = :merge_run AND key = '["00000000-0000-0000-0000-000000000002"]';

-- undo puts back exactly what was there, NULLs and every type included
SELECT status, updated, skipped_stale, skipped_deleted, errors FROM dwr_undo(:merge_run);
SELECT count(*) AS rows_differing
  FROM ((TABLE aud.t EXCEPT TABLE before_merge) UNION ALL (TABLE before_merge EXCEPT TABLE aud.t)) d;
SELECT kind, undo_of = :merge_run AS undoes_it, status, updated, deleted, row_audit
  FROM dwr.merge_runs WHERE undo_of = :merge_run;
-- the undo is audited too
SELECT r.action, count(*) FROM dwr.row_changes r JOIN dwr.merge_runs m ON m.run_id = r.run_id
 WHERE m.undo_of = :merge_run GROUP BY 1 ORDER BY 1;

-- undoing twice, undoing an undo, a dry run, a run that changed nothing, a run that does not exist
\set VERBOSITY default
SELECT dwr_undo(:merge_run);
\echo :LAST_ERROR_SQLSTATE
SELECT dwr_undo(run_id) FROM dwr.merge_runs WHERE undo_of = :merge_run;
\echo :LAST_ERROR_SQLSTATE
SELECT run_id AS dry_run_id FROM dwr_merge('aud.t', dry_run => true) \gset
SELECT dwr_undo(:dry_run_id);
\echo :LAST_ERROR_SQLSTATE
SELECT run_id AS empty_run FROM dwr_merge('aud.t') \gset
SELECT dwr_undo(:empty_run);
\echo :LAST_ERROR_SQLSTATE
SELECT dwr_undo(-42);
\echo :LAST_ERROR_SQLSTATE

-- undo spares what changed since: a row CDC updated, a row CDC deleted (no resurrection)
CREATE TABLE aud.s (id int PRIMARY KEY, val text, updated_at timestamp);
INSERT INTO aud.s VALUES (1, 'v1', '2025-01-01'), (2, 'v1', '2025-01-01'), (3, 'v1', '2025-01-01');
SELECT dwr_create_staging('aud.s', staging_schema => 'aud_staging');
\! ${DWR_TLE_SYNC:-true}
INSERT INTO aud_staging.s VALUES (1, 'v2', '2025-01-02'), (2, 'v2', '2025-01-02'), (3, 'v2', '2025-01-02'), (4, 'v2', '2025-01-02');
SELECT run_id AS s_run FROM dwr_merge('aud.s') \gset
UPDATE aud.s SET val = 'cdc v3', updated_at = '2025-01-03' WHERE id = 1;
DELETE FROM aud.s WHERE id = 2;
SELECT updated, skipped_stale, skipped_deleted FROM dwr_undo(:s_run);
TABLE aud.s ORDER BY id;

-- an inserted row that children now reference is reported, not forced out
CREATE TABLE aud.parent (id int PRIMARY KEY, updated_at timestamp);
CREATE TABLE aud.child (id int PRIMARY KEY, parent_id int REFERENCES aud.parent);
SELECT dwr_create_staging('aud.parent', staging_schema => 'aud_staging');
\! ${DWR_TLE_SYNC:-true}
INSERT INTO aud_staging.parent VALUES (1, '2025-01-01'), (2, '2025-01-01');
SELECT run_id AS p_run FROM dwr_merge('aud.parent') \gset
INSERT INTO aud.child VALUES (10, 1);
SELECT status, errors FROM dwr_undo(:p_run);
TABLE aud.parent ORDER BY id;
SELECT deleted FROM dwr.merge_runs WHERE undo_of = :p_run;

-- with dwr.row_audit off, no images are written, and such a run cannot be undone
SET dwr.row_audit = off;
INSERT INTO aud_staging.s VALUES (5, 'v1', '2025-01-02');
SELECT run_id AS quiet_run, inserted FROM dwr_merge('aud.s') \gset
SELECT count(*) AS images FROM dwr.row_changes WHERE run_id = :quiet_run;
SELECT row_audit FROM dwr.merge_runs WHERE run_id = :quiet_run;
SELECT dwr_undo(:quiet_run);
\echo :LAST_ERROR_SQLSTATE
RESET dwr.row_audit;

-- dwr_purge_audit deletes old images; every run stays in dwr.merge_runs
SELECT dwr_purge_audit('1 hour') AS purged_recent;
SELECT count(*) > 0 AS images_left FROM dwr.row_changes;
SELECT dwr_purge_audit('0 seconds') > 0 AS purged_all;
SELECT count(*) AS images_left FROM dwr.row_changes;
SELECT count(*) > 0 AS runs_kept FROM dwr.merge_runs;
SELECT dwr_purge_audit(NULL);
\echo :LAST_ERROR_SQLSTATE
