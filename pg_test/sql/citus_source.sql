-- Citus: dwr_merge(..., source =>) into a distributed table. The source moves into a copy placed
-- like production first (dwr_engine::citus_source), and the merge ends exactly where the merge of
-- an identical plain table of the coordinator from the same source ends: the same rows, counts
-- and row images. The source: another schema's table with the source's upper-case names, no
-- "note" column (production keeps its value), the key as text, duplicates, NULL keys and
-- versions, versions outside the reload's window.
\set SHOW_CONTEXT never
SET citus.shard_count = 4;
CREATE EXTENSION dms_window_reload;
CREATE SCHEMA src_dist;
CREATE SCHEMA src_local;
CREATE SCHEMA replay;
CREATE TABLE src_dist.t (id int PRIMARY KEY, val text NOT NULL, note text, updated_at timestamptz NOT NULL);
CREATE TABLE src_local.t (LIKE src_dist.t INCLUDING ALL);
SELECT create_distributed_table('src_dist.t', 'id');
INSERT INTO src_dist.t SELECT g, 'prod ' || g, 'note ' || g, '2025-01-10'::timestamptz + g * interval '1 minute'
  FROM generate_series(1, 200) g;
INSERT INTO src_local.t SELECT * FROM src_dist.t;
SELECT dwr_create_staging('src_dist.t', 'src_dist_staging');
SELECT dwr_create_staging('src_local.t', 'src_local_staging');
SELECT dwr_begin_reload('{src_dist.t,src_local.t}', '2025-01-01', '2025-02-01') AS rid \gset
CREATE TABLE replay.t ("ID" text, "VAL" text, "UPDATED_AT" timestamptz);
INSERT INTO replay.t
  SELECT g::text, 'replayed ' || g,
         CASE WHEN g % 10 = 3 THEN NULL                                       -- no version: error
              WHEN g % 10 = 4 THEN '2025-03-01'::timestamptz                  -- after the window
              WHEN g % 4 = 0 THEN '2025-01-10'::timestamptz + g * interval '1 minute' + interval '1 hour'
              WHEN g % 4 = 1 THEN '2025-01-10'::timestamptz + g * interval '1 minute' - interval '1 hour'
              ELSE '2025-01-10'::timestamptz + g * interval '1 minute' END
    FROM generate_series(1, 260) g;
-- an older and a newer twin of staged keys, a row without a key
INSERT INTO replay.t VALUES ('5', 'older twin', '2025-01-09'), ('9', 'newest twin', '2025-01-30'),
                            (NULL, 'no key', '2025-01-15');
CREATE TEMP TABLE replay_before AS SELECT * FROM replay.t;
-- compared before the merge, the same on both tables
SELECT count(*) AS differing_summaries FROM (
  (SELECT * FROM dwr_diff_summary('src_local.t', source => 'replay.t') EXCEPT SELECT * FROM dwr_diff_summary('src_dist.t', source => 'replay.t'))
  UNION ALL
  (SELECT * FROM dwr_diff_summary('src_dist.t', source => 'replay.t') EXCEPT SELECT * FROM dwr_diff_summary('src_local.t', source => 'replay.t'))) d;
SELECT * FROM dwr_diff_summary('src_dist.t', source => 'replay.t') ORDER BY 1;
SET dwr.row_audit = on;
SELECT status, inserted, updated, unchanged, skipped_stale, skipped_outside_window, errors
  FROM dwr_merge('src_local.t', source => 'replay.t');
SELECT status, inserted, updated, unchanged, skipped_stale, skipped_outside_window, errors
  FROM dwr_merge('src_dist.t', source => 'replay.t');
-- the same production rows, and production's note kept where the source has none
SELECT count(*) AS differing_rows FROM (
  (SELECT * FROM src_local.t EXCEPT SELECT * FROM src_dist.t)
  UNION ALL (SELECT * FROM src_dist.t EXCEPT SELECT * FROM src_local.t)) d;
SELECT id, val, note FROM src_dist.t WHERE id IN (5, 9, 201) ORDER BY id;
-- the same row images (as rows: a worker writes a timestamp in its own time zone), the source
-- named on the run
\set images '(SELECT m.target::text AS target, r.action, r.key, (pg_catalog.jsonb_populate_record(NULL::src_local.t, r.after)).* FROM dwr.row_changes r JOIN dwr.merge_runs m USING (run_id)) i'
SELECT count(*) AS images, count(*) FILTER (WHERE action = 'update') AS updates
  FROM :images WHERE target = 'src_dist.t';
SELECT count(*) AS differing_images FROM (
  (SELECT action, key, id, val, note, updated_at FROM :images WHERE target = 'src_local.t'
   EXCEPT SELECT action, key, id, val, note, updated_at FROM :images WHERE target = 'src_dist.t')
  UNION ALL
  (SELECT action, key, id, val, note, updated_at FROM :images WHERE target = 'src_dist.t'
   EXCEPT SELECT action, key, id, val, note, updated_at FROM :images WHERE target = 'src_local.t')) d;
SELECT source_name, status FROM dwr.merge_runs WHERE target = 'src_dist.t'::regclass;
-- the source is never written, the copy is gone, staging untouched
SELECT count(*) AS source_changed FROM ((TABLE replay.t EXCEPT TABLE replay_before) UNION ALL (TABLE replay_before EXCEPT TABLE replay.t)) d;
SELECT count(*) AS copies_left FROM pg_class WHERE relname LIKE '\_dwr\_source%';
SELECT count(*) AS staged FROM src_dist_staging.t;
-- a dry run again: what the merge wrote is unchanged now, the rest is left out as before
SELECT status, unchanged, skipped_stale, skipped_outside_window, errors
  FROM dwr_merge('src_dist.t', dry_run => true, source => 'replay.t');
-- undo works on the rows a source merge wrote
SELECT status, updated FROM dwr_undo((SELECT max(run_id) FROM dwr.merge_runs WHERE target = 'src_dist.t'::regclass AND status = 'SUCCEEDED_WITH_ERRORS'));
SELECT count(*) AS differing_after_undo FROM (
  (SELECT id, val FROM src_dist.t EXCEPT SELECT id, 'prod ' || id FROM generate_series(1, 200) id)) d;
-- a source value that does not convert fails the merge on Citus (the conversion runs on the
-- coordinator; the local merge makes it an ERROR row), and nothing changes
INSERT INTO replay.t VALUES ('eleven', 'not a key', '2025-01-15');
\set VERBOSITY terse
SELECT status FROM dwr_merge('src_dist.t', source => 'replay.t');
\set VERBOSITY default
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS copies_left FROM pg_class WHERE relname LIKE '\_dwr\_source%';
RESET dwr.row_audit;
SELECT dwr_end_reload(:rid);
SELECT dwr_drop_staging('src_dist.t'), dwr_drop_staging('src_local.t');
DROP SCHEMA src_dist, src_local, replay, src_dist_staging, src_local_staging CASCADE;
DROP EXTENSION dms_window_reload;
