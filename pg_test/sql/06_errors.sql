-- Errors an operator can act on: a real SQLSTATE, a message, a DETAIL naming the table or column,
-- a HINT saying what to do. psql's LAST_ERROR_SQLSTATE shows the code after each. The same in both
-- modes (run against the pg_tle package too; ${DWR_TLE_SYNC:-true} is where a pg_tle operator runs
-- dwr tle install; where in the PL/pgSQL an error was raised, which differs, is not shown).
\set VERBOSITY default
\set SHOW_CONTEXT never
CREATE SCHEMA errs;
CREATE TABLE errs.nopk (id int, updated_at timestamp);
SELECT dwr_create_staging('errs.nopk');
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE errs.t (id int PRIMARY KEY, updated_at timestamp, doc json);
SELECT dwr_merge('errs.t');
\echo :LAST_ERROR_SQLSTATE
SELECT dwr_create_staging('errs.t', version_column => 'modified_at');
\echo :LAST_ERROR_SQLSTATE
SELECT dwr_create_staging('errs.t', version_column => 'doc');
\echo :LAST_ERROR_SQLSTATE
SELECT dwr_merge('errs.no_such_table');
\echo :LAST_ERROR_SQLSTATE
SELECT dwr_merge(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT dwr_merge('errs.t', dry_run => NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT dwr_create_staging('errs.t', staging_schema => '');
\echo :LAST_ERROR_SQLSTATE
SELECT dwr_create_staging('errs.t', staging_schema => 'errs');
\echo :LAST_ERROR_SQLSTATE
CREATE VIEW errs.v AS SELECT * FROM errs.t;
SELECT dwr_create_staging('errs.v');
\echo :LAST_ERROR_SQLSTATE
-- one staging table cannot serve two production tables
SELECT dwr_create_staging('errs.t');
\echo :LAST_ERROR_SQLSTATE
SELECT dwr_create_staging('errs.t', staging_schema => 'errs_staging');
\! ${DWR_TLE_SYNC:-true}
SELECT dwr_purge_staging('errs.t', 'DONE');
\echo :LAST_ERROR_SQLSTATE
-- staging that lost its key or version column
ALTER TABLE errs_staging.t DROP COLUMN updated_at;
\! ${DWR_TLE_SYNC:-true}
SELECT dwr_merge('errs.t');
\echo :LAST_ERROR_SQLSTATE
ALTER TABLE errs_staging.t ADD COLUMN updated_at point;
\! ${DWR_TLE_SYNC:-true}
SELECT dwr_merge('errs.t');
\echo :LAST_ERROR_SQLSTATE
ALTER TABLE errs_staging.t DROP COLUMN id;
\! ${DWR_TLE_SYNC:-true}
SELECT dwr_merge('errs.t');
\echo :LAST_ERROR_SQLSTATE
SELECT dwr_drop_staging('errs.t');
-- a staging table that another role owns is refused: a privileged merge must not run its code
CREATE ROLE dwr_intruder;
-- (a role that is not a superuser gives it a table as a member of it, in a schema it may use)
GRANT dwr_intruder TO CURRENT_USER;
GRANT CREATE ON SCHEMA staging TO dwr_intruder;
CREATE TABLE errs.owned (id int PRIMARY KEY, updated_at timestamp);
CREATE TABLE staging.owned (id int, updated_at timestamp);
ALTER TABLE staging.owned OWNER TO dwr_intruder;
-- (the message names the production table's owner: the test role, which differs between the modes)
\set VERBOSITY sqlstate
SELECT dwr_create_staging('errs.owned');
\set VERBOSITY default
ALTER TABLE staging.owned OWNER TO CURRENT_USER;
SELECT dwr_create_staging('errs.owned');
ALTER TABLE staging.owned OWNER TO dwr_intruder;
\! ${DWR_TLE_SYNC:-true}
\set VERBOSITY sqlstate
SELECT dwr_merge('errs.owned');
\set VERBOSITY default
\echo :LAST_ERROR_SQLSTATE
DROP TABLE staging.owned;
REVOKE CREATE ON SCHEMA staging FROM dwr_intruder;
DROP ROLE dwr_intruder;
