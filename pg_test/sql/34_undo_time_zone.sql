-- An undo recognises the rows a merge left by their images; a timestamptz value in an image is
-- spelled in the time zone of the session that merged. An undo from a session with another
-- TimeZone (an operator's psql against a pg_cron job's merge) still finds those rows as the merge
-- left them, and one CDC changed since is still left alone.
\set SHOW_CONTEXT never
CREATE SCHEMA tz;
CREATE TABLE tz.t (id int PRIMARY KEY, v text, seen timestamptz, updated_at timestamptz NOT NULL);
SELECT dwr_create_staging('tz.t', 'tz_staging');
\! ${DWR_TLE_SYNC:-true}
INSERT INTO tz.t VALUES (1, 'a', '2025-01-01 12:00+00', '2025-01-01 00:00+00'),
  (3, 'c', NULL, '2025-01-01 00:00+00');
INSERT INTO tz_staging.t (id, v, seen, updated_at) VALUES
  (1, 'b', '2025-01-02 12:00+00', '2025-01-02 00:00+00'),
  (2, 'new', '2025-01-02 13:00+00', '2025-01-02 00:00+00'),
  (3, 'c2', NULL, '2025-01-02 00:00+00');
SET TIME ZONE 'UTC';
SELECT inserted, updated FROM dwr_merge('tz.t');
SELECT run_id AS merge_run FROM dwr.merge_runs WHERE target = 'tz.t'::regclass \gset
-- CDC changes row 3 since
UPDATE tz.t SET v = 'c by CDC', updated_at = '2025-01-03 00:00+00' WHERE id = 3;
SET TIME ZONE 'Asia/Tokyo';
SET client_min_messages = warning;
SELECT deleted, updated, status FROM dwr_undo(:merge_run);
RESET client_min_messages;
SET TIME ZONE 'UTC';
SELECT id, v, seen, updated_at FROM tz.t ORDER BY id;
RESET TIME ZONE;
SELECT dwr_drop_staging('tz.t');
DROP SCHEMA tz, tz_staging CASCADE;
