-- Installing the extension: functions in the schema CREATE EXTENSION installs into, tables and
-- views in dwr, a comment on every object, user data marked for pg_dump.
CREATE EXTENSION dms_window_reload;

SELECT p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid) AS arguments,
       p.pronamespace::regnamespace AS schema
  FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass
  JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'dms_window_reload'
 ORDER BY 1, 2;

-- every function, table, view, type and column of the extension has a comment
SELECT d.classid::regclass AS catalog, pg_describe_object(d.classid, d.objid, 0) AS object
  FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'dms_window_reload'
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
SELECT unnest(extconfig)::regclass AS dumped FROM pg_extension WHERE extname = 'dms_window_reload' ORDER BY 1;

-- nobody but the owner writes the extension's tables
SELECT c.relname, has_table_privilege('public', c.oid, 'SELECT') AS public_select,
       has_table_privilege('public', c.oid, 'INSERT') OR has_table_privilege('public', c.oid, 'UPDATE')
       OR has_table_privilege('public', c.oid, 'DELETE') AS public_write
  FROM pg_class c WHERE c.relnamespace = 'dwr'::regnamespace AND c.relkind IN ('r', 'v') ORDER BY 1;
