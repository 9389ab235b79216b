-- The LOB guard: while a reload whose DMS task settings gave the loader a LobMaxSize is open, a
-- staged value of a LOB-like column (text, varchar without a length, bytea, json, jsonb, xml) at
-- least that long may have been cut by the loader (AWS DMS in limited LOB mode truncates a longer
-- value and only logs a warning): the merge marks its row ERROR, naming the column and the limit,
-- and never writes it; dwr_verify reports such rows before the merge. (Run against the pg_tle
-- package too; ${DWR_TLE_SYNC:-true} is where a pg_tle operator runs dwr tle install.)
\set SHOW_CONTEXT never
CREATE SCHEMA lob;
CREATE TABLE lob.docs (id int PRIMARY KEY, body text, doc jsonb, code varchar(10), updated_at timestamptz NOT NULL);
INSERT INTO lob.docs SELECT g, 'prod', '{}', 'c', '2025-01-10' FROM generate_series(1, 4) g;
SELECT dwr_create_staging('lob.docs', 'lob_staging');
\! ${DWR_TLE_SYNC:-true}
SELECT dwr_begin_reload('{lob.docs}', '2025-01-01', '2025-01-31') AS rid \gset
-- what dwr_dms_task_settings (dwr dms task-settings with the package) records for LobMaxSize 1 KB
SELECT dwr._record_lob_limit(:rid, 1, CURRENT_USER);
INSERT INTO lob_staging.docs (id, body, doc, code, updated_at) VALUES
  (1, repeat('x', 1023), '{}', 'c', '2025-01-20'),                               -- below the limit
  (2, repeat('x', 1024), '{}', 'c', '2025-01-20'),                               -- at it
  (3, 'short', jsonb_build_object('k', repeat('y', 2000)), 'c', '2025-01-20'),   -- a jsonb over it
  (4, repeat('é', 600), '{}', 'c', '2025-01-20'),                                -- 600 characters, 1200 bytes
  (5, 'new', '{}', repeat('z', 10), '2025-01-20');                               -- varchar(10) is no LOB
SELECT * FROM dwr_verify('lob.docs') WHERE problem = 'possibly_truncated';
SELECT inserted, updated, errors FROM dwr_merge('lob.docs');
SELECT id, _dwr_status, _dwr_error FROM lob_staging.docs ORDER BY id;
-- production kept its rows where the staged value may have been cut
SELECT id, length(body) AS body_length, length(doc::text) AS doc_length, updated_at FROM lob.docs ORDER BY id;
-- once the reload ended (or the rows were loaded again whole), they merge
SELECT dwr_end_reload(:rid);
SELECT count(*) AS possibly_truncated FROM dwr_verify('lob.docs') WHERE problem = 'possibly_truncated';
SELECT dwr_retry_errors('lob.docs') AS retried;
SELECT inserted, updated, errors FROM dwr_merge('lob.docs');
SELECT id, length(body) AS body_length, length(doc::text) AS doc_length FROM lob.docs ORDER BY id;
\set VERBOSITY default
-- recording a limit is for the owner of the reload's tables
CREATE ROLE dwr_lob_stranger;
GRANT dwr_lob_stranger TO CURRENT_USER;
SET ROLE dwr_lob_stranger;
SELECT dwr._record_lob_limit(:rid, 1, CURRENT_USER);
RESET ROLE;
DROP ROLE dwr_lob_stranger;
\set VERBOSITY terse
SELECT dwr_drop_staging('lob.docs');
DROP SCHEMA lob, lob_staging CASCADE;
