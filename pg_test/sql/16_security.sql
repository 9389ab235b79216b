-- Security: a hostile search_path changes nothing; row-level security and column privileges are
-- respected, never bypassed; odd names work; temporary and foreign tables are refused.
-- (where in the PL/pgSQL an error was raised is not shown: CONTEXT lines; the pg_tle package runs
-- this file too, ${DWR_TLE_SYNC:-true} is where its operator runs dwr tle install)
\set SHOW_CONTEXT never

-- 1. A schema of traps: operators and functions that record every call, placed before pg_catalog
CREATE SCHEMA trap;
CREATE TABLE trap.fired (what text);
GRANT INSERT ON trap.fired TO PUBLIC;
GRANT USAGE ON SCHEMA trap TO PUBLIC;
DO $$
DECLARE t text; o text; n int := 0;
BEGIN
  FOREACH t IN ARRAY ARRAY['int4', 'int8', 'text', 'timestamptz', 'timestamp', 'jsonb', 'oid', 'tid', 'name', 'bool', 'numeric'] LOOP
    FOREACH o IN ARRAY ARRAY['=', '<', '>', '<=', '>=', '<>'] LOOP
      n := n + 1;
      EXECUTE format('CREATE FUNCTION trap.op%s(%s, %s) RETURNS bool LANGUAGE plpgsql AS %L',
                     n, t, t, format('BEGIN INSERT INTO trap.fired VALUES (%L); RETURN $1 OPERATOR(pg_catalog.%s) $2; END', t || ' ' || o, o));
      EXECUTE format('CREATE OPERATOR trap.%s (LEFTARG = %s, RIGHTARG = %s, FUNCTION = trap.op%s)', o, t, t, n);
    END LOOP;
  END LOOP;
END $$;
CREATE FUNCTION trap.lower(text) RETURNS text LANGUAGE plpgsql AS $$ BEGIN INSERT INTO trap.fired VALUES ('lower'); RETURN pg_catalog.lower($1); END $$;
CREATE FUNCTION trap.quote_ident(text) RETURNS text LANGUAGE plpgsql AS $$ BEGIN INSERT INTO trap.fired VALUES ('quote_ident'); RETURN pg_catalog.quote_ident($1); END $$;
CREATE FUNCTION trap.format(text) RETURNS text LANGUAGE plpgsql AS $$ BEGIN INSERT INTO trap.fired VALUES ('format'); RETURN $1; END $$;
CREATE FUNCTION trap.to_jsonb(anyelement) RETURNS jsonb LANGUAGE plpgsql AS $$ BEGIN INSERT INTO trap.fired VALUES ('to_jsonb'); RETURN pg_catalog.to_jsonb($1); END $$;
CREATE FUNCTION trap.row_to_json(record) RETURNS json LANGUAGE plpgsql AS $$ BEGIN INSERT INTO trap.fired VALUES ('row_to_json'); RETURN pg_catalog.row_to_json($1); END $$;
CREATE FUNCTION trap.jsonb_build_object(text, anyelement) RETURNS jsonb LANGUAGE plpgsql AS $$ BEGIN INSERT INTO trap.fired VALUES ('jsonb_build_object'); RETURN pg_catalog.jsonb_build_object($1, $2); END $$;
CREATE FUNCTION trap.clock_timestamp() RETURNS timestamptz LANGUAGE plpgsql AS $$ BEGIN INSERT INTO trap.fired VALUES ('clock_timestamp'); RETURN pg_catalog.clock_timestamp(); END $$;
CREATE FUNCTION trap.now() RETURNS timestamptz LANGUAGE plpgsql AS $$ BEGIN INSERT INTO trap.fired VALUES ('now'); RETURN pg_catalog.now(); END $$;
CREATE FUNCTION trap.count(anyelement) RETURNS bigint LANGUAGE plpgsql AS $$ BEGIN INSERT INTO trap.fired VALUES ('count'); RETURN 1; END $$;

CREATE SCHEMA sec;
CREATE TABLE sec.parent (id int PRIMARY KEY, updated_at timestamptz);
CREATE TABLE sec.t (id int PRIMARY KEY, parent_id int REFERENCES sec.parent, val text, updated_at timestamptz);
INSERT INTO sec.parent VALUES (1, '2025-01-01');
INSERT INTO sec.t VALUES (1, 1, 'v1', '2025-01-01'), (2, 1, 'v1', '2025-01-01'), (3, 1, 'v1', '2025-01-01');

-- the traps work: plain SQL under this search_path calls them
SET search_path = trap, pg_catalog, public;
SELECT 1 = 1 AS plain_sql, lower('X') AS lowered;
SELECT what FROM trap.fired ORDER BY 1;
RESET search_path;
TRUNCATE trap.fired;

-- every function of the extension under the trap search_path: the same results, no trap fires
SET search_path = trap, pg_catalog, public;
SELECT dwr_create_staging('sec.parent', 'sec_staging');
SELECT dwr_create_staging('sec.t', 'sec_staging');
SELECT dwr_begin_reload('{sec.t, sec.parent}', '2025-01-01 00:00+00', '2025-12-31 00:00+00') AS rid \gset
\! ${DWR_TLE_SYNC:-true}
RESET search_path;
INSERT INTO sec_staging.t VALUES (1, 1, 'v2', '2025-01-02'), (2, 1, 'v0', '2024-12-31'), (4, 1, 'v2', '2025-01-02'), (5, 1, 'v2', '2025-01-02');
INSERT INTO sec_staging.parent VALUES (1, '2025-01-02');
DELETE FROM sec.t WHERE id = 3;
SELECT COALESCE(max(run_id), 0) + 3 AS undo_target FROM dwr.merge_runs \gset
SET search_path = trap, pg_catalog, public;
DELETE FROM sec.parent WHERE id OPERATOR(pg_catalog.=) 999;   -- the delete-tracking trigger runs
SELECT column_name, problem FROM dwr_verify('sec.t');
SELECT * FROM dwr_diff_summary('sec.t');
SELECT key, difference FROM dwr_diff('sec.t') ORDER BY key;
SELECT status, inserted, updated, skipped_stale FROM dwr_merge('sec.t', dry_run => true);
SELECT target, status, inserted, updated, skipped_stale, skipped_deleted FROM dwr_merge_all(:rid);
-- the DMS documents: SQL functions of the compiled extension; the package's operator runs dwr dms
SELECT NOT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname OPERATOR(pg_catalog.=) 'dms_window_reload_tle') AS compiled \gset
\if :compiled
SELECT dwr_dms_table_mappings(:rid, 'SALES') AS mappings, dwr_dms_task_settings(:rid) AS settings \gset
\else
\set mappings `$DWR_TLE_DWR dms table-mappings --reload :rid --source-schema SALES $DWR_TLE_CONN`
\set settings `$DWR_TLE_DWR dms task-settings --reload :rid $DWR_TLE_CONN`
\endif
SELECT jsonb_array_length(:'mappings'::jsonb -> 'rules') AS rules;
SELECT :'settings'::jsonb -> 'FullLoadSettings' ->> 'TargetTablePrepMode' AS prep_mode;
SET client_min_messages = warning;   -- (the undo's NOTICE names the run)
SELECT status, updated FROM dwr_undo(:undo_target);
RESET client_min_messages;
SELECT dwr_end_reload(:rid);
SELECT dwr_purge_staging('sec.t', 'ALL');
SELECT dwr_purge_audit('100 years');
SELECT target, new_rows, total FROM dwr.staging_status WHERE target::text LIKE 'sec.%';
SELECT count(*) AS problems FROM dwr.type_verification WHERE target::text LIKE 'sec.%';
-- (no pg_cron here: 0A000, whose message depends on whether the role may read
-- shared_preload_libraries; the package's owner may not)
\set VERBOSITY sqlstate
SELECT dwr_schedule('sec.t', '* * * * *');
\set VERBOSITY default
SELECT dwr_drop_staging('sec.parent');
RESET search_path;
SELECT count(*) AS traps_fired FROM trap.fired;
SELECT what, count(*) FROM trap.fired GROUP BY 1 ORDER BY 1;
TABLE sec.t ORDER BY id;

-- 2. Row-level security and column privileges on production are respected, not bypassed
CREATE TABLE sec.rls (id int PRIMARY KEY, region text, val text, updated_at timestamptz);
INSERT INTO sec.rls VALUES (1, 'eu', 'v1', '2025-01-01'), (2, 'us', 'v1', '2025-01-01');
ALTER TABLE sec.rls ENABLE ROW LEVEL SECURITY;
CREATE ROLE dwr_eu;
GRANT dwr_eu TO CURRENT_USER;   -- (a role that is not a superuser, as the pg_tle package's owner is, needs this to SET ROLE)
CREATE POLICY eu_only ON sec.rls TO dwr_eu USING (region = 'eu') WITH CHECK (region = 'eu');
SELECT dwr_create_staging('sec.rls', 'sec_staging');
\! ${DWR_TLE_SYNC:-true}
GRANT USAGE ON SCHEMA sec, sec_staging TO dwr_eu;
GRANT SELECT, INSERT, UPDATE ON sec.rls, sec_staging.rls TO dwr_eu;
INSERT INTO sec_staging.rls VALUES (1, 'eu', 'v2', '2025-01-02'), (3, 'eu', 'v2', '2025-01-02');
SET ROLE dwr_eu;
SELECT status, inserted, updated FROM dwr_merge('sec.rls');
RESET ROLE;
-- a staged row the policy forbids: the merge fails (42501), nothing of it stays
INSERT INTO sec_staging.rls VALUES (2, 'us', 'v2 from eu role', '2025-01-02'), (4, 'eu', 'v2', '2025-01-02');
SET ROLE dwr_eu;
\set VERBOSITY default
SELECT dwr_merge('sec.rls');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
TABLE sec.rls ORDER BY id;
-- column privileges: a role that may update only val cannot have a merge write updated_at
CREATE TABLE sec.cols (id int PRIMARY KEY, val text, updated_at timestamptz);
INSERT INTO sec.cols VALUES (1, 'v1', '2025-01-01');
SELECT dwr_create_staging('sec.cols', 'sec_staging');
\! ${DWR_TLE_SYNC:-true}
INSERT INTO sec_staging.cols VALUES (1, 'v2', '2025-01-02');
CREATE ROLE dwr_val_only;
GRANT dwr_val_only TO CURRENT_USER;
GRANT USAGE ON SCHEMA sec, sec_staging TO dwr_val_only;
GRANT SELECT ON sec.cols TO dwr_val_only;
GRANT UPDATE (val) ON sec.cols TO dwr_val_only;
GRANT SELECT, UPDATE ON sec_staging.cols TO dwr_val_only;
SET ROLE dwr_val_only;
SELECT dwr_merge('sec.cols');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
TABLE sec.cols;

-- 3. Odd names: 63-byte identifiers, unicode, names that collide after case folding
CREATE TABLE sec."Ünïcødé Tåble ""quoted""; x" ("ΚΛΕΙΔΙ" int PRIMARY KEY, "a23456789012345678901234567890123456789012345678901234567890123" text, updated_at timestamptz);
INSERT INTO sec."Ünïcødé Tåble ""quoted""; x" VALUES (1, 'v1', '2025-01-01');
SELECT dwr_create_staging('sec."Ünïcødé Tåble ""quoted""; x"', 'sec_staging');
\! ${DWR_TLE_SYNC:-true}
INSERT INTO sec_staging."Ünïcødé Tåble ""quoted""; x" VALUES (1, 'v2', '2025-01-02'), (2, 'v2', '2025-01-02');
SELECT inserted, updated FROM dwr_merge('sec."Ünïcødé Tåble ""quoted""; x"');
CREATE TABLE sec.fold (id int PRIMARY KEY, "Val" text, val text, updated_at timestamptz);
SELECT dwr_create_staging('sec.fold', 'sec_staging');
\! ${DWR_TLE_SYNC:-true}
INSERT INTO sec_staging.fold VALUES (1, 'upper', 'lower', '2025-01-02');
SELECT inserted FROM dwr_merge('sec.fold');
TABLE sec.fold;

-- 4. Tables that cannot be merged into are refused with the reason
CREATE TEMP TABLE tmp_target (id int PRIMARY KEY, updated_at timestamptz);
SELECT dwr_create_staging('tmp_target');
\echo :LAST_ERROR_SQLSTATE
-- (a foreign-data wrapper is made by a superuser: the pg_tle package's database has one already)
DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_foreign_data_wrapper WHERE fdwname = 'dwr_fdw') THEN CREATE FOREIGN DATA WRAPPER dwr_fdw; END IF; END $$;
CREATE SERVER dwr_srv FOREIGN DATA WRAPPER dwr_fdw;
CREATE FOREIGN TABLE sec.ft (id int, updated_at timestamptz) SERVER dwr_srv;
SELECT dwr_create_staging('sec.ft');
\echo :LAST_ERROR_SQLSTATE
DROP FOREIGN TABLE sec.ft;
DROP SERVER dwr_srv;

DROP OWNED BY dwr_eu, dwr_val_only;
DROP ROLE dwr_eu, dwr_val_only;
