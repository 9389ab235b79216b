-- Beyond staging loads: compare any side copy with production (dwr_diff, dwr_diff_summary) and
-- merge from it (dwr_merge(..., source =>)) without writing it.
-- the same expected output for both modes: their errors come from different call stacks
\set SHOW_CONTEXT never
CREATE SCHEMA bey;
CREATE TABLE bey.t (region text, id int, val text, note text, updated_at timestamptz,
                    PRIMARY KEY (region, id));
INSERT INTO bey.t VALUES
    ('eu', 1, 'same',        NULL,  '2025-01-10 00:00+00'),   -- staged identically: no difference
    ('eu', 2, 'older here',  'x',   '2025-01-10 00:00+00'),   -- staged newer
    ('eu', 3, 'newer here',  'x',   '2025-01-20 00:00+00'),   -- staged older
    ('eu', 4, 'same version', NULL, '2025-01-10 00:00+00'),   -- staged same version, other content
    ('eu', 5, 'not staged',  'x',   '2025-01-12 00:00+00'),   -- in the window, not staged
    ('us', 5, 'not staged',  'x',   '2024-06-01 00:00+00');   -- outside the window, not staged
SELECT dwr_create_staging('bey.t', 'bey_staging');
\! ${DWR_TLE_SYNC:-true}
INSERT INTO bey_staging.t (region, id, val, note, updated_at) VALUES
    ('eu', 1, 'same',         NULL, '2025-01-10 00:00+00'),
    ('eu', 2, 'newer staged', 'x',  '2025-01-15 00:00+00'),
    ('eu', 3, 'older staged', 'x',  '2025-01-15 00:00+00'),
    ('eu', 4, 'same version', 'not null any more', '2025-01-10 00:00+00'),
    ('eu', 6, 'only staged',  NULL, '2025-01-15 00:00+00'),
    ('eu', 8, 'deleted since', NULL, '2025-01-15 00:00+00'),   -- CDC deletes it below
    ('eu', 9, 'after the window', NULL, '2025-03-01 00:00+00');
INSERT INTO bey.t VALUES ('eu', 8, 'to be deleted', NULL, '2025-01-05 00:00+00');

-- without a reload, a production row staging lacks is not a difference (no window says it should
-- have been loaded)
SELECT key, difference FROM dwr_diff('bey.t') ORDER BY key;
SELECT dwr_begin_reload('{bey.t}', '2025-01-01 00:00+00', '2025-01-31 00:00+00') AS rid \gset
DELETE FROM bey.t WHERE region = 'eu' AND id = 8;              -- CDC deletes it after the reload began
SELECT key, difference, production ->> 'val' AS production_val, staged ->> 'val' AS staged_val
  FROM dwr_diff('bey.t') ORDER BY key;
SELECT * FROM dwr_diff_summary('bey.t');
-- the staged image leaves the metadata columns out
SELECT staged FROM dwr_diff('bey.t') WHERE key = '["eu", 6]';
-- diff, merge, diff again: only what the merge rightly refused is left
SELECT inserted, updated, unchanged, skipped_stale, skipped_deleted, skipped_outside_window FROM dwr_merge('bey.t');
SELECT key, difference FROM dwr_diff('bey.t') ORDER BY key;

-- a side copy filled another way: a schema a CDC task replayed into from a past position, with the
-- source's upper-case names and no metadata columns
CREATE SCHEMA replay;
CREATE TABLE replay.t ("REGION" text, "ID" int, "VAL" text, "NOTE" text, "UPDATED_AT" timestamptz);
INSERT INTO replay.t VALUES
    ('eu', 3, 'replayed, newest', 'x', '2025-01-25 00:00+00'),
    ('eu', 7, 'replayed, missing', NULL, '2025-01-25 00:00+00'),
    ('eu', 7, 'replayed, older twin', NULL, '2025-01-24 00:00+00');
CREATE TEMP TABLE replay_before AS SELECT * FROM replay.t;
SELECT * FROM dwr_diff_summary('bey.t', source => 'replay.t');
SELECT status, inserted, updated, skipped_stale FROM dwr_merge('bey.t', source => 'replay.t');
-- the source is never written: same rows, no metadata columns added
SELECT count(*) AS changed FROM ((TABLE replay.t EXCEPT TABLE replay_before) UNION ALL (TABLE replay_before EXCEPT TABLE replay.t)) d;
SELECT count(*) AS columns FROM pg_attribute WHERE attrelid = 'replay.t'::regclass AND attnum > 0;
SELECT source_name, status, inserted, updated FROM dwr.merge_runs WHERE source_name = 'replay.t';
SELECT r.action, r.key FROM dwr.row_changes r JOIN dwr.merge_runs m USING (run_id)
 WHERE m.source_name = 'replay.t' ORDER BY r.key;
SELECT region, id, val FROM bey.t WHERE id IN (3, 7) ORDER BY 1, 2;
-- a restored snapshot can be a view too; dry runs work from a source
CREATE VIEW replay.v AS SELECT "REGION", "ID", "VAL" || ' (view)' AS "VAL", "NOTE", "UPDATED_AT" + interval '1 day' AS "UPDATED_AT" FROM replay.t;
SELECT status, updated FROM dwr_merge('bey.t', dry_run => true, source => 'replay.v');

-- a source value that does not convert is an ERROR row (counted, not written); the others merge
CREATE TABLE replay.typed_text (region text, id text, val text, note text, updated_at text);
INSERT INTO replay.typed_text VALUES
    ('eu', '10', 'from text', NULL, '2025-01-26 00:00+00'),
    ('eu', 'eleven', 'not a key', NULL, '2025-01-26 00:00+00'),
    ('eu', '12', 'bad version', NULL, 'yesterday-ish');
SELECT status, inserted, errors FROM dwr_merge('bey.t', source => 'replay.typed_text');
SELECT region, id, val FROM bey.t WHERE id >= 10 ORDER BY 1, 2;
DROP TABLE replay.typed_text;

-- a source must have rows
\set VERBOSITY default
SELECT dwr_merge('bey.t', source => 'bey_staging.t_pkey');
\echo :LAST_ERROR_SQLSTATE
-- a source owned by another role is refused, as staging is (terse: the hint names the target's
-- owner, which differs between the test runs of the two modes)
\set VERBOSITY terse
CREATE ROLE dwr_other;
GRANT dwr_other TO CURRENT_USER;
GRANT CREATE ON SCHEMA replay TO dwr_other;
CREATE TABLE replay.foreign_owned (LIKE replay.t);
ALTER TABLE replay.foreign_owned OWNER TO dwr_other;
SELECT dwr_merge('bey.t', source => 'replay.foreign_owned');
\echo :LAST_ERROR_SQLSTATE
SELECT dwr_diff_summary('bey.t', source => 'replay.foreign_owned');
\echo :LAST_ERROR_SQLSTATE
DROP TABLE replay.foreign_owned;
REVOKE CREATE ON SCHEMA replay FROM dwr_other;
DROP ROLE dwr_other;
\set VERBOSITY default
SELECT dwr_end_reload(:rid);
