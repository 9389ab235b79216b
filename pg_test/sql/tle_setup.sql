\set SHOW_CONTEXT never
-- The pg_tle package, as installed by `dwr tle install` (pg_test/run-all) on a server where the
-- role running these scenarios is not a superuser: it holds pgtle_admin and what an RDS master user
-- has. The package has the objects of the compiled extension: tables and views in dwr, functions in
-- the schema it was created in, a comment on every object, user data marked for pg_dump.
SELECT rolsuper, rolcreaterole, rolcreatedb, pg_has_role(current_user, 'pgtle_admin', 'MEMBER') AS pgtle_admin
  FROM pg_roles WHERE rolname = current_user;
SELECT extname, extversion LIKE '0.6.0.%' AS generated_version, extnamespace::regnamespace AS schema,
       extowner::regrole = current_user::regrole AS owned_by_me
  FROM pg_extension WHERE extname = 'dms_window_reload_tle';
-- no compiled code anywhere in it
SELECT count(*) AS c_functions FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass
  JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'dms_window_reload_tle'
 WHERE p.prolang NOT IN (SELECT oid FROM pg_language WHERE lanname IN ('sql', 'plpgsql'));

-- the SQL interface: the functions a user calls, as in the compiled extension
SELECT p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid) AS arguments
  FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass
  JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'dms_window_reload_tle'
 WHERE p.pronamespace = 'public'::regnamespace
 ORDER BY 1, 2;

-- every function, table, view, type and column of the package has a comment
SELECT d.classid::regclass AS catalog, pg_describe_object(d.classid, d.objid, 0) AS object
  FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'dms_window_reload_tle'
 WHERE d.deptype = 'e'
   AND d.classid IN ('pg_proc'::regclass, 'pg_class'::regclass, 'pg_type'::regclass, 'pg_namespace'::regclass)
   AND NOT (d.classid = 'pg_class'::regclass AND (SELECT relkind FROM pg_class WHERE oid = d.objid) IN ('i', 'S'))
   AND NOT (d.classid = 'pg_type'::regclass AND (SELECT typrelid <> 0 OR typcategory = 'A' FROM pg_type WHERE oid = d.objid) IS TRUE)
   AND obj_description(d.objid, d.classid::regclass::name) IS NULL
 ORDER BY 2;
SELECT c.oid::regclass AS "table", a.attname AS "column without comment"
  FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
 WHERE c.relnamespace = 'dwr'::regnamespace AND c.relkind = 'r'
   AND col_description(c.oid, a.attnum) IS NULL;

-- pg_dump keeps the rows of the tables that hold the operator's data
SELECT unnest(extconfig)::regclass AS dumped FROM pg_extension WHERE extname = 'dms_window_reload_tle' ORDER BY 1;

-- nobody but the owner writes the package's tables
SELECT c.relname, has_table_privilege('public', c.oid, 'SELECT') AS public_select,
       has_table_privilege('public', c.oid, 'INSERT') OR has_table_privilege('public', c.oid, 'UPDATE')
       OR has_table_privilege('public', c.oid, 'DELETE') AS public_write
  FROM pg_class c WHERE c.relnamespace = 'dwr'::regnamespace AND c.relkind IN ('r', 'v') ORDER BY 1;

-- a registered table without a generated merge is refused with what to do
CREATE TABLE public.not_generated (id int PRIMARY KEY, updated_at timestamptz);
SELECT dwr_create_staging('public.not_generated');
SELECT * FROM dwr_merge('public.not_generated');
-- once generated, a change of its columns is caught
\! ${DWR_TLE_SYNC:-true}
SELECT inserted FROM dwr_merge('public.not_generated');
ALTER TABLE public.not_generated ADD COLUMN note text;
SELECT * FROM dwr_merge('public.not_generated');
-- dwr tle check says so too (and exits 3), until the package is generated again
\! $DWR_TLE_CHECK; echo "dwr tle check: exit $?"
\! ${DWR_TLE_SYNC:-true}
\! $DWR_TLE_CHECK; echo "dwr tle check: exit $?"
SELECT inserted FROM dwr_merge('public.not_generated');
SELECT dwr_drop_staging('public.not_generated');
DROP TABLE public.not_generated;
\! ${DWR_TLE_SYNC:-true}
-- a table whose merge cannot be planned gets a merge that raises the engine's error, and
-- dwr_verify says why, as in the compiled extension
CREATE TABLE public.unplannable (id int PRIMARY KEY, updated_at timestamptz);
CREATE TABLE staging.unplannable (id int);
SELECT dwr_create_staging('public.unplannable');
\! ${DWR_TLE_SYNC:-true}
SELECT * FROM dwr_merge('public.unplannable');
SELECT column_name, problem, severity FROM dwr_verify('public.unplannable');
SELECT dwr_drop_staging('public.unplannable');
DROP TABLE public.unplannable;
\! ${DWR_TLE_SYNC:-true}
-- the scenarios after this one start from a package with no run (run ids as in the compiled run)
DELETE FROM dwr.merge_runs;
SELECT setval('dwr.merge_runs_run_id_seq', 1, false) IS NOT NULL AS reset;
