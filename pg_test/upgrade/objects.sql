-- Every object of the installed dms_window_reload as one line each, for comparing an updated
-- installation with a fresh one (pg_test/run-all, "upgrade from ..."): the version; each member
-- object with a digest of its definition (functions), its comment, its privileges (ACL) and, for a
-- view, a digest of its query; each column of the tables in dwr with its type, NOT NULL, default and
-- comment; each constraint and index there. An update script that forgets a REVOKE, a default, a
-- CHECK or an index differs from the fresh install here. psql variable extname: the extension
-- (dms_window_reload unless set; the pg_tle package's is dms_window_reload_tle).
\if :{?extname}
\else
\set extname dms_window_reload
\endif
SELECT 'version ' || extversion FROM pg_extension WHERE extname = :'extname'
UNION ALL
SELECT pg_describe_object(d.classid, d.objid, 0) || ' ' ||
       COALESCE((SELECT md5(pg_get_functiondef(p.oid)) FROM pg_proc p
                  WHERE d.classid = 'pg_proc'::regclass AND p.oid = d.objid AND p.prokind <> 'a'), '-') || ' ' ||
       COALESCE(md5(pg_catalog.obj_description(d.objid, c.relname)), 'no comment') || ' acl ' ||
       COALESCE((SELECT p.proacl::text FROM pg_proc p WHERE d.classid = 'pg_proc'::regclass AND p.oid = d.objid),
                (SELECT r.relacl::text FROM pg_class r WHERE d.classid = 'pg_class'::regclass AND r.oid = d.objid),
                (SELECT n.nspacl::text FROM pg_namespace n WHERE d.classid = 'pg_namespace'::regclass AND n.oid = d.objid),
                (SELECT t.typacl::text FROM pg_type t WHERE d.classid = 'pg_type'::regclass AND t.oid = d.objid),
                '-') || ' view ' ||
       COALESCE((SELECT md5(pg_get_viewdef(r.oid)) FROM pg_class r
                  WHERE d.classid = 'pg_class'::regclass AND r.oid = d.objid AND r.relkind IN ('v', 'm')), '-')
  FROM pg_depend d JOIN pg_class c ON c.oid = d.classid
 WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = :'extname')
UNION ALL
SELECT a.attrelid::regclass || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || ' ' ||
       a.attnotnull || ' default ' ||
       COALESCE((SELECT pg_get_expr(ad.adbin, ad.adrelid) FROM pg_attrdef ad
                  WHERE ad.adrelid = a.attrelid AND ad.adnum = a.attnum), '-') || ' ' ||
       COALESCE(md5(col_description(a.attrelid, a.attnum)), 'no comment')
  FROM pg_attribute a JOIN pg_class r ON r.oid = a.attrelid JOIN pg_namespace n ON n.oid = r.relnamespace
 WHERE n.nspname = 'dwr' AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'constraint ' || co.conrelid::regclass || ' ' || co.conname || ' ' || pg_get_constraintdef(co.oid)
  FROM pg_constraint co WHERE co.connamespace = 'dwr'::regnamespace
UNION ALL
SELECT 'index ' || pg_get_indexdef(i.indexrelid)
  FROM pg_index i JOIN pg_class r ON r.oid = i.indrelid WHERE r.relnamespace = 'dwr'::regnamespace
ORDER BY 1;
