-- Citus: a change log replayed, and deletes by absence, into a reference table, a distributed
-- table and a plain table of the coordinator from the same log and the same full load: the same
-- counts, the same production rows, the same row images (29_replay and 31_delete_absent, before
-- this file, ran the single-server scenarios on distributed tables). Then the extension is dropped.
\set SHOW_CONTEXT never
SET citus.shard_count = 4;
CREATE SCHEMA cd;
CREATE TABLE cd.ref (id int PRIMARY KEY, name text NOT NULL, updated_at timestamptz NOT NULL);
CREATE TABLE cd.dist (LIKE cd.ref INCLUDING ALL);
CREATE TABLE cd.plain (LIKE cd.ref INCLUDING ALL);
SELECT create_reference_table('cd.ref');
SELECT create_distributed_table('cd.dist', 'id');
SELECT dwr_create_staging('cd.ref'), dwr_create_staging('cd.dist'), dwr_create_staging('cd.plain');
-- production: keys 1 to 200, versions 1 to 200 hours into January
INSERT INTO cd.ref SELECT g, 'p' || g, '2025-01-01'::timestamptz + g * interval '1 hour' FROM generate_series(1, 200) g;
INSERT INTO cd.dist SELECT * FROM cd.ref;
INSERT INTO cd.plain SELECT * FROM cd.ref;
SELECT dwr_begin_reload('{cd.ref,cd.dist,cd.plain}', '2025-01-01', '2025-01-31') > 0 AS reload_open;

-- the log: 600 changes of keys 1 to 300 (I, U and D; versions older, equal and newer than
-- production's; several changes per key), a change without an operation and one without a version
CREATE TABLE cd.log ("Op" text, seq int, id int, name text, updated_at timestamptz);
INSERT INTO cd.log SELECT CASE g % 5 WHEN 0 THEN 'D' WHEN 1 THEN 'I' ELSE 'U' END, g, (g * 37) % 300 + 1,
  'v' || g, '2025-01-05'::timestamptz + (g % 200) * interval '1 hour' FROM generate_series(1, 600) g;
INSERT INTO cd.log VALUES (NULL, 601, 301, 'no operation', '2025-01-20'), ('U', 602, 302, 'no version', NULL);
SET dwr.row_audit = on;
SELECT 'ref' AS t, inserted, updated, unchanged, skipped_stale, deleted, errors, status
  FROM dwr_replay('cd.ref', 'cd.log', order_by => '{seq}', dry_run => true);
SELECT 'ref' AS t, inserted, updated, unchanged, skipped_stale, deleted, errors, status FROM dwr_replay('cd.ref', 'cd.log', order_by => '{seq}');
SELECT 'dist' AS t, inserted, updated, unchanged, skipped_stale, deleted, errors, status FROM dwr_replay('cd.dist', 'cd.log', order_by => '{seq}');
SELECT 'plain' AS t, inserted, updated, unchanged, skipped_stale, deleted, errors, status FROM dwr_replay('cd.plain', 'cd.log', order_by => '{seq}');
-- the same rows in all three
SELECT count(*) AS rows, count(*) FILTER (WHERE id > 200) AS inserted_keys FROM cd.plain;
SELECT count(*) AS ref_differs FROM ((TABLE cd.ref EXCEPT TABLE cd.plain) UNION ALL (TABLE cd.plain EXCEPT TABLE cd.ref)) d;
SELECT count(*) AS dist_differs FROM ((TABLE cd.dist EXCEPT TABLE cd.plain) UNION ALL (TABLE cd.plain EXCEPT TABLE cd.dist)) d;
-- the same images (of each table's last run; a timestamptz in an image is spelled in the time
-- zone of the node that wrote it, so images are compared as rows of the table)
\set images 'WITH images AS (SELECT m.target::text AS t, c.key, c.action, pg_catalog.to_jsonb(pg_catalog.jsonb_populate_record(NULL::cd.plain, c.before)) AS before, pg_catalog.to_jsonb(pg_catalog.jsonb_populate_record(NULL::cd.plain, c.after)) AS after FROM dwr.row_changes c JOIN dwr.merge_runs m USING (run_id) WHERE m.run_id IN (SELECT max(run_id) FROM dwr.merge_runs WHERE target::text LIKE ''cd.%'' GROUP BY target))'
:images SELECT t, action, count(*) FROM images GROUP BY 1, 2 ORDER BY 1, 2;
:images SELECT count(*) AS images_differ FROM (
  (SELECT key, action, before, after FROM images WHERE t = 'cd.dist' EXCEPT SELECT key, action, before, after FROM images WHERE t = 'cd.plain')
  UNION ALL (SELECT key, action, before, after FROM images WHERE t = 'cd.plain' EXCEPT SELECT key, action, before, after FROM images WHERE t = 'cd.ref')
  UNION ALL (SELECT key, action, before, after FROM images WHERE t = 'cd.ref' EXCEPT SELECT key, action, before, after FROM images WHERE t = 'cd.dist')) d;
-- replayed again, nothing changes
SELECT 'ref' AS t, inserted, updated, deleted FROM dwr_replay('cd.ref', 'cd.log', order_by => '{seq}');
SELECT 'dist' AS t, inserted, updated, deleted FROM dwr_replay('cd.dist', 'cd.log', order_by => '{seq}');
SELECT 'plain' AS t, inserted, updated, deleted FROM dwr_replay('cd.plain', 'cd.log', order_by => '{seq}');

-- the window's full load, older than every change, of keys 1 to 300: the deleted keys stay deleted
INSERT INTO staging.ref (id, name, updated_at) SELECT g, 'loaded ' || g, '2025-01-02' FROM generate_series(1, 300) g;
INSERT INTO staging.dist SELECT * FROM staging.ref;
INSERT INTO staging.plain SELECT * FROM staging.ref;
SELECT 'ref' AS t, inserted, skipped_deleted, skipped_stale FROM dwr_merge('cd.ref');
SELECT 'dist' AS t, inserted, skipped_deleted, skipped_stale FROM dwr_merge('cd.dist');
SELECT 'plain' AS t, inserted, skipped_deleted, skipped_stale FROM dwr_merge('cd.plain');

-- deletes by absence: the load lacks every seventh key
DELETE FROM staging.ref WHERE id % 7 = 0;
DELETE FROM staging.dist WHERE id % 7 = 0;
DELETE FROM staging.plain WHERE id % 7 = 0;
SELECT 'ref' AS t, deleted, status FROM dwr_delete_absent('cd.ref', max_deletes => 100, dry_run => true);
SELECT 'dist' AS t, deleted, status FROM dwr_delete_absent('cd.dist', max_deletes => 100, dry_run => true);
SELECT 'plain' AS t, deleted, status FROM dwr_delete_absent('cd.plain', max_deletes => 100, dry_run => true);
-- more than expected: refused
\set VERBOSITY default
SELECT dwr_delete_absent('cd.dist', max_deletes => 35);
\set VERBOSITY terse
SELECT 'ref' AS t, deleted, status FROM dwr_delete_absent('cd.ref', max_deletes => 100);
SELECT 'dist' AS t, deleted, status FROM dwr_delete_absent('cd.dist', max_deletes => 100);
SELECT 'plain' AS t, deleted, status FROM dwr_delete_absent('cd.plain', max_deletes => 100);
SELECT count(*) AS rows, count(*) FILTER (WHERE id % 7 = 0) AS absent_left FROM cd.plain;
SELECT count(*) AS ref_differs FROM ((TABLE cd.ref EXCEPT TABLE cd.plain) UNION ALL (TABLE cd.plain EXCEPT TABLE cd.ref)) d;
SELECT count(*) AS dist_differs FROM ((TABLE cd.dist EXCEPT TABLE cd.plain) UNION ALL (TABLE cd.plain EXCEPT TABLE cd.dist)) d;
:images SELECT count(*) AS images_differ FROM (
  (SELECT key, action, before, after FROM images WHERE t = 'cd.dist' EXCEPT SELECT key, action, before, after FROM images WHERE t = 'cd.plain')
  UNION ALL (SELECT key, action, before, after FROM images WHERE t = 'cd.plain' EXCEPT SELECT key, action, before, after FROM images WHERE t = 'cd.ref')
  UNION ALL (SELECT key, action, before, after FROM images WHERE t = 'cd.ref' EXCEPT SELECT key, action, before, after FROM images WHERE t = 'cd.dist')) d;

-- undone on the distributed and the plain table (a reference table's undo is refused): the
-- removed rows come back, the same on both
SET client_min_messages = warning;
SELECT 'dist' AS t, inserted, deleted, status FROM dwr_undo((SELECT max(run_id) FROM dwr.merge_runs WHERE target = 'cd.dist'::regclass AND deleted > 0 AND status = 'SUCCEEDED'));
SELECT 'plain' AS t, inserted, deleted, status FROM dwr_undo((SELECT max(run_id) FROM dwr.merge_runs WHERE target = 'cd.plain'::regclass AND deleted > 0 AND status = 'SUCCEEDED'));
SELECT count(*) AS dist_differs FROM ((TABLE cd.dist EXCEPT TABLE cd.plain) UNION ALL (TABLE cd.plain EXCEPT TABLE cd.dist)) d;
SELECT count(*) AS rows FROM cd.dist;
RESET client_min_messages;
RESET dwr.row_audit;

SELECT dwr_end_reload(r.reload_id) FROM dwr.reloads r WHERE r.ended_at IS NULL;
SELECT dwr_drop_staging('cd.ref'), dwr_drop_staging('cd.dist'), dwr_drop_staging('cd.plain');
DROP SCHEMA cd CASCADE;
DROP EXTENSION dms_window_reload;
