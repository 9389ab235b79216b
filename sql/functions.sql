-- dms_window_reload: what only the compiled extension has, as it is in this version (the functions
-- both modes have are in sql/shared.sql; the pg_tle package has its own of these in
-- sql/tle/functions.sql and generates the rest per table).
--
-- The entry points whose work is Rust (the merge, replay, undo, verification, the DMS documents, the
-- batches' plan and steps), the writes into the extension's own tables (C functions that switch to
-- the extension owner for the write alone, each checking the role it acts for), and Citus's delete
-- trigger. Functions live in the schema CREATE EXTENSION installs into (@extschema@), so SELECT
-- dwr_merge('customers') works as is; helpers live in dwr. Every function pins search_path to
-- pg_catalog, pg_temp. Table arguments are regclass, resolved by the caller's search_path when the
-- call is parsed, as in any PostgreSQL function. The entry points act with the caller's privileges
-- on production and staging; only Citus's delete trigger is SECURITY DEFINER.
--
-- A change here goes into the update script of the version too (sql/dms_window_reload--A--B.sql,
-- between -- @compiled-only-begin and -- @compiled-only-end, which a package's update skips).

-- The steps of dwr_create_staging (sql/shared.sql) that differ by mode (src/staging.rs): the
-- staging table prepared for this server's topology, the delete trigger installed, and the
-- registration written as the extension owner (for a caller it checks).
CREATE FUNCTION dwr._prepare_staging(target pg_catalog.regclass, staging pg_catalog.regclass,
                                     version_column pg_catalog.name)
RETURNS void
LANGUAGE c VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'prepare_staging_wrapper';
COMMENT ON FUNCTION dwr._prepare_staging(pg_catalog.regclass, pg_catalog.regclass, pg_catalog.name) IS
  'Implementation of dwr_create_staging: what this server does with a staging table made or adopted (on Citus: placed like production, with its tombstone and work tables).';

CREATE FUNCTION dwr._install_delete_tracking(target pg_catalog.regclass, staging pg_catalog.regclass,
                                             replace pg_catalog.bool)
RETURNS void
LANGUAGE c VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'install_delete_tracking_wrapper';
COMMENT ON FUNCTION dwr._install_delete_tracking(pg_catalog.regclass, pg_catalog.regclass, pg_catalog.bool) IS
  'Implementation of dwr_create_staging: installs the delete-tracking triggers of target (replace: drops the older ones first); the caller holds the table lock.';

CREATE FUNCTION dwr._register(target pg_catalog.regclass, staging pg_catalog.regclass,
                              version_column pg_catalog.name, created pg_catalog.bool,
                              caller pg_catalog.name)
RETURNS void
LANGUAGE c VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'register_wrapper';
COMMENT ON FUNCTION dwr._register(pg_catalog.regclass, pg_catalog.regclass, pg_catalog.name, pg_catalog.bool, pg_catalog.name) IS
  'Writes the registration of dwr_create_staging for caller (a role the session may act as, which must own target).';

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

CREATE FUNCTION @extschema@.dwr_undo(run_id pg_catalog.int8)
RETURNS dwr.merge_result
LANGUAGE c VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'dwr_undo_wrapper';
COMMENT ON FUNCTION @extschema@.dwr_undo(pg_catalog.int8) IS
  'Takes a merge back from its row images: deletes the rows it inserted and restores the rows it updated, except rows changed (or deleted) since, which it leaves alone and counts. Itself a run in dwr.merge_runs (kind undo).';

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

-- VOLATILE: it records the reload's LOB limit (dwr.reloads.lob_max_kb).
CREATE FUNCTION @extschema@.dwr_dms_task_settings(reload_id pg_catalog.int8,
                                                  overrides pg_catalog.jsonb DEFAULT '{}')
RETURNS pg_catalog.jsonb
LANGUAGE c VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'dwr_dms_task_settings_wrapper';
COMMENT ON FUNCTION @extschema@.dwr_dms_task_settings(pg_catalog.int8, pg_catalog.jsonb) IS
  'AWS DMS task settings for a full load of the reload into its existing staging tables (TargetSchema = the staging schema, TargetTablePrepMode = DO_NOTHING, LOB settings sized from the largest value of the tables'' LOB-like columns, logging on); overrides is merged in deeply. Records the LobMaxSize of limited LOB mode on the reload (dwr.reloads.lob_max_kb), for the merge''s guard against truncated values.';

CREATE FUNCTION dwr._diff_query(target pg_catalog.regclass, source pg_catalog.regclass, summary pg_catalog.bool)
RETURNS pg_catalog.text
LANGUAGE c STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'diff_query_wrapper';
COMMENT ON FUNCTION dwr._diff_query(pg_catalog.regclass, pg_catalog.regclass, pg_catalog.bool) IS
  'Implementation of dwr_diff and dwr_diff_summary: the SQL of the comparison ($1, $2: the open reload''s window).';

CREATE FUNCTION dwr._batch_plan(target pg_catalog.regclass, batch_size pg_catalog.int4)
RETURNS pg_catalog.int8
LANGUAGE c VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'dwr_batch_plan_wrapper';
COMMENT ON FUNCTION dwr._batch_plan(pg_catalog.regclass, pg_catalog.int4) IS
  'Implementation of dwr_merge_batches: cuts the NEW staged rows'' keys into batches of batch_size keys (bounds in the session table pg_temp._dwr_batches); returns the number of NEW staged rows.';

-- The delete tracking of a Citus distributed or reference table: the same trigger, created by Citus
-- on every shard, so it fires on the worker that holds the row. It writes the deleted key into the
-- shard of the tombstone table (TG_ARGV[0], co-located with production: same node, same shard
-- range) that matches the shard it fired on, directly, so the tombstone commits or rolls back with
-- the delete in the worker's own transaction. Its other arguments are the key's column names.
CREATE FUNCTION dwr._record_delete_citus() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    shard pg_catalog.int8 := pg_catalog.substring(TG_TABLE_NAME, '_([0-9]+)$')::pg_catalog.int8;
    tombstones pg_catalog.regclass := TG_ARGV[0]::pg_catalog.regclass;
    tomb_shard pg_catalog.int8;
    tomb_schema pg_catalog.name;
    tomb_name pg_catalog.name;
    cols pg_catalog.text;
    vals pg_catalog.text;
BEGIN
    SELECT o.shardid INTO tomb_shard
      FROM pg_catalog.pg_dist_shard m
      JOIN pg_catalog.pg_dist_shard o ON o.logicalrelid OPERATOR(pg_catalog.=) tombstones
       AND o.shardminvalue IS NOT DISTINCT FROM m.shardminvalue
     WHERE m.shardid OPERATOR(pg_catalog.=) shard;
    IF tomb_shard IS NULL THEN
        RAISE EXCEPTION 'dwr._record_delete_citus: % is not a shard placed like %', TG_TABLE_NAME, tombstones
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Run dwr_create_staging again for the production table.';
    END IF;
    SELECT n.nspname, c.relname INTO tomb_schema, tomb_name
      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
     WHERE c.oid OPERATOR(pg_catalog.=) tombstones;
    SELECT pg_catalog.string_agg(pg_catalog.quote_ident(k), ', '),
           pg_catalog.string_agg('($1).' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(k), ', ')
      INTO cols, vals
      FROM pg_catalog.unnest(TG_ARGV[1:]) AS k;
    EXECUTE pg_catalog.format('INSERT INTO %I.%I (%s) SELECT %s', tomb_schema,
                              tomb_name OPERATOR(pg_catalog.||) '_' OPERATOR(pg_catalog.||) tomb_shard, cols, vals)
      USING OLD;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION dwr._record_delete_citus() IS
  'Trigger function of the delete tracking that dwr_create_staging installs on a Citus distributed or reference table: records the deleted key in the co-located shard of its tombstone table.';

CREATE FUNCTION dwr._merge_batch(target pg_catalog.regclass, batch pg_catalog.int4, batches pg_catalog.int4,
                                 done pg_catalog.int8, total pg_catalog.int8, through pg_catalog.int4)
RETURNS dwr.merge_result
LANGUAGE c VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'dwr_merge_batch_wrapper';
COMMENT ON FUNCTION dwr._merge_batch(pg_catalog.regclass, pg_catalog.int4, pg_catalog.int4, pg_catalog.int8, pg_catalog.int8, pg_catalog.int4) IS
  'Implementation of dwr_merge_batches: merges the staged rows of planned batches batch to through, as one merge run.';

CREATE FUNCTION dwr._batch_failed(target pg_catalog.regclass, started_at pg_catalog.timestamptz,
                                  error_sqlstate pg_catalog.text, error_message pg_catalog.text)
RETURNS void LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $dwr$
BEGIN
    -- nothing to do: the merge of a batch records its own failure (a background worker writes the
    -- FAILED run after the rollback, src/failure.rs)
END
$dwr$;
COMMENT ON FUNCTION dwr._batch_failed(pg_catalog.regclass, pg_catalog.timestamptz, pg_catalog.text, pg_catalog.text) IS
  'Implementation of dwr_merge_batches: records a batch that failed (the compiled extension''s merge has recorded it already).';

-- The writes into the extension's own tables: C functions that switch to the extension owner for
-- the write alone (src/reload.rs, src/staging.rs, src/undo.rs). Each checks the role it acts for.
CREATE FUNCTION dwr._reload_insert(targets pg_catalog.regclass[], window_start pg_catalog.timestamptz,
                                   window_end pg_catalog.timestamptz, caller pg_catalog.name)
RETURNS pg_catalog.int8 LANGUAGE c VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'reload_insert_wrapper';
COMMENT ON FUNCTION dwr._reload_insert(pg_catalog.regclass[], pg_catalog.timestamptz, pg_catalog.timestamptz, pg_catalog.name) IS
  'Implementation of dwr_begin_reload: writes the reload for caller (a role the session may act as, owning every table; none may be in another open reload).';

CREATE FUNCTION dwr._end_reload(reload_id pg_catalog.int8, caller pg_catalog.name)
RETURNS void LANGUAGE c VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'end_reload_wrapper';
COMMENT ON FUNCTION dwr._end_reload(pg_catalog.int8, pg_catalog.name) IS
  'Implementation of dwr_end_reload for caller (who must own the reload''s tables); prunes the tombstones nothing needs any more.';

CREATE FUNCTION dwr._restart_tracking(target pg_catalog.regclass, caller pg_catalog.name)
RETURNS void LANGUAGE c VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'restart_tracking_wrapper';
COMMENT ON FUNCTION dwr._restart_tracking(pg_catalog.regclass, pg_catalog.name) IS
  'Implementation of dwr_purge_staging: when staging holds no NEW row, deletes count from now on.';

CREATE FUNCTION dwr._purge_audit(older_than pg_catalog.interval, caller pg_catalog.name)
RETURNS pg_catalog.int8 LANGUAGE c VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'purge_audit_wrapper';
COMMENT ON FUNCTION dwr._purge_audit(pg_catalog.interval, pg_catalog.name) IS
  'Implementation of dwr_purge_audit for caller (the extension owner or a member of it).';

CREATE FUNCTION dwr._unregister(target pg_catalog.regclass, caller pg_catalog.name)
RETURNS void LANGUAGE c VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'unregister_wrapper';
COMMENT ON FUNCTION dwr._unregister(pg_catalog.regclass, pg_catalog.name) IS
  'Implementation of dwr_drop_staging for caller (who must own target): removes the registration and tombstones of target, and on Citus the tables beside staging.';

-- Not a write into the extension's tables (it runs as the caller), but Citus needs its trigger
-- DDL let through: src/topology.
CREATE FUNCTION dwr._remove_delete_tracking(target pg_catalog.regclass)
RETURNS void LANGUAGE c VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'remove_delete_tracking_wrapper';
COMMENT ON FUNCTION dwr._remove_delete_tracking(pg_catalog.regclass) IS
  'Implementation of dwr_drop_staging: drops the delete-tracking trigger of target (the caller holds the table lock).';

-- dwr_replay: a change log (DMS's CDC files loaded into a table, a Debezium topic, ...) replayed
-- into production, per key its last change: I and U as staged rows are merged, D removing
-- production's row when production's version is not newer than the delete's.
CREATE FUNCTION @extschema@.dwr_replay(target pg_catalog.regclass, changes pg_catalog.regclass,
                                       order_by pg_catalog.text[],
                                       operation pg_catalog.text DEFAULT 'Op',
                                       dry_run pg_catalog.bool DEFAULT false)
RETURNS dwr.merge_result
LANGUAGE c VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'dwr_replay_wrapper';
COMMENT ON FUNCTION @extschema@.dwr_replay(pg_catalog.regclass, pg_catalog.regclass, pg_catalog.text[], pg_catalog.text, pg_catalog.bool) IS
  'Replays change log changes into target: per key the last change by order_by decides; I and U (c, u, r) are merged as staged rows are (version guard, window, tombstones, errors isolated), D (d) removes production''s row when production''s version is not newer than the D''s version column, and stops an older row of the key from being inserted later in the reload. One transaction, every removed row''s before image kept, undone by dwr_undo; dry_run changes nothing. operation names the operation column (I, U, D as DMS writes them; c, u, d, r as Debezium does).';

-- dwr_delete_absent: deletes by absence, opt-in, once the window's full load is complete.
CREATE FUNCTION @extschema@.dwr_delete_absent(target pg_catalog.regclass, max_deletes pg_catalog.int8,
                                              dry_run pg_catalog.bool DEFAULT false)
RETURNS dwr.merge_result
LANGUAGE c VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'dwr_delete_absent_wrapper';
COMMENT ON FUNCTION @extschema@.dwr_delete_absent(pg_catalog.regclass, pg_catalog.int8, pg_catalog.bool) IS
  'Once the window''s full load in staging is complete: removes the production rows of the open reload''s window whose key staging lacks (in any status), each only while production''s version is still the one read (a row CDC changed since is left); refused with nothing removed when they are more than max_deletes. Merges nothing; every removed row''s before image kept, undone by dwr_undo; dry_run changes nothing.';

-- dwr_dms_cdc_task: the documents of a CDC-only DMS task to Amazon S3 that replays the reload's
-- window (the package: dwr dms cdc-task).
CREATE FUNCTION @extschema@.dwr_dms_cdc_task(reload_id pg_catalog.int8,
                                             source_schema pg_catalog.text,
                                             source_engine pg_catalog.text DEFAULT 'oracle',
                                             source_tables pg_catalog.jsonb DEFAULT '{}',
                                             timestamp_column pg_catalog.text DEFAULT 'commit_ts')
RETURNS pg_catalog.jsonb
LANGUAGE c STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'dwr_dms_cdc_task_wrapper';
COMMENT ON FUNCTION @extschema@.dwr_dms_cdc_task(pg_catalog.int8, pg_catalog.text, pg_catalog.text, pg_catalog.jsonb, pg_catalog.text) IS
  'The documents of a CDC-only AWS DMS task to an Amazon S3 target that replays the reload''s window: CdcStartTime and CdcStopPosition (the window, UTC), TableMappings (every table of the reload, no filter), ReplicationTaskSettings, the S3 endpoint''s S3Settings (CSV, Op first, the commit time in timestamp_column), and per table ChangeLogs: the S3 folder, the change-log table''s CREATE TABLE, the COPY column list and the dwr_replay call.';

-- A CDC DELETE by key that matched no row (the source deleted a row production never had): the
-- statement trigger arms its table and the library's ExecutorEnd hook records the statement's key as
-- a tombstone when it deleted nothing (src/missed_deletes.rs). Every registered table on this
-- server has the trigger (dwr_create_staging adds it).
CREATE FUNCTION dwr._arm_missed_deletes() RETURNS trigger
LANGUAGE c
AS 'MODULE_PATHNAME', 'dwr_arm_missed_deletes_wrapper';
COMMENT ON FUNCTION dwr._arm_missed_deletes() IS
  'Statement trigger (BEFORE DELETE FOR EACH STATEMENT, ENABLE ALWAYS) of a registered table, its arguments the primary key''s columns: a DELETE of the table that deletes no row and names every key column with = and a constant or parameter records that key in dwr.tombstones.';
