-- dms_window_reload_tle: what only the pg_tle package has, in PL/pgSQL.
--
-- The public functions that are the same for every table are shared with the compiled extension
-- (sql/shared.sql, which both modes install); the merge and the undo are generated for each
-- registered table from the same programs (engine/src/tle/). Here is what differs by nature:
-- * the run-time helpers of the generated merge and undo (settings, opening and closing a run, the
--   fingerprint check), which the compiled extension has in Rust (src/audit.rs, src/guc.rs); the
--   rules they apply (which errors are about one row, the settings' defaults, the lock-timeout
--   budget) are the engine's, filled in below (the merge lock, dwr._lock_target, is shared PL/pgSQL
--   since 0.6.0);
-- * the writes into the package's own tables (registration, reloads, runs, images, purges): SECURITY
--   DEFINER functions of the package owner, where the compiled extension has C functions that
--   switch to its owner for the write alone. Each checks the role it acts for (dwr._check_caller,
--   dwr._require_owner, ... in sql/shared.sql);
-- * two steps of the shared dwr_create_staging, and one of dwr_drop_staging: refusing a Citus table
--   (dwr._prepare_staging), installing and removing the delete trigger without the compiled
--   extension's topologies (dwr._install_delete_tracking, dwr._remove_delete_tracking;
--   src/staging.rs has the compiled extension's);
-- * the record of a failed merge (dwr_merge_recorded, dwr._record_failed): a trusted extension has
--   no background worker.
--
-- Everything is CREATE OR REPLACE: an update of the package runs this file again. Every function
-- pins search_path to pg_catalog, pg_temp. Written in by the dwr tool: @dwr_owner@, the role that
-- installed the package; @is_row_error@, which errors are about one row (dwr_engine::error, the
-- rule the compiled extension applies); @row_audit@, @row_lock_timeout_ms@, @max_lock_timeouts@,
-- the settings' defaults and the lock-timeout budget (dwr_engine::settings).

CREATE OR REPLACE FUNCTION dwr._is_row_error(state pg_catalog.text)
RETURNS pg_catalog.bool LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
AS $dwr$ SELECT @is_row_error@ $dwr$;
COMMENT ON FUNCTION dwr._is_row_error(pg_catalog.text) IS
  'Whether an error is about one row''s data (it marks that staged row ERROR) rather than a failure of the whole merge.';

CREATE OR REPLACE FUNCTION dwr._row_audit()
RETURNS pg_catalog.bool LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $dwr$ SELECT COALESCE(NULLIF(pg_catalog.current_setting('dwr.row_audit', true), ''), '@row_audit@')::pg_catalog.bool $dwr$;
COMMENT ON FUNCTION dwr._row_audit() IS
  'dwr.row_audit (default on): whether merges write before and after images to dwr.row_changes.';

CREATE OR REPLACE FUNCTION dwr._row_lock_timeout()
RETURNS pg_catalog.text LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $dwr$ SELECT dwr._setting_ms('dwr.row_lock_timeout', @row_lock_timeout_ms@)::pg_catalog.text OPERATOR(pg_catalog.||) 'ms' $dwr$;
COMMENT ON FUNCTION dwr._row_lock_timeout() IS
  'dwr.row_lock_timeout (default 20 ms): how long a merge''s write waits for a row CDC holds before deferring it.';

CREATE OR REPLACE FUNCTION dwr._count_lock_timeout()
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $dwr$
#variable_conflict use_column
DECLARE
    n pg_catalog.int4 := COALESCE(NULLIF(pg_catalog.current_setting('dwr.lock_timeouts_in_run', true), ''), '0')::pg_catalog.int4 OPERATOR(pg_catalog.+) 1;
BEGIN
    IF n OPERATOR(pg_catalog.>) @max_lock_timeouts@ THEN
        RAISE EXCEPTION 'merge gave up: other transactions kept holding the rows it writes'
            USING ERRCODE = '55P03',
                  DETAIL = pg_catalog.format('@max_lock_timeouts@ writes each waited dwr.row_lock_timeout = %s', dwr._row_lock_timeout()),
                  HINT = 'Something holds locks on many production rows (a long transaction, a table lock); retry when it is done.';
    END IF;
    PERFORM pg_catalog.set_config('dwr.lock_timeouts_in_run', n::pg_catalog.text, true);
END
$dwr$;
COMMENT ON FUNCTION dwr._count_lock_timeout() IS
  'Counts a write of the running merge that ran out of dwr.row_lock_timeout; past 64 the merge gives up.';

CREATE OR REPLACE FUNCTION dwr._test_hold()
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $dwr$
#variable_conflict use_column
DECLARE
    k pg_catalog.int8 := COALESCE(NULLIF(pg_catalog.current_setting('dwr.test_hold_after_classify', true), ''), '0')::pg_catalog.int8;
BEGIN
    IF k OPERATOR(pg_catalog.<>) 0 THEN
        PERFORM pg_catalog.pg_advisory_lock_shared(k);
        PERFORM pg_catalog.pg_advisory_unlock_shared(k);
    END IF;
END
$dwr$;
COMMENT ON FUNCTION dwr._test_hold() IS
  'Test hook dwr.test_hold_after_classify: waits for that advisory lock between reading and writing.';

CREATE OR REPLACE FUNCTION dwr._fingerprint(rel pg_catalog.oid)
RETURNS pg_catalog.text LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $dwr$
SELECT pg_catalog.md5(COALESCE((
    SELECT pg_catalog.string_agg(a.attname OPERATOR(pg_catalog.||) ' '
               OPERATOR(pg_catalog.||) pg_catalog.format_type(a.atttypid, a.atttypmod)
               OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) a.attnotnull::pg_catalog.text
               OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) a.attgenerated::pg_catalog.text
               OPERATOR(pg_catalog.||) a.attidentity::pg_catalog.text
               OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) a.attcollation::pg_catalog.text,
               ', ' ORDER BY a.attnum)
      FROM pg_catalog.pg_attribute a
     WHERE a.attrelid OPERATOR(pg_catalog.=) rel AND a.attnum OPERATOR(pg_catalog.>) 0
       AND NOT a.attisdropped), '')
    OPERATOR(pg_catalog.||) ' key ' OPERATOR(pg_catalog.||) COALESCE((
    SELECT i.indkey::pg_catalog.text FROM pg_catalog.pg_index i
     WHERE i.indrelid OPERATOR(pg_catalog.=) rel AND i.indisprimary), '')
    OPERATOR(pg_catalog.||) ' owner ' OPERATOR(pg_catalog.||) COALESCE((
    SELECT c.relowner::pg_catalog.text FROM pg_catalog.pg_class c
     WHERE c.oid OPERATOR(pg_catalog.=) rel), ''))
$dwr$;
COMMENT ON FUNCTION dwr._fingerprint(pg_catalog.oid) IS
  'A digest of a table''s columns, primary key and owner: a generated merge function refuses to run when its tables no longer match the digest it was generated for.';

CREATE OR REPLACE FUNCTION dwr._begin_run(kind pg_catalog.text, undo_of pg_catalog.int8, target pg_catalog.oid,
                                          target_name pg_catalog.text, source_name pg_catalog.text,
                                          dry_run pg_catalog.bool, row_audit pg_catalog.bool, run_by pg_catalog.name)
RETURNS pg_catalog.int8 LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $dwr$
#variable_conflict use_column
DECLARE
    r record;
    id pg_catalog.int8;
BEGIN
    -- the run is the caller's own: a role the session may act as, on a table that role owns or
    -- may write (privileges on some columns are enough to record the run: the merge's own
    -- statements then fail, as in the compiled extension, on a column it may not write)
    PERFORM dwr._check_caller(run_by);
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) target
                         AND (pg_catalog.pg_has_role(run_by, c.relowner, 'USAGE')
                              OR pg_catalog.has_any_column_privilege(run_by, c.oid, 'INSERT')
                              OR pg_catalog.has_any_column_privilege(run_by, c.oid, 'UPDATE'))) THEN
        RAISE EXCEPTION 'permission denied to record a run of %', target_name USING ERRCODE = '42501';
    END IF;
    SELECT reload_id, window_start, window_end INTO r FROM dwr.reloads
     WHERE ended_at IS NULL AND $3::pg_catalog.regclass OPERATOR(pg_catalog.=) ANY (targets);
    INSERT INTO dwr.merge_runs (undo_of, kind, target, target_name, source_name, dry_run, status,
                                run_by, session_user_name, backend_pid, started_at, reload_id,
                                window_start, window_end, row_audit)
    VALUES ($2, $1, $3, $4, $5, $6, 'RUNNING', $8, SESSION_USER, pg_catalog.pg_backend_pid(),
            pg_catalog.clock_timestamp(), r.reload_id, r.window_start, r.window_end, $7)
    RETURNING run_id INTO id;
    RETURN id;
END
$dwr$;
COMMENT ON FUNCTION dwr._begin_run(pg_catalog.text, pg_catalog.int8, pg_catalog.oid, pg_catalog.text, pg_catalog.text, pg_catalog.bool, pg_catalog.bool, pg_catalog.name) IS
  'Opens a run in dwr.merge_runs for the caller (who must be able to act as run_by, a role that owns or may write the table); returns its id.';

CREATE OR REPLACE FUNCTION dwr._finish_run(run_id pg_catalog.int8, status pg_catalog.text,
                                           inserted pg_catalog.int8, updated pg_catalog.int8,
                                           unchanged pg_catalog.int8, skipped_stale pg_catalog.int8,
                                           skipped_deleted pg_catalog.int8, skipped_outside_window pg_catalog.int8,
                                           deferred pg_catalog.int8, errors pg_catalog.int8, deleted pg_catalog.int8)
RETURNS pg_catalog.interval LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $dwr$
#variable_conflict use_column
DECLARE
    d pg_catalog.interval;
BEGIN
    -- only a run this session opened and has not finished
    UPDATE dwr.merge_runs m SET status = $2, finished_at = pg_catalog.clock_timestamp(),
           duration = pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) m.started_at,
           inserted = $3, updated = $4, unchanged = $5, skipped_stale = $6, skipped_deleted = $7,
           skipped_outside_window = $8, deferred = $9, errors = $10, deleted = $11
     WHERE m.run_id OPERATOR(pg_catalog.=) $1 AND m.status OPERATOR(pg_catalog.=) 'RUNNING'
       AND m.backend_pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid()
    RETURNING m.duration INTO d;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'run % is not a running run of this session', $1 USING ERRCODE = '55000';
    END IF;
    RETURN d;
END
$dwr$;
COMMENT ON FUNCTION dwr._finish_run(pg_catalog.int8, pg_catalog.text, pg_catalog.int8, pg_catalog.int8, pg_catalog.int8, pg_catalog.int8, pg_catalog.int8, pg_catalog.int8, pg_catalog.int8, pg_catalog.int8, pg_catalog.int8) IS
  'Closes a run this session opened with its status and counts; returns its duration.';

CREATE OR REPLACE FUNCTION dwr._prune_tombstones(target pg_catalog.oid)
RETURNS void LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $dwr$
DELETE FROM dwr.tombstones tb WHERE tb.target OPERATOR(pg_catalog.=) $1
   AND tb.deleted_at OPERATOR(pg_catalog.<) (SELECT dwr._tombstone_cutoff($1))
$dwr$;
COMMENT ON FUNCTION dwr._prune_tombstones(pg_catalog.oid) IS
  'Deletes the tombstones of target that neither its staging table nor an open reload can need.';

CREATE OR REPLACE FUNCTION dwr._register(target pg_catalog.regclass, staging pg_catalog.regclass,
                                         version_column pg_catalog.name, created pg_catalog.bool,
                                         caller pg_catalog.name)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $dwr$
#variable_conflict use_column
BEGIN
    PERFORM dwr._check_caller(caller);
    PERFORM dwr._require_owner(target, caller);
    PERFORM dwr._check_staging_owner(target, staging);
    -- deletes count from the moment delete tracking holds its lock (not from the transaction's
    -- start: a delete committed while the lock was being waited for was never recorded)
    INSERT INTO dwr.tables (target, staging, version_column, staging_created, registered_by, tracking_since)
    VALUES ($1, $2, $3, $4, $5, pg_catalog.clock_timestamp())
    ON CONFLICT (target) DO UPDATE SET staging = EXCLUDED.staging,
       version_column = EXCLUDED.version_column, registered_at = pg_catalog.now(),
       registered_by = EXCLUDED.registered_by,
       staging_created = CASE WHEN dwr.tables.staging OPERATOR(pg_catalog.=) EXCLUDED.staging
                              THEN dwr.tables.staging_created ELSE EXCLUDED.staging_created END;
END
$dwr$;
COMMENT ON FUNCTION dwr._register(pg_catalog.regclass, pg_catalog.regclass, pg_catalog.name, pg_catalog.bool, pg_catalog.name) IS
  'Writes the registration of dwr_create_staging for caller (a role the session may act as, which must own target).';

CREATE OR REPLACE FUNCTION dwr._unregister(target pg_catalog.regclass, caller pg_catalog.name)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $dwr$
#variable_conflict use_column
BEGIN
    PERFORM dwr._check_caller(caller);
    IF EXISTS (SELECT FROM pg_catalog.pg_class WHERE oid OPERATOR(pg_catalog.=) target) THEN
        PERFORM dwr._require_owner(target, caller);
    END IF;
    DELETE FROM dwr.tables WHERE dwr.tables.target OPERATOR(pg_catalog.=) $1;
    DELETE FROM dwr.tombstones WHERE dwr.tombstones.target OPERATOR(pg_catalog.=) $1;
END
$dwr$;
COMMENT ON FUNCTION dwr._unregister(pg_catalog.regclass, pg_catalog.name) IS
  'Removes the registration and tombstones of target (for dwr_drop_staging).';

CREATE OR REPLACE FUNCTION dwr._restart_tracking(target pg_catalog.regclass, caller pg_catalog.name)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $dwr$
#variable_conflict use_column
DECLARE
    s pg_catalog.regclass := dwr._check_may_purge(target, caller);
    any_new pg_catalog.bool;
BEGIN
    EXECUTE pg_catalog.format('SELECT EXISTS (SELECT 1 FROM %s WHERE _dwr_status OPERATOR(pg_catalog.=) ''NEW'')', s)
       INTO any_new;
    IF NOT any_new THEN
        UPDATE dwr.tables SET tracking_since = pg_catalog.now() WHERE dwr.tables.target OPERATOR(pg_catalog.=) $1;
    END IF;
    PERFORM dwr._prune_tombstones(target::pg_catalog.oid);
END
$dwr$;
COMMENT ON FUNCTION dwr._restart_tracking(pg_catalog.regclass, pg_catalog.name) IS
  'Implementation of dwr_purge_staging: when staging holds no NEW row, deletes count from now on.';

-- The steps of the shared dwr_create_staging (sql/shared.sql) that are the package's: a Citus table
-- refused (its merges run on the shards, which only the compiled extension does), and the delete
-- trigger (one row trigger; the compiled extension's topologies do more, src/staging.rs).
CREATE OR REPLACE FUNCTION dwr._prepare_staging(target pg_catalog.regclass, staging pg_catalog.regclass,
                                                version_column pg_catalog.name)
RETURNS void LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $dwr$
BEGIN
    IF pg_catalog.to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL THEN
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid OPERATOR(pg_catalog.=) target) THEN
            RAISE EXCEPTION 'production table % is a Citus table, which the pg_tle package cannot merge', target
                USING ERRCODE = '0A000',
                      DETAIL = 'The package''s merge joins through a temporary table on this server, which the shards cannot see.',
                      HINT = 'Install the compiled extension dms_window_reload on the Citus cluster; see README, "Citus".';
        END IF;
    END IF;
END
$dwr$;
COMMENT ON FUNCTION dwr._prepare_staging(pg_catalog.regclass, pg_catalog.regclass, pg_catalog.name) IS
  'Implementation of dwr_create_staging: refuses a Citus table, which the package cannot merge.';

CREATE OR REPLACE FUNCTION dwr._install_delete_tracking(target pg_catalog.regclass, staging pg_catalog.regclass,
                                                        replace pg_catalog.bool)
RETURNS void LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $dwr$
BEGIN
    PERFORM dwr._require_owner(target, CURRENT_USER);
    IF replace THEN
        EXECUTE pg_catalog.format('DROP TRIGGER dwr_record_delete ON %s', target);
    END IF;
    -- the primary key's columns, in key order
    EXECUTE pg_catalog.format(
        'CREATE TRIGGER dwr_record_delete AFTER DELETE ON %s FOR EACH ROW EXECUTE FUNCTION dwr._record_delete(%s)',
        target,
        (SELECT pg_catalog.string_agg(pg_catalog.quote_literal(a.attname), ', ' ORDER BY k.ord)
           FROM pg_catalog.pg_index i
          CROSS JOIN LATERAL pg_catalog.unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
           JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) i.indrelid
                                         AND a.attnum OPERATOR(pg_catalog.=) k.attnum
          WHERE i.indrelid OPERATOR(pg_catalog.=) target AND i.indisprimary));
    EXECUTE pg_catalog.format('ALTER TABLE %s ENABLE ALWAYS TRIGGER dwr_record_delete', target);
END
$dwr$;
COMMENT ON FUNCTION dwr._install_delete_tracking(pg_catalog.regclass, pg_catalog.regclass, pg_catalog.bool) IS
  'Implementation of dwr_create_staging: installs the delete-tracking trigger of target (replace: drops the older one first); the caller holds the table lock.';

CREATE OR REPLACE FUNCTION dwr._remove_delete_tracking(target pg_catalog.regclass)
RETURNS void LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $dwr$
BEGIN
    EXECUTE pg_catalog.format('DROP TRIGGER dwr_record_delete ON %s', target);
END
$dwr$;
COMMENT ON FUNCTION dwr._remove_delete_tracking(pg_catalog.regclass) IS
  'Implementation of dwr_drop_staging: drops the delete-tracking trigger of target (the caller holds the table lock).';

CREATE OR REPLACE FUNCTION dwr._purge_audit(older_than pg_catalog.interval, caller pg_catalog.name)
RETURNS pg_catalog.int8 LANGUAGE plpgsql SECURITY DEFINER VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $dwr$
#variable_conflict use_column
DECLARE
    n pg_catalog.int8;
BEGIN
    -- CURRENT_USER: the package owner, whose function this is
    PERFORM dwr._check_audit_owner(caller, (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER));
    DELETE FROM dwr.row_changes c USING dwr.merge_runs r
     WHERE c.run_id OPERATOR(pg_catalog.=) r.run_id
       AND COALESCE(r.finished_at, r.started_at) OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) older_than);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$dwr$;
COMMENT ON FUNCTION dwr._purge_audit(pg_catalog.interval, pg_catalog.name) IS
  'Implementation of dwr_purge_audit for caller (the package owner or a member of it).';

CREATE OR REPLACE FUNCTION dwr._reload_insert(targets pg_catalog.regclass[], window_start pg_catalog.timestamptz,
                                              window_end pg_catalog.timestamptz, caller pg_catalog.name)
RETURNS pg_catalog.int8 LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $dwr$
#variable_conflict use_column
DECLARE
    t pg_catalog.regclass;
    id pg_catalog.int8;
BEGIN
    PERFORM dwr._check_caller(caller);
    -- serialise reload changes, so two sessions cannot put one table into two open reloads
    LOCK TABLE dwr.reloads IN SHARE ROW EXCLUSIVE MODE;
    FOREACH t IN ARRAY $1 LOOP
        PERFORM dwr._require_owner(t, caller);
        PERFORM dwr._check_not_in_reload(t);
    END LOOP;
    INSERT INTO dwr.reloads (targets, window_start, window_end, began_by)
    VALUES ($1, $2, $3, $4) RETURNING reload_id INTO id;
    RETURN id;
END
$dwr$;
COMMENT ON FUNCTION dwr._reload_insert(pg_catalog.regclass[], pg_catalog.timestamptz, pg_catalog.timestamptz, pg_catalog.name) IS
  'Implementation of dwr_begin_reload: writes the reload for caller (a role the session may act as, owning every table; none may be in another open reload).';

CREATE OR REPLACE FUNCTION dwr._end_reload(reload_id pg_catalog.int8, caller pg_catalog.name)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $dwr$
#variable_conflict use_column
DECLARE
    targets pg_catalog.regclass[];
    t pg_catalog.regclass;
BEGIN
    PERFORM dwr._check_caller(caller);
    targets := dwr._reload_to_end($1, caller);
    UPDATE dwr.reloads x SET ended_at = pg_catalog.clock_timestamp(), ended_by = caller
     WHERE x.reload_id OPERATOR(pg_catalog.=) $1;
    FOREACH t IN ARRAY targets LOOP
        PERFORM dwr._prune_tombstones(t::pg_catalog.oid);
    END LOOP;
END
$dwr$;
COMMENT ON FUNCTION dwr._end_reload(pg_catalog.int8, pg_catalog.name) IS
  'Implementation of dwr_end_reload for caller (who must own the reload''s tables); prunes the tombstones nothing needs any more.';

CREATE OR REPLACE FUNCTION dwr._run_to_undo(run_id pg_catalog.int8, OUT target pg_catalog.oid, OUT target_name pg_catalog.text)
LANGUAGE plpgsql SECURITY DEFINER STABLE SET search_path = pg_catalog, pg_temp AS $dwr$
#variable_conflict use_column
DECLARE
    r record;
    images pg_catalog.int8;
BEGIN
    IF $1 IS NULL THEN PERFORM dwr._raise_null('dwr_undo', 'run_id'); END IF;
    SELECT x.kind, x.target, x.target_name, x.dry_run, x.status,
           COALESCE(x.inserted, 0) OPERATOR(pg_catalog.+) COALESCE(x.updated, 0)
             OPERATOR(pg_catalog.+) COALESCE(x.deleted, 0) AS changed,
           (SELECT u.run_id FROM dwr.merge_runs u WHERE u.undo_of OPERATOR(pg_catalog.=) x.run_id) AS undone_by
      INTO r FROM dwr.merge_runs x WHERE x.run_id OPERATOR(pg_catalog.=) $1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'run % does not exist', $1 USING ERRCODE = '42704',
              HINT = 'See SELECT * FROM dwr.merge_runs ORDER BY run_id DESC;';
    END IF;
    IF r.kind OPERATOR(pg_catalog.<>) 'merge' THEN
        RAISE EXCEPTION 'run % is an undo; an undo cannot be undone', $1 USING ERRCODE = '0A000',
              HINT = 'Stage the rows again and merge them.';
    END IF;
    IF r.dry_run THEN
        RAISE EXCEPTION 'run % cannot be undone: it was a dry run and changed nothing', $1 USING ERRCODE = '55000', HINT = 'Nothing to do.';
    END IF;
    IF r.status NOT IN ('SUCCEEDED', 'SUCCEEDED_WITH_ERRORS') THEN
        RAISE EXCEPTION 'run % cannot be undone: its status is %', $1, r.status USING ERRCODE = '55000',
              HINT = 'Only a merge that committed can be undone.';
    END IF;
    IF r.undone_by IS NOT NULL THEN
        RAISE EXCEPTION 'run % cannot be undone: it was already undone by run %', $1, r.undone_by USING ERRCODE = '55000',
              HINT = 'See SELECT * FROM dwr.merge_runs WHERE undo_of IS NOT NULL;';
    END IF;
    IF r.changed OPERATOR(pg_catalog.=) 0 THEN
        RAISE EXCEPTION 'run % cannot be undone: it changed no row', $1 USING ERRCODE = '55000', HINT = 'Nothing to do.';
    END IF;
    SELECT pg_catalog.count(*) INTO images FROM dwr.row_changes c WHERE c.run_id OPERATOR(pg_catalog.=) $1;
    IF images OPERATOR(pg_catalog.=) 0 THEN
        RAISE EXCEPTION 'run % cannot be undone: dwr.row_changes has no images of its rows', $1 USING ERRCODE = '55000',
              HINT = 'The run ran with dwr.row_audit = off, or dwr_purge_audit removed its images.';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) r.target) THEN
        RAISE EXCEPTION 'table % of run % does not exist any more', r.target_name, $1 USING ERRCODE = '42P01';
    END IF;
    target := r.target;
    target_name := r.target_name;
END
$dwr$;
COMMENT ON FUNCTION dwr._run_to_undo(pg_catalog.int8) IS
  'The table of a run dwr_undo may take back, or the error that says why it cannot.';

CREATE OR REPLACE FUNCTION dwr._record_failed(target pg_catalog.regclass, source_name pg_catalog.text,
                                              dry_run pg_catalog.bool, started_at pg_catalog.timestamptz,
                                              run_by pg_catalog.name, error_sqlstate pg_catalog.text,
                                              error_message pg_catalog.text)
RETURNS pg_catalog.int8 LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $dwr$
#variable_conflict use_column
DECLARE
    id pg_catalog.int8;
BEGIN
    PERFORM dwr._check_caller($5);
    PERFORM dwr._registration($1);
    -- the run id the failed merge took, when its row was rolled back with it (as the compiled
    -- extension records a failed run); a new one when it failed before it began a run
    BEGIN
        id := pg_catalog.currval('dwr.merge_runs_run_id_seq'::pg_catalog.regclass);
    EXCEPTION WHEN object_not_in_prerequisite_state THEN
        id := NULL;
    END;
    IF id IS NULL OR EXISTS (SELECT FROM dwr.merge_runs r WHERE r.run_id OPERATOR(pg_catalog.=) id) THEN
        id := pg_catalog.nextval('dwr.merge_runs_run_id_seq'::pg_catalog.regclass);
    END IF;
    INSERT INTO dwr.merge_runs (run_id, kind, target, target_name, source_name, dry_run, status, run_by,
                                session_user_name, backend_pid, started_at, finished_at, duration,
                                error_sqlstate, error_message)
    OVERRIDING SYSTEM VALUE
    VALUES (id, 'merge', $1::pg_catalog.oid, dwr._display($1), $2, $3, 'FAILED', $5, SESSION_USER,
            pg_catalog.pg_backend_pid(), $4, pg_catalog.clock_timestamp(),
            pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) $4, $6, $7);
    RETURN id;
END
$dwr$;
COMMENT ON FUNCTION dwr._record_failed(pg_catalog.regclass, pg_catalog.text, pg_catalog.bool, pg_catalog.timestamptz, pg_catalog.name, pg_catalog.text, pg_catalog.text) IS
  'Records a merge of a registered table that failed, as FAILED in dwr.merge_runs (for dwr_merge_recorded).';

CREATE OR REPLACE PROCEDURE @extschema@.dwr_merge_recorded(target pg_catalog.regclass,
                                                           dry_run pg_catalog.bool DEFAULT false,
                                                           INOUT result dwr.merge_result DEFAULT NULL)
LANGUAGE plpgsql AS $dwr$
#variable_conflict use_column
DECLARE
    started pg_catalog.timestamptz := pg_catalog.clock_timestamp();
    st pg_catalog.text;
    msg pg_catalog.text;
    det pg_catalog.text;
    hnt pg_catalog.text;
    src pg_catalog.text;
BEGIN
    -- the merge runs in a subtransaction: when it fails, its work is rolled back, the failure is
    -- written and committed, then raised again (a function cannot commit; a procedure can)
    BEGIN
        result := @extschema@.dwr_merge(target, dry_run);
        RETURN;
    EXCEPTION WHEN OTHERS OR query_canceled THEN
        GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL,
                                hnt = PG_EXCEPTION_HINT;
    END;
    SELECT dwr._display(t.staging) INTO src FROM dwr.tables t WHERE t.target OPERATOR(pg_catalog.=) $1;
    IF src IS NOT NULL THEN
        PERFORM dwr._record_failed(target, src, dry_run, started, CURRENT_USER, st,
                                   msg OPERATOR(pg_catalog.||) COALESCE(' (' OPERATOR(pg_catalog.||) NULLIF(det, '') OPERATOR(pg_catalog.||) ')', ''));
        COMMIT;
    END IF;
    IF NULLIF(det, '') IS NOT NULL AND NULLIF(hnt, '') IS NOT NULL THEN
        RAISE EXCEPTION USING MESSAGE = msg, ERRCODE = st, DETAIL = det, HINT = hnt;
    ELSIF NULLIF(det, '') IS NOT NULL THEN
        RAISE EXCEPTION USING MESSAGE = msg, ERRCODE = st, DETAIL = det;
    ELSIF NULLIF(hnt, '') IS NOT NULL THEN
        RAISE EXCEPTION USING MESSAGE = msg, ERRCODE = st, HINT = hnt;
    END IF;
    RAISE EXCEPTION USING MESSAGE = msg, ERRCODE = st;
END
$dwr$;
COMMENT ON PROCEDURE @extschema@.dwr_merge_recorded(pg_catalog.regclass, pg_catalog.bool, dwr.merge_result) IS
  'pg_tle package: dwr_merge that leaves a FAILED run in dwr.merge_runs when it fails (the compiled extension''s background worker does this for every merge; a trusted extension has none). Call it outside a transaction block (as pg_cron does): CALL dwr_merge_recorded(''customers'').';

CREATE OR REPLACE FUNCTION dwr._batch_failed(target pg_catalog.regclass, started_at pg_catalog.timestamptz,
                                             error_sqlstate pg_catalog.text, error_message pg_catalog.text)
RETURNS void LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $dwr$
#variable_conflict use_column
DECLARE
    src pg_catalog.text;
BEGIN
    -- the batch's own run was rolled back with it: record it as dwr_merge_recorded does
    SELECT dwr._display(t.staging) INTO src FROM dwr.tables t WHERE t.target OPERATOR(pg_catalog.=) $1;
    IF src IS NOT NULL THEN
        PERFORM dwr._record_failed($1, src, false, $2, CURRENT_USER, $3, $4);
    END IF;
END
$dwr$;
COMMENT ON FUNCTION dwr._batch_failed(pg_catalog.regclass, pg_catalog.timestamptz, pg_catalog.text, pg_catalog.text) IS
  'Implementation of dwr_merge_batches: records a batch that failed as a FAILED run (pg_tle package: a trusted extension has no background worker to do it).';
