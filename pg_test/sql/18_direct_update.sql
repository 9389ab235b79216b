-- Without row audit the merge updates production in one statement with no lock step (the fast
-- way). A row that CDC holds makes that statement wait at most dwr.row_lock_timeout; then the
-- locking statement (FOR UPDATE SKIP LOCKED) takes the whole range over and defers only that row.
-- A prepared transaction holds the row here, exactly like an open CDC transaction would.
-- (errors raised inside PL/pgSQL carry a CONTEXT line in the pg_tle package; not shown, as in
-- the compiled extension; ${DWR_TLE_SYNC:-true} is where a pg_tle operator runs dwr tle install)
\set SHOW_CONTEXT never
CREATE SCHEMA direct;
CREATE TABLE direct.t (id int PRIMARY KEY, val text, qty int CHECK (qty >= 0), updated_at int);
INSERT INTO direct.t SELECT g, 'v1', 1, 1 FROM generate_series(1, 40) g;
SELECT dwr_create_staging('direct.t', 'direct_staging');
\! ${DWR_TLE_SYNC:-true}
INSERT INTO direct_staging.t (id, val, qty, updated_at) SELECT g, 'v2', 2, 2 FROM generate_series(1, 40) g;
SET dwr.row_audit = off;
SET dwr.row_lock_timeout = '50ms';
BEGIN;
UPDATE direct.t SET val = 'cdc v3', updated_at = 3 WHERE id = 17;
PREPARE TRANSACTION 'dwr_cdc_holds_17';
SELECT updated, deferred, errors FROM dwr_merge('direct.t');
SELECT _dwr_status, count(*) FROM direct_staging.t GROUP BY 1 ORDER BY 1;
SELECT id FROM direct_staging.t WHERE _dwr_status = 'NEW';
COMMIT PREPARED 'dwr_cdc_holds_17';
-- the deferred row meets CDC's newer version at the next merge
SELECT updated, deferred, skipped_stale FROM dwr_merge('direct.t');
SELECT val, updated_at, count(*) FROM direct.t GROUP BY 1, 2 ORDER BY 1;

-- a row production rejects is isolated by bisection in the direct statement too, while another
-- row is held: both are found, every other row is written
SELECT dwr_purge_staging('direct.t', 'PROCESSED') + dwr_purge_staging('direct.t', 'SKIPPED') AS purged;
INSERT INTO direct_staging.t (id, val, qty, updated_at) SELECT g, 'v4', 4, 4 FROM generate_series(1, 40) g;
UPDATE direct_staging.t SET qty = -1 WHERE id = 30 AND _dwr_status = 'NEW';
BEGIN;
UPDATE direct.t SET val = 'cdc v5', updated_at = 5 WHERE id = 5;
PREPARE TRANSACTION 'dwr_cdc_holds_5';
SELECT updated, deferred, errors FROM dwr_merge('direct.t');
SELECT id, _dwr_status, _dwr_error FROM direct_staging.t WHERE updated_at = 4 AND _dwr_status <> 'PROCESSED' ORDER BY id;
COMMIT PREPARED 'dwr_cdc_holds_5';
SELECT val, updated_at, count(*) FROM direct.t GROUP BY 1, 2 ORDER BY 1;

-- the same merge with row audit on takes the locking way at once and ends the same
RESET dwr.row_audit;
SELECT dwr_purge_staging('direct.t', 'PROCESSED') + dwr_purge_staging('direct.t', 'SKIPPED') AS purged;
DELETE FROM direct_staging.t;
INSERT INTO direct_staging.t (id, val, qty, updated_at) SELECT g, 'v6', 6, 6 FROM generate_series(1, 40) g;
BEGIN;
UPDATE direct.t SET val = 'cdc v7', updated_at = 7 WHERE id = 9;
PREPARE TRANSACTION 'dwr_cdc_holds_9';
SELECT updated, deferred, errors FROM dwr_merge('direct.t');
COMMIT PREPARED 'dwr_cdc_holds_9';
SELECT count(*) AS images FROM dwr.row_changes WHERE target = 'direct.t'::regclass;

SELECT dwr_drop_staging('direct.t');
DROP SCHEMA direct CASCADE;
DROP SCHEMA direct_staging CASCADE;
