-- A staged row that production rejected is an ERROR row with the server's message. Once the cause is
-- fixed (the row in staging, or production's constraint), dwr_retry_errors puts the ERROR rows back
-- to NEW, and the next merge takes them; nothing else changes status.
\set VERBOSITY default
\set SHOW_CONTEXT never
CREATE SCHEMA retry;
CREATE TABLE retry.parent (id int PRIMARY KEY, updated_at int);
CREATE TABLE retry.t (id int PRIMARY KEY, parent_id int REFERENCES retry.parent,
                      code text CHECK (length(code) <= 5), updated_at int);
SELECT dwr_create_staging('retry.t', 'retry_staging');
\! ${DWR_TLE_SYNC:-true}
INSERT INTO retry_staging.t (id, parent_id, code, updated_at) VALUES
    (1, NULL, 'ok', 1), (2, 7, 'fk', 1), (3, NULL, 'too long', 1);
SELECT status, inserted, errors FROM dwr_merge('retry.t');
SELECT id, _dwr_status, _dwr_run_id IS NOT NULL AS has_run, _dwr_error FROM retry_staging.t ORDER BY id;
-- the operator fixes both causes: the missing parent arrives, the long value is corrected
INSERT INTO retry.parent VALUES (7, 1);
UPDATE retry_staging.t SET code = 'short' WHERE id = 3;
SELECT dwr_retry_errors('retry.t') AS back_to_new;
SELECT id, _dwr_status, _dwr_run_id IS NOT NULL AS has_run, _dwr_error FROM retry_staging.t ORDER BY id;
SELECT status, inserted, errors FROM dwr_merge('retry.t');
TABLE retry.t ORDER BY id;
-- nothing left to retry
SELECT dwr_retry_errors('retry.t') AS back_to_new;
-- errors
SELECT dwr_retry_errors(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT dwr_retry_errors('retry.parent');
\echo :LAST_ERROR_SQLSTATE
SELECT dwr_drop_staging('retry.t');
DROP SCHEMA retry, retry_staging CASCADE;
