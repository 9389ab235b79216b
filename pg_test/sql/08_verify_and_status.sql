-- dwr_verify reports type and shape problems between staging and production; the views cover
-- every registered table.
-- (errors raised inside PL/pgSQL carry a CONTEXT line in the pg_tle package; not shown, as in
-- the compiled extension; ${DWR_TLE_SYNC:-true} is where a pg_tle operator runs dwr tle install)
\set SHOW_CONTEXT never
CREATE SCHEMA ver;
CREATE TABLE ver.t (
    id          int PRIMARY KEY,
    short_name  varchar(100),
    amount      integer,
    created     date NOT NULL,
    location    point,
    gone        text,
    updated_at  timestamp
);
CREATE SCHEMA ver_staging;
CREATE TABLE ver_staging.t2 (
    "ID"         numeric,
    "SHORT_NAME" varchar(200),
    amount       text,
    created      timestamp,
    location     integer,
    extra        text,
    updated_at   timestamp
);
ALTER TABLE ver_staging.t2 RENAME TO t;
CREATE TABLE ver.ok (id int PRIMARY KEY, updated_at timestamp);
SELECT dwr_create_staging('ver.ok', staging_schema => 'ver_staging');
\! ${DWR_TLE_SYNC:-true}
-- ver.t cannot be merged yet: location has no conversion from integer to point
SELECT dwr_create_staging('ver.t', staging_schema => 'ver_staging');
\! ${DWR_TLE_SYNC:-true}
SELECT * FROM dwr_verify('ver.t') ORDER BY severity DESC, column_name, problem;
SELECT dwr_merge('ver.t');
\echo :LAST_ERROR_SQLSTATE
SELECT target, column_name, problem, severity FROM dwr.type_verification
 WHERE severity <> 'info' ORDER BY 1, 2, 3;
-- fixing the staging type clears the error
ALTER TABLE ver_staging.t ALTER COLUMN location TYPE point USING NULL;
\! ${DWR_TLE_SYNC:-true}
SELECT count(*) FILTER (WHERE severity = 'error') AS errors FROM dwr_verify('ver.t');
INSERT INTO ver_staging.t ("ID", "SHORT_NAME", amount, created, updated_at) VALUES (1, 'x', '12', '2025-01-01 10:00', '2025-01-01');
SELECT inserted, errors FROM dwr_merge('ver.t');
TABLE ver.t;
SELECT target, staging, new_rows, processed, skipped, error_rows, total
  FROM dwr.staging_status WHERE target::text LIKE 'ver.%' ORDER BY 1;
-- staging narrower than production (a DMS task that created staging with shorter columns, or a
-- wrong mapping): the loader had to cut or reject longer values, so dwr_verify warns
-- (truncation_risk); the merge still runs
CREATE SCHEMA trunc;
CREATE TABLE trunc.t (id int PRIMARY KEY, name varchar(100), note text, amount numeric(12,2), updated_at timestamp);
CREATE SCHEMA trunc_staging;
CREATE TABLE trunc_staging.t (id int PRIMARY KEY, name varchar(50), note varchar(20), amount numeric(10,2), updated_at timestamp);
SELECT dwr_create_staging('trunc.t', staging_schema => 'trunc_staging');
\! ${DWR_TLE_SYNC:-true}
SELECT column_name, problem, severity, production_type, staging_type FROM dwr_verify('trunc.t')
 WHERE severity <> 'info' ORDER BY column_name;
INSERT INTO trunc_staging.t (id, name, note, amount, updated_at) VALUES (1, 'short', 'n', 1.50, '2025-01-01');
SELECT inserted, errors FROM dwr_merge('trunc.t');
SELECT dwr_drop_staging('trunc.t');
DROP SCHEMA trunc, trunc_staging CASCADE;
