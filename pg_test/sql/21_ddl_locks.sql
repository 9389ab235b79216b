-- The extension's own DDL on production never makes CDC queue. Installing or removing the delete
-- trigger needs a table lock; a lock request that waits makes every later request on the table
-- wait behind it, CDC's writes included. So the lock is asked for in attempts of at most
-- dwr.ddl_lock_timeout, with backoff; after dwr.ddl_lock_wait the call fails with 55P03, names who
-- holds the table, and leaves nothing half-installed. (That a CDC write goes on while the request
-- is retried is pg_test/specs/ddl_vs_cdc; here one session holds the table through a prepared
-- transaction, which keeps its locks after the session moves on.)
\set VERBOSITY default
\set SHOW_CONTEXT never
CREATE SCHEMA ddl_prod;
CREATE TABLE ddl_prod.t (id int PRIMARY KEY, v text, updated_at timestamptz);
INSERT INTO ddl_prod.t VALUES (1, 'one', '2025-01-01'), (2, 'two', '2025-01-01');
-- a CDC transaction that has written a row and not committed yet
BEGIN;
UPDATE ddl_prod.t SET v = 'cdc' WHERE id = 1;
PREPARE TRANSACTION 'dwr_cdc_open';
SET dwr.ddl_lock_timeout = '20ms';
SET dwr.ddl_lock_wait = '300ms';
SELECT dwr_create_staging('ddl_prod.t', 'ddl_staging');
\echo :LAST_ERROR_SQLSTATE
-- nothing half-installed: no trigger, no registration, no staging table
SELECT tgname FROM pg_trigger WHERE tgrelid = 'ddl_prod.t'::regclass AND tgname = 'dwr_record_delete';
SELECT count(*) AS registrations FROM dwr.tables WHERE target = 'ddl_prod.t'::regclass;
SELECT to_regclass('ddl_staging.t') AS staging;
-- once CDC's transaction has committed the same call succeeds, and deletes are recorded
COMMIT PREPARED 'dwr_cdc_open';
SELECT dwr_create_staging('ddl_prod.t', 'ddl_staging');
DELETE FROM ddl_prod.t WHERE id = 2;
SELECT target, key FROM dwr.tombstones WHERE target = 'ddl_prod.t'::regclass;
-- registering again replaces the trigger: the same bounded wait
BEGIN;
INSERT INTO ddl_prod.t VALUES (3, 'three', '2025-01-02');
PREPARE TRANSACTION 'dwr_cdc_open';
SELECT dwr_create_staging('ddl_prod.t', 'ddl_staging');
\echo :LAST_ERROR_SQLSTATE
-- removing it too; the registration and the trigger stay until it succeeds
SELECT dwr_drop_staging('ddl_prod.t');
\echo :LAST_ERROR_SQLSTATE
SELECT tgname FROM pg_trigger WHERE tgrelid = 'ddl_prod.t'::regclass AND tgname = 'dwr_record_delete';
SELECT count(*) AS registrations FROM dwr.tables WHERE target = 'ddl_prod.t'::regclass;
COMMIT PREPARED 'dwr_cdc_open';
SELECT dwr_drop_staging('ddl_prod.t');
SELECT tgname FROM pg_trigger WHERE tgrelid = 'ddl_prod.t'::regclass AND tgname = 'dwr_record_delete';
-- a session that reads production (ACCESS SHARE) does not hold up installing the trigger
BEGIN;
SELECT count(*) FROM ddl_prod.t;
PREPARE TRANSACTION 'dwr_reader_open';
SELECT dwr_create_staging('ddl_prod.t', 'ddl_staging');
COMMIT PREPARED 'dwr_reader_open';
SELECT dwr_drop_staging('ddl_prod.t');
RESET dwr.ddl_lock_timeout;
RESET dwr.ddl_lock_wait;
DROP SCHEMA ddl_prod CASCADE;
DROP SCHEMA ddl_staging CASCADE;
