-- dms_window_reload: the SQL interface. Functions live in the schema CREATE EXTENSION installs
-- into (@extschema@), so SELECT dwr_merge('customers') works as is; helpers the views use live in
-- dwr. Every function pins search_path to pg_catalog, pg_temp: whatever a caller's search_path
-- holds, the extension's own SQL resolves nothing through it. Table arguments are regclass, resolved
-- by the caller's search_path when the call is parsed, as in any PostgreSQL function.
--
-- None is SECURITY DEFINER: they act with the caller's privileges on production and staging.

CREATE FUNCTION dwr._create_staging(target pg_catalog.regclass, staging_schema pg_catalog.text,
                                    version_column pg_catalog.text)
RETURNS pg_catalog.regclass
LANGUAGE c VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'dwr_create_staging_wrapper';
COMMENT ON FUNCTION dwr._create_staging(pg_catalog.regclass, pg_catalog.text, pg_catalog.text) IS
  'Implementation of dwr_create_staging.';

CREATE FUNCTION @extschema@.dwr_create_staging(target pg_catalog.regclass,
                                               staging_schema pg_catalog.name DEFAULT 'staging',
                                               version_column pg_catalog.name DEFAULT 'updated_at')
RETURNS pg_catalog.regclass
LANGUAGE sql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT dwr._create_staging($1, $2::pg_catalog.text, $3::pg_catalog.text) $$;
COMMENT ON FUNCTION @extschema@.dwr_create_staging(pg_catalog.regclass, pg_catalog.name, pg_catalog.name) IS
  'Creates staging_schema.<table> (the target''s columns and primary key plus the _dwr_ metadata columns), or adopts a table of that name that a DMS full load created (adding the metadata columns, changing no row), and registers the pair in dwr.tables. Returns the staging table.';

CREATE FUNCTION @extschema@.dwr_drop_staging(target pg_catalog.regclass)
RETURNS void
LANGUAGE c VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'dwr_drop_staging_wrapper';
COMMENT ON FUNCTION @extschema@.dwr_drop_staging(pg_catalog.regclass) IS
  'Drops the staging table of target and its registration; dwr.merge_runs keeps the history.';

CREATE FUNCTION @extschema@.dwr_purge_staging(target pg_catalog.regclass,
                                              status pg_catalog.text DEFAULT 'PROCESSED')
RETURNS pg_catalog.int8
LANGUAGE c VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'dwr_purge_staging_wrapper';
COMMENT ON FUNCTION @extschema@.dwr_purge_staging(pg_catalog.regclass, pg_catalog.text) IS
  'Deletes the staged rows of target in that status (NEW, PROCESSED, SKIPPED, ERROR, or ALL); returns how many.';

CREATE FUNCTION @extschema@.dwr_merge(target pg_catalog.regclass,
                                      dry_run pg_catalog.bool DEFAULT false,
                                      source pg_catalog.regclass DEFAULT NULL)
RETURNS dwr.merge_result
LANGUAGE c VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'dwr_merge_wrapper';
COMMENT ON FUNCTION @extschema@.dwr_merge(pg_catalog.regclass, pg_catalog.bool, pg_catalog.regclass) IS
  'Merges the NEW rows of target''s staging table into target: a staged row replaces a production row only when its version is strictly greater, inserts a missing key, and ends PROCESSED, SKIPPED or ERROR. One transaction; dry_run computes every count and changes nothing. With source, merges every row of that table (a replayed CDC schema, a restored snapshot, a foreign table) instead, never writing it.';

CREATE FUNCTION @extschema@.dwr_verify(target pg_catalog.regclass)
RETURNS TABLE (column_name pg_catalog.text, problem pg_catalog.text,
               production_type pg_catalog.text, staging_type pg_catalog.text,
               severity pg_catalog.text, detail pg_catalog.text)
LANGUAGE c STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'dwr_verify_wrapper';
COMMENT ON FUNCTION @extschema@.dwr_verify(pg_catalog.regclass) IS
  'Type and shape problems between target and its staging table: severity error (the merge refuses to run), warning (rows may become ERROR rows or values change on the way), info.';

CREATE FUNCTION dwr._staging_status()
RETURNS TABLE (target pg_catalog.regclass, staging pg_catalog.regclass,
               new_rows pg_catalog.int8, processed pg_catalog.int8, skipped pg_catalog.int8,
               error_rows pg_catalog.int8, total pg_catalog.int8)
LANGUAGE c STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'staging_status_wrapper';
COMMENT ON FUNCTION dwr._staging_status() IS
  'Implementation of the view dwr.staging_status.';

CREATE FUNCTION @extschema@.dwr_begin_reload(targets pg_catalog.regclass[],
                                             window_start pg_catalog.timestamptz,
                                             window_end pg_catalog.timestamptz)
RETURNS pg_catalog.int8
LANGUAGE c VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'dwr_begin_reload_wrapper';
COMMENT ON FUNCTION @extschema@.dwr_begin_reload(pg_catalog.regclass[], pg_catalog.timestamptz, pg_catalog.timestamptz) IS
  'Opens a reload of these registered tables: while it is open, a merge takes only staged rows whose version lies in [window_start, window_end], and deletes in production from now on stop staged rows of the same key. Returns the reload id.';

CREATE FUNCTION @extschema@.dwr_end_reload(reload_id pg_catalog.int8)
RETURNS void
LANGUAGE c VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'dwr_end_reload_wrapper';
COMMENT ON FUNCTION @extschema@.dwr_end_reload(pg_catalog.int8) IS
  'Closes a reload: its window no longer filters merges, and tombstones only it needed are pruned.';

CREATE FUNCTION @extschema@.dwr_undo(run_id pg_catalog.int8)
RETURNS dwr.merge_result
LANGUAGE c VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'dwr_undo_wrapper';
COMMENT ON FUNCTION @extschema@.dwr_undo(pg_catalog.int8) IS
  'Takes a merge back from its row images: deletes the rows it inserted and restores the rows it updated, except rows changed (or deleted) since, which it leaves alone and counts. Itself a run in dwr.merge_runs (kind undo).';

CREATE FUNCTION @extschema@.dwr_purge_audit(older_than pg_catalog.interval)
RETURNS pg_catalog.int8
LANGUAGE c VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'dwr_purge_audit_wrapper';
COMMENT ON FUNCTION @extschema@.dwr_purge_audit(pg_catalog.interval) IS
  'Deletes the row images (dwr.row_changes) of runs that finished longer ago than older_than; dwr.merge_runs keeps every run. Extension owner only. Returns how many images were deleted.';

CREATE FUNCTION @extschema@.dwr_dms_table_mappings(reload_id pg_catalog.int8,
                                                   source_schema pg_catalog.text,
                                                   source_engine pg_catalog.text DEFAULT 'oracle',
                                                   source_tables pg_catalog.jsonb DEFAULT '{}',
                                                   lowercase_columns pg_catalog.bool DEFAULT NULL,
                                                   source_time_zone pg_catalog.text DEFAULT 'UTC')
RETURNS pg_catalog.jsonb
LANGUAGE c STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'dwr_dms_table_mappings_wrapper';
COMMENT ON FUNCTION @extschema@.dwr_dms_table_mappings(pg_catalog.int8, pg_catalog.text, pg_catalog.text, pg_catalog.jsonb, pg_catalog.bool, pg_catalog.text) IS
  'AWS DMS table mappings for the reload: a selection rule per table with one between filter on the version column (the window, both ends included, in source_time_zone, widened to whole seconds), a schema rename into staging, a table rename per table, convert-lowercase of columns (default for Oracle, whose names are upper case), change-data-type where staging and production types differ. source_tables maps production tables to other source names.';

CREATE FUNCTION @extschema@.dwr_dms_task_settings(reload_id pg_catalog.int8,
                                                  overrides pg_catalog.jsonb DEFAULT '{}')
RETURNS pg_catalog.jsonb
LANGUAGE c STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'dwr_dms_task_settings_wrapper';
COMMENT ON FUNCTION @extschema@.dwr_dms_task_settings(pg_catalog.int8, pg_catalog.jsonb) IS
  'AWS DMS task settings for a full load of the reload into its existing staging tables (TargetSchema = the staging schema, TargetTablePrepMode = DO_NOTHING, limited LOB mode, logging on); overrides is merged in deeply.';

CREATE FUNCTION @extschema@.dwr_merge_all(reload_id pg_catalog.int8 DEFAULT NULL)
RETURNS SETOF dwr.merge_result
LANGUAGE c VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'dwr_merge_all_wrapper';
COMMENT ON FUNCTION @extschema@.dwr_merge_all(pg_catalog.int8) IS
  'Merges every table of the open reload (or, with NULL, every registered table) in one transaction, parents before children by the foreign keys among them; a foreign-key cycle is refused with the tables named. One dwr.merge_result a table.';

CREATE FUNCTION @extschema@.dwr_schedule(target pg_catalog.regclass, cron pg_catalog.text)
RETURNS pg_catalog.int8
LANGUAGE c VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'dwr_schedule_wrapper';
COMMENT ON FUNCTION @extschema@.dwr_schedule(pg_catalog.regclass, pg_catalog.text) IS
  'Schedules SELECT * FROM dwr_merge(target) as a pg_cron job named "dwr_merge <table>" (run as the caller); returns the job id. pg_cron must be installed in this database; otherwise the error says what to run where.';

CREATE FUNCTION @extschema@.dwr_unschedule(target pg_catalog.regclass)
RETURNS void
LANGUAGE c VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'dwr_unschedule_wrapper';
COMMENT ON FUNCTION @extschema@.dwr_unschedule(pg_catalog.regclass) IS
  'Removes the pg_cron job dwr_schedule made for target.';

CREATE FUNCTION dwr._diff_query(target pg_catalog.regclass, source pg_catalog.regclass, summary pg_catalog.bool)
RETURNS pg_catalog.text
LANGUAGE c STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'diff_query_wrapper';
COMMENT ON FUNCTION dwr._diff_query(pg_catalog.regclass, pg_catalog.regclass, pg_catalog.bool) IS
  'Implementation of dwr_diff and dwr_diff_summary: the SQL of the comparison ($1, $2: the open reload''s window).';
