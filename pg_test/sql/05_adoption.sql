-- Adopting a staging table that a DMS full-load task created (TargetTablePrepMode
-- DROP_AND_CREATE): upper-case Oracle names, looser types, no metadata columns, no primary key.
-- Adoption adds the metadata columns and changes no row.
-- (errors raised inside PL/pgSQL carry a CONTEXT line in the pg_tle package; not shown, as in
-- the compiled extension; ${DWR_TLE_SYNC:-true} is where a pg_tle operator runs dwr tle install)
\set SHOW_CONTEXT never
CREATE SCHEMA adopt;
CREATE TABLE adopt.accounts (account_id integer PRIMARY KEY, owner_name varchar(50), balance numeric(12,2), updated_at timestamp);
INSERT INTO adopt.accounts VALUES (1, 'old owner', 10, '2025-01-01');
CREATE TABLE staging.accounts ("ACCOUNT_ID" numeric(10), "OWNER_NAME" varchar(200), "BALANCE" numeric, "UPDATED_AT" timestamp);
INSERT INTO staging.accounts VALUES (1, 'new owner', 11.5, '2025-01-02'), (2, 'second', 2, '2025-01-02');
CREATE TEMP TABLE before AS SELECT * FROM staging.accounts;
SELECT dwr_create_staging('adopt.accounts');
\! ${DWR_TLE_SYNC:-true}
-- the rows are as they were, now NEW
SELECT count(*) AS unchanged_rows FROM staging.accounts s JOIN before b
    ON (s."ACCOUNT_ID", s."OWNER_NAME", s."BALANCE", s."UPDATED_AT") = (b."ACCOUNT_ID", b."OWNER_NAME", b."BALANCE", b."UPDATED_AT")
 WHERE s._dwr_status = 'NEW' AND s._dwr_loaded_at IS NULL AND s._dwr_run_id IS NULL;
SELECT attname, format_type(atttypid, atttypmod), attnotnull
  FROM pg_attribute WHERE attrelid = 'staging.accounts'::regclass AND attnum > 0 ORDER BY attnum;
SELECT staging_created FROM dwr.tables WHERE target = 'adopt.accounts'::regclass;
SELECT column_name, problem, severity FROM dwr_verify('adopt.accounts') ORDER BY severity DESC, 1, 2;
SELECT inserted, updated FROM dwr_merge('adopt.accounts');
TABLE adopt.accounts ORDER BY 1;
-- adopting again is a no-op; rows loaded later get a load time
SELECT dwr_create_staging('adopt.accounts');
\! ${DWR_TLE_SYNC:-true}
INSERT INTO staging.accounts ("ACCOUNT_ID", "OWNER_NAME", "BALANCE", "UPDATED_AT") VALUES (3, 'third', 3, '2025-01-03');
SELECT "ACCOUNT_ID", _dwr_status, _dwr_loaded_at IS NOT NULL AS has_load_time FROM staging.accounts ORDER BY 1;
