-- dwr_diff and dwr_diff_summary on the registered staging table, the same in both modes (the
-- comparison with any other source table is 15_source_and_diff, compiled extension only): what
-- differs, with both images, changing nothing; a production row inside the open reload's window
-- that staging lacks is reported; the summary counts the same in one pass.
CREATE SCHEMA dif;
CREATE TABLE dif.t (region text, id int, val text, note text, updated_at timestamptz,
                    PRIMARY KEY (region, id));
INSERT INTO dif.t VALUES
    ('eu', 1, 'same',         NULL, '2025-01-10 00:00+00'),   -- staged identically: no difference
    ('eu', 2, 'older here',   'x',  '2025-01-10 00:00+00'),   -- staged newer
    ('eu', 3, 'newer here',   'x',  '2025-01-20 00:00+00'),   -- staged older
    ('eu', 4, 'same version', NULL, '2025-01-10 00:00+00'),   -- staged same version, other content
    ('eu', 5, 'not staged',   'x',  '2025-01-12 00:00+00'),   -- in the window, not staged
    ('us', 5, 'not staged',   'x',  '2024-06-01 00:00+00');   -- outside the window, not staged
SELECT dwr_create_staging('dif.t', 'dif_staging');
\! ${DWR_TLE_SYNC:-true}
INSERT INTO dif_staging.t (region, id, val, note, updated_at) VALUES
    ('eu', 1, 'same',         NULL, '2025-01-10 00:00+00'),
    ('eu', 2, 'newer staged', 'x',  '2025-01-15 00:00+00'),
    ('eu', 3, 'older staged', 'x',  '2025-01-15 00:00+00'),
    ('eu', 4, 'same version', 'not null any more', '2025-01-10 00:00+00'),
    ('eu', 6, 'only staged',  NULL, '2025-01-15 00:00+00');
-- without a reload, a production row staging lacks is no difference
SELECT key, difference FROM dwr_diff('dif.t') ORDER BY key;
SELECT dwr_begin_reload('{dif.t}', '2025-01-01 00:00+00', '2025-01-31 00:00+00') AS rid \gset
SELECT key, difference, production ->> 'val' AS production_val, staged ->> 'val' AS staged_val,
       staged ? '_dwr_status' AS staged_image_has_metadata
  FROM dwr_diff('dif.t') ORDER BY key;
SELECT * FROM dwr_diff_summary('dif.t') ORDER BY difference;
-- nothing changed
SELECT count(*) FILTER (WHERE _dwr_status = 'NEW') AS still_new FROM dif_staging.t;
-- errors
\set VERBOSITY terse
SELECT * FROM dwr_diff(NULL);
CREATE TABLE dif.unregistered (id int PRIMARY KEY, updated_at timestamptz);
SELECT * FROM dwr_diff_summary('dif.unregistered');
\set VERBOSITY default
SELECT dwr_end_reload(:rid);
SELECT dwr_drop_staging('dif.t');
DROP SCHEMA dif, dif_staging CASCADE;
