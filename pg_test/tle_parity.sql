-- The pg_tle package has every public function and procedure of the compiled extension, with the
-- same arguments, except those on the list below, each with the reason it is not (yet) there.
-- (A function can exist and refuse one use with 0A000: the package's dwr_merge, dwr_diff and
-- dwr_diff_summary refuse a source without the staging table's columns; docs/managed-postgresql.md
-- lists those.)
-- pg_test/run-all runs this in the package's database with :'compiled' set to the compiled
-- extension's functions (name(identity arguments), one a line); it fails when the package lacks a
-- function that is not on the list, or has one the list still says it lacks.
\set ON_ERROR_STOP 1
CREATE TEMP TABLE not_in_package (function text PRIMARY KEY, why text NOT NULL);
INSERT INTO not_in_package VALUES
  ('dwr_dms_table_mappings(reload_id bigint, source_schema text, source_engine text, source_tables jsonb, lowercase_columns boolean, source_time_zone text)',
   'the package writes the DMS documents with the dwr tool (dwr dms table-mappings), from the same engine'),
  ('dwr_dms_task_settings(reload_id bigint, overrides jsonb)',
   'the package writes the DMS documents with the dwr tool (dwr dms task-settings), from the same engine'),
  ('dwr_dms_cdc_task(reload_id bigint, source_schema text, source_engine text, source_tables jsonb, timestamp_column text)',
   'the package writes the DMS documents with the dwr tool (dwr dms cdc-task), from the same engine');
CREATE TEMP TABLE compiled AS
SELECT f AS function FROM pg_catalog.unnest(pg_catalog.string_to_array(:'compiled', E'\n')) AS f WHERE f <> '';
CREATE TEMP TABLE package AS
SELECT p.proname || '(' || pg_catalog.pg_get_function_identity_arguments(p.oid) || ')' AS function
  FROM pg_catalog.pg_proc p
  JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND d.objid = p.oid AND d.deptype = 'e'
  JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid
 WHERE e.extname = 'dms_window_reload_tle' AND p.pronamespace <> 'dwr'::pg_catalog.regnamespace;
DO $$
DECLARE
    missing text := (SELECT pg_catalog.string_agg(function, ', ' ORDER BY function) FROM
                       (SELECT function FROM compiled EXCEPT SELECT function FROM package
                        EXCEPT SELECT function FROM not_in_package) m);
    stale text := (SELECT pg_catalog.string_agg(function, ', ' ORDER BY function) FROM
                     (SELECT function FROM not_in_package INTERSECT SELECT function FROM package) s);
    unknown text := (SELECT pg_catalog.string_agg(function, ', ' ORDER BY function) FROM
                       (SELECT function FROM not_in_package EXCEPT SELECT function FROM compiled) u);
BEGIN
    IF (SELECT pg_catalog.count(*) FROM compiled) < 10 THEN
        RAISE EXCEPTION 'the list of the compiled extension''s functions is missing';
    END IF;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'the pg_tle package lacks: %', missing
            USING HINT = 'Add them to the package, or to not_in_package with the reason.';
    END IF;
    IF stale IS NOT NULL THEN
        RAISE EXCEPTION 'not_in_package is out of date: the package has % now', stale;
    END IF;
    IF unknown IS NOT NULL THEN
        RAISE EXCEPTION 'not_in_package names what the compiled extension does not have: %', unknown;
    END IF;
END $$;
SELECT pg_catalog.count(*) AS compiled_functions,
       (SELECT pg_catalog.count(*) FROM compiled c WHERE c.function IN (SELECT function FROM package)) AS in_package,
       (SELECT pg_catalog.count(*) FROM not_in_package) AS documented_exceptions
  FROM compiled;
