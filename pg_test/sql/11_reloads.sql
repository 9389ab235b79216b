-- Reloads: while a reload is open, a merge takes only staged rows whose version lies in its window
-- (both ends included, as DMS's between does); the rest stay NEW and count as
-- skipped_outside_window. Deletes since the reload began stop staged rows of the same key.
-- (errors raised inside PL/pgSQL carry a CONTEXT line in the pg_tle package; not shown, as in
-- the compiled extension; ${DWR_TLE_SYNC:-true} is where a pg_tle operator runs dwr tle install)
\set SHOW_CONTEXT never
CREATE SCHEMA rl;
CREATE TABLE rl.t (id int PRIMARY KEY, val text, updated_at timestamp);
INSERT INTO rl.t SELECT g, 'v1', '2024-12-01' FROM generate_series(1, 8) g;
CREATE TABLE rl.other (id int PRIMARY KEY, updated_at timestamp);
CREATE TABLE rl.by_number (id int PRIMARY KEY, version bigint);
SELECT dwr_create_staging('rl.t', staging_schema => 'rl_staging');
SELECT dwr_create_staging('rl.other', staging_schema => 'rl_staging');
SELECT dwr_create_staging('rl.by_number', staging_schema => 'rl_staging', version_column => 'version');
\! ${DWR_TLE_SYNC:-true}

-- bad reloads are refused
\set VERBOSITY default
SELECT dwr_begin_reload('{rl.t}', '2025-01-31', '2025-01-01');
\echo :LAST_ERROR_SQLSTATE
SELECT dwr_begin_reload('{rl.t}', NULL, '2025-01-01');
\echo :LAST_ERROR_SQLSTATE
SELECT dwr_begin_reload('{}', '2025-01-01', '2025-01-31');
\echo :LAST_ERROR_SQLSTATE
SELECT dwr_begin_reload('{rl.t, pg_catalog.pg_class}', '2025-01-01', '2025-01-31');
\echo :LAST_ERROR_SQLSTATE
SELECT dwr_begin_reload('{rl.by_number}', '2025-01-01', '2025-01-31');
\echo :LAST_ERROR_SQLSTATE

DELETE FROM rl.t WHERE id = 7;   -- after staging was created, before the reload began
SELECT dwr_begin_reload('{rl.t, rl.other}', '2025-01-01 00:00', '2025-01-31 00:00') AS reload_id \gset
SELECT dwr_begin_reload('{rl.other}', '2025-02-01', '2025-02-28');   -- already in reload :reload_id
\echo :LAST_ERROR_SQLSTATE
DELETE FROM rl.t WHERE id = 8;   -- after the reload began
INSERT INTO rl_staging.t (id, val, updated_at) VALUES
    (1, 'at the start',        '2025-01-01 00:00'),   -- inside (start included)
    (2, 'at the end',          '2025-01-31 00:00'),   -- inside (end included)
    (3, 'just before',         '2024-12-31 23:59:59.999999'),
    (4, 'just after',          '2025-01-31 00:00:00.000001'),
    (5, 'inside',              '2025-01-15'),
    (7, 'deleted before begin', '2025-01-15'),        -- the reload's deletes count from its start
    (8, 'deleted after begin',  '2025-01-15');
SELECT inserted, updated, skipped_deleted, skipped_outside_window FROM dwr_merge('rl.t');
SELECT id, val, _dwr_status FROM rl_staging.t ORDER BY id;
SELECT reload_id = :reload_id AS this_reload, window_start, window_end FROM dwr.merge_runs
 WHERE target_name = 'rl.t' ORDER BY run_id DESC LIMIT 1;

-- closing the reload lifts the window: the rows left NEW merge now
SELECT dwr_end_reload(:reload_id);
SELECT dwr_end_reload(:reload_id);
\echo :LAST_ERROR_SQLSTATE
SELECT dwr_end_reload(-1);
\echo :LAST_ERROR_SQLSTATE
SELECT inserted, updated, skipped_outside_window FROM dwr_merge('rl.t');
SELECT reload_id, targets, ended_at IS NOT NULL AS ended FROM dwr.reloads ORDER BY reload_id;
TABLE rl.t ORDER BY id;
