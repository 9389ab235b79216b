-- The fast way (one statement that classifies and writes, tried first) ends exactly where the
-- step-by-step way ends: identical tables, one merged with dwr.fast_merge on, the other off, from
-- the same staged rows (newer, older, equal, new keys, NULL keys and versions, outside the reload's
-- window, keys CDC deleted since — one of them inserted again by CDC — and a value at the reload's
-- LOB limit); with row audit off (t_off) and on (t_on: the fast way takes its images from
-- RETURNING old.*, new.* on PostgreSQL 18; before 18 both merges go step by step). Then the fast way
-- meets a row production rejects: it is rolled back and the merge goes step by step (its phases
-- show it), with the same result.
\set SHOW_CONTEXT never
CREATE SCHEMA fm_fast;
CREATE SCHEMA fm_step;
CREATE TABLE fm_fast.t_off (id int PRIMARY KEY, val text, body text, qty int CHECK (qty >= 0), updated_at timestamptz NOT NULL);
CREATE TABLE fm_fast.t_on (LIKE fm_fast.t_off INCLUDING ALL);
CREATE TABLE fm_step.t_off (LIKE fm_fast.t_off INCLUDING ALL);
CREATE TABLE fm_step.t_on (LIKE fm_fast.t_off INCLUDING ALL);
INSERT INTO fm_fast.t_off SELECT g, 'prod ' || g, NULL, 1, '2025-01-10'::timestamptz + g * interval '1 minute'
  FROM generate_series(1, 40) g;
INSERT INTO fm_fast.t_on SELECT * FROM fm_fast.t_off;
INSERT INTO fm_step.t_off SELECT * FROM fm_fast.t_off;
INSERT INTO fm_step.t_on SELECT * FROM fm_fast.t_off;
SELECT dwr_create_staging('fm_fast.t_off', 'fm_fast_staging'), dwr_create_staging('fm_fast.t_on', 'fm_fast_staging'),
       dwr_create_staging('fm_step.t_off', 'fm_step_staging'), dwr_create_staging('fm_step.t_on', 'fm_step_staging');
\! ${DWR_TLE_SYNC:-true}
SELECT dwr_begin_reload('{fm_fast.t_off,fm_fast.t_on,fm_step.t_off,fm_step.t_on}', '2025-01-01', '2025-01-31') AS rid \gset
SELECT dwr._record_lob_limit(:rid, 1, CURRENT_USER);   -- a LobMaxSize of 1 KB (dwr_dms_task_settings)
-- CDC deletes 5 and 6 after the reload began; 6 comes back, newer
DELETE FROM fm_fast.t_off WHERE id IN (5, 6);
DELETE FROM fm_fast.t_on WHERE id IN (5, 6);
DELETE FROM fm_step.t_off WHERE id IN (5, 6);
DELETE FROM fm_step.t_on WHERE id IN (5, 6);
INSERT INTO fm_fast.t_off VALUES (6, 'cdc again', NULL, 1, '2025-01-12');
INSERT INTO fm_fast.t_on VALUES (6, 'cdc again', NULL, 1, '2025-01-12');
INSERT INTO fm_step.t_off VALUES (6, 'cdc again', NULL, 1, '2025-01-12');
INSERT INTO fm_step.t_on VALUES (6, 'cdc again', NULL, 1, '2025-01-12');
CREATE TEMP TABLE staged AS
SELECT g AS id, 'staged ' || g AS val, NULL::text AS body, 2 AS qty,
       CASE WHEN g % 5 = 0 THEN '2025-01-10'::timestamptz + g * interval '1 minute' + interval '1 hour'  -- newer
            WHEN g % 5 = 1 THEN '2025-01-10'::timestamptz + g * interval '1 minute' - interval '1 hour'  -- older
            WHEN g % 5 = 2 THEN '2025-01-10'::timestamptz + g * interval '1 minute'                     -- equal
            WHEN g % 5 = 3 THEN '2025-03-01'::timestamptz                                              -- after the window
            ELSE '2025-01-20'::timestamptz END AS updated_at                                          -- newer, or new
  FROM generate_series(1, 60) g WHERE g <> 6;
INSERT INTO staged VALUES (61, 'no version', NULL, 2, NULL), (6, 'older than CDC''s', NULL, 2, '2025-01-11'),
                          (62, 'at the LOB limit', repeat('x', 1100), 2, '2025-01-15');
UPDATE staged SET updated_at = '2025-01-25' WHERE id = 5;
INSERT INTO fm_fast_staging.t_off (id, val, body, qty, updated_at) SELECT * FROM staged;
INSERT INTO fm_fast_staging.t_on (id, val, body, qty, updated_at) SELECT * FROM staged;
INSERT INTO fm_step_staging.t_off (id, val, body, qty, updated_at) SELECT * FROM staged;
INSERT INTO fm_step_staging.t_on (id, val, body, qty, updated_at) SELECT * FROM staged;

SET dwr.fast_merge = on;
SET dwr.row_audit = off;
SELECT 'fast, row audit off' AS way, inserted, updated, unchanged, skipped_stale, skipped_deleted, skipped_outside_window, deferred, errors
  FROM dwr_merge('fm_fast.t_off');
SET dwr.row_audit = on;
SELECT 'fast, row audit on' AS way, inserted, updated, unchanged, skipped_stale, skipped_deleted, skipped_outside_window, deferred, errors
  FROM dwr_merge('fm_fast.t_on');
SET dwr.fast_merge = off;
SET dwr.row_audit = off;
SELECT 'step by step, row audit off' AS way, inserted, updated, unchanged, skipped_stale, skipped_deleted, skipped_outside_window, deferred, errors
  FROM dwr_merge('fm_step.t_off');
SET dwr.row_audit = on;
SELECT 'step by step, row audit on' AS way, inserted, updated, unchanged, skipped_stale, skipped_deleted, skipped_outside_window, deferred, errors
  FROM dwr_merge('fm_step.t_on');
RESET dwr.fast_merge;
-- the fast way finished rather than fell back: it writes every row it writes in one statement (one
-- transaction id and command id on the rows), step by step inserts and updates are statements of
-- their own; with row audit on, the fast way exists from PostgreSQL 18 (RETURNING old.*)
SELECT tbl,
       (statements OPERATOR(pg_catalog.=) 1) = (tbl = 'fm_fast.t_off' OR
            (tbl = 'fm_fast.t_on' AND current_setting('server_version_num')::int >= 180000)) AS the_way_expected
  FROM (SELECT 'fm_fast.t_off' AS tbl, count(DISTINCT (xmin::text, cmin::text)) AS statements FROM fm_fast.t_off WHERE val LIKE 'staged%'
        UNION ALL SELECT 'fm_fast.t_on', count(DISTINCT (xmin::text, cmin::text)) FROM fm_fast.t_on WHERE val LIKE 'staged%'
        UNION ALL SELECT 'fm_step.t_off', count(DISTINCT (xmin::text, cmin::text)) FROM fm_step.t_off WHERE val LIKE 'staged%'
        UNION ALL SELECT 'fm_step.t_on', count(DISTINCT (xmin::text, cmin::text)) FROM fm_step.t_on WHERE val LIKE 'staged%') w
 ORDER BY tbl;
-- the same production rows, statuses, errors and row images
SELECT count(*) AS differing_rows FROM (
  (TABLE fm_fast.t_off EXCEPT TABLE fm_step.t_off) UNION ALL (TABLE fm_step.t_off EXCEPT TABLE fm_fast.t_off) UNION ALL
  (TABLE fm_fast.t_on EXCEPT TABLE fm_step.t_on) UNION ALL (TABLE fm_step.t_on EXCEPT TABLE fm_fast.t_on)) d;
SELECT count(*) AS differing_statuses FROM (
  (SELECT id, val, _dwr_status, _dwr_error FROM fm_fast_staging.t_off EXCEPT SELECT id, val, _dwr_status, _dwr_error FROM fm_step_staging.t_off)
  UNION ALL
  (SELECT id, val, _dwr_status, _dwr_error FROM fm_step_staging.t_off EXCEPT SELECT id, val, _dwr_status, _dwr_error FROM fm_fast_staging.t_off)
  UNION ALL
  (SELECT id, val, _dwr_status, _dwr_error FROM fm_fast_staging.t_on EXCEPT SELECT id, val, _dwr_status, _dwr_error FROM fm_step_staging.t_on)
  UNION ALL
  (SELECT id, val, _dwr_status, _dwr_error FROM fm_step_staging.t_on EXCEPT SELECT id, val, _dwr_status, _dwr_error FROM fm_fast_staging.t_on)) d;
SELECT _dwr_status, count(*) FROM fm_fast_staging.t_on GROUP BY 1 ORDER BY 1;
SELECT count(*) AS images, count(*) FILTER (WHERE action = 'update') AS updates
  FROM dwr.row_changes WHERE target = 'fm_fast.t_on'::regclass;
SELECT count(*) AS differing_images FROM (
  (SELECT r.key, r.action, r.before, r.after FROM dwr.row_changes r WHERE r.target = 'fm_fast.t_on'::regclass
   EXCEPT SELECT r.key, r.action, r.before, r.after FROM dwr.row_changes r WHERE r.target = 'fm_step.t_on'::regclass)
  UNION ALL
  (SELECT r.key, r.action, r.before, r.after FROM dwr.row_changes r WHERE r.target = 'fm_step.t_on'::regclass
   EXCEPT SELECT r.key, r.action, r.before, r.after FROM dwr.row_changes r WHERE r.target = 'fm_fast.t_on'::regclass)) d;
SELECT id, val FROM fm_fast.t_on WHERE id IN (5, 6) ORDER BY id;
-- undo takes the fast way's writes back as it takes the step-by-step way's
SET client_min_messages = warning;   -- (the undo's NOTICE names its run)
SELECT status, inserted, updated FROM dwr_undo((SELECT max(run_id) FROM dwr.merge_runs WHERE target = 'fm_fast.t_on'::regclass));
RESET client_min_messages;
SELECT count(*) AS rows_after_undo, count(*) FILTER (WHERE val LIKE 'staged%') AS staged_values_left FROM fm_fast.t_on;

-- a row production rejects (qty < 0): the fast way fails and is rolled back, the merge goes on
-- step by step and marks that row ERROR
SET dwr.row_audit = off;
UPDATE fm_fast_staging.t_off SET _dwr_status = 'NEW', _dwr_error = NULL WHERE id IN (10, 20);
UPDATE fm_fast_staging.t_off SET qty = -1, updated_at = '2025-01-28' WHERE id = 10;
UPDATE fm_fast_staging.t_off SET updated_at = '2025-01-28' WHERE id = 20;
SET dwr.progress_notice_after = 0;
SET dwr.fast_merge = on;
-- (both ways ANALYZE the work table at a statistics target of their own, then set it back)
SET default_statistics_target = 57;
SELECT inserted, updated, errors FROM dwr_merge('fm_fast.t_off');
SHOW default_statistics_target;
RESET default_statistics_target;
RESET dwr.progress_notice_after;
RESET dwr.fast_merge;
SELECT id, _dwr_status, _dwr_error FROM fm_fast_staging.t_off WHERE id IN (10, 20) ORDER BY id;
SELECT id, val, qty FROM fm_fast.t_off WHERE id IN (10, 20) ORDER BY id;
RESET dwr.row_audit;
SELECT dwr_end_reload(:rid);
SELECT dwr_drop_staging('fm_fast.t_off'), dwr_drop_staging('fm_fast.t_on'), dwr_drop_staging('fm_step.t_off'), dwr_drop_staging('fm_step.t_on');
DROP SCHEMA fm_fast, fm_step CASCADE;
