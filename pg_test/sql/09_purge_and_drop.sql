-- Purging staged rows by status, dropping staging; the audit stays.
-- (errors raised inside PL/pgSQL carry a CONTEXT line in the pg_tle package; not shown, as in
-- the compiled extension; ${DWR_TLE_SYNC:-true} is where a pg_tle operator runs dwr tle install)
\set SHOW_CONTEXT never
CREATE SCHEMA pd;
CREATE TABLE pd.t (id int PRIMARY KEY, updated_at timestamp);
INSERT INTO pd.t VALUES (1, '2025-01-05');
SELECT dwr_create_staging('pd.t', staging_schema => 'pd_staging');
\! ${DWR_TLE_SYNC:-true}
-- without the primary key, staging can hold one key several times
ALTER TABLE pd_staging.t DROP CONSTRAINT t_pkey;
INSERT INTO pd_staging.t (id, updated_at) VALUES (1, '2025-01-06'), (1, '2025-01-04'), (2, NULL), (3, '2025-01-01');
\! ${DWR_TLE_SYNC:-true}
SELECT inserted, updated, skipped_stale, errors FROM dwr_merge('pd.t');
SELECT _dwr_status, count(*) FROM pd_staging.t GROUP BY 1 ORDER BY 1;
SELECT dwr_purge_staging('pd.t');
SELECT dwr_purge_staging('pd.t', 'skipped');
SELECT _dwr_status, count(*) FROM pd_staging.t GROUP BY 1 ORDER BY 1;
SELECT dwr_purge_staging('pd.t', 'ALL');
SELECT dwr_drop_staging('pd.t');
SELECT to_regclass('pd_staging.t') AS staging_left,
       (SELECT count(*) FROM dwr.tables WHERE target = 'pd.t'::regclass) AS registrations;
SELECT count(*) AS runs_kept FROM dwr.merge_runs WHERE target_name = 'pd.t';
SELECT dwr_merge('pd.t');
