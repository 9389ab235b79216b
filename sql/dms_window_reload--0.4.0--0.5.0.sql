-- dms_window_reload 0.4.0 -> 0.5.0: the table-independent functions written once for both modes.
--
-- dwr_begin_reload, dwr_end_reload, dwr_drop_staging, dwr_purge_staging, dwr_purge_audit,
-- dwr_schedule, dwr_unschedule and the view dwr.staging_status were Rust in the compiled extension and a PL/pgSQL
-- twin of it in the pg_tle package. From 0.5.0 both modes run the PL/pgSQL below: one text, one set
-- of messages, DETAILs, HINTs and SQLSTATEs. What differs is behind the functions that write the
-- extension's own tables, which no caller may write: dwr._reload_insert, dwr._end_reload,
-- dwr._unregister, dwr._restart_tracking and dwr._purge_audit (and dwr._remove_delete_tracking,
-- which on Citus lets trigger DDL through). In the compiled extension they are C functions that
-- switch to the extension owner for the write alone (SECURITY_LOCAL_USERID_CHANGE, and on Citus
-- they prune the tombstones beside staging too); in the package they are SECURITY DEFINER
-- functions of the package owner (sql/tle/functions.sql). Each is told the role it acts for and
-- checks that role itself (one the session may act as, owning the tables), with the checks below.
--
-- Written once for every way of getting 0.5.0, like the 0.2.0 -> 0.3.0 script: this update script,
-- part of the compiled extension's install script (src/lib.rs), and part of the pg_tle package's
-- install and update scripts (engine/src/tle/mod.rs, without the compiled-only part).
\echo Use "ALTER EXTENSION dms_window_reload UPDATE TO '0.5.0'" to load this file. \quit

-- ---- checks ---------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION dwr._raise_null(fn pg_catalog.text, arg pg_catalog.text)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $dwr$
#variable_conflict use_column
BEGIN
    RAISE EXCEPTION '%: argument "%" must not be NULL', fn, arg
        USING ERRCODE = '22004', HINT = pg_catalog.format('Pass a value for %s.', arg);
END
$dwr$;
COMMENT ON FUNCTION dwr._raise_null(pg_catalog.text, pg_catalog.text) IS
  'Raises the error of a NULL argument (22004).';

CREATE OR REPLACE FUNCTION dwr._display(rel pg_catalog.oid)
RETURNS pg_catalog.text LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $dwr$ SELECT pg_catalog.quote_ident(n.nspname) OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(c.relname)
           FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
          WHERE c.oid OPERATOR(pg_catalog.=) rel $dwr$;
COMMENT ON FUNCTION dwr._display(pg_catalog.oid) IS
  'schema.name of a relation for messages, schema always written.';

CREATE OR REPLACE FUNCTION dwr._registration(target pg_catalog.regclass,
                                             OUT staging pg_catalog.regclass,
                                             OUT version_column pg_catalog.name)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $dwr$
#variable_conflict use_column
DECLARE
    name pg_catalog.text := COALESCE(dwr._display(target),
                                     'OID ' OPERATOR(pg_catalog.||) target::pg_catalog.oid::pg_catalog.text);
BEGIN
    SELECT t.staging, t.version_column INTO staging, version_column
      FROM dwr.tables t WHERE t.target OPERATOR(pg_catalog.=) $1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'table % has no registered staging table', name
            USING ERRCODE = '55000', DETAIL = pg_catalog.format('dwr.tables has no row for %s.', name),
                  HINT = pg_catalog.format('Create or adopt its staging table first: SELECT dwr_create_staging(''%s'');', name);
    END IF;
END
$dwr$;
COMMENT ON FUNCTION dwr._registration(pg_catalog.regclass) IS
  'The registered staging table and version column of target; 55000 when it has none.';

CREATE OR REPLACE FUNCTION dwr._check_caller(caller pg_catalog.name)
RETURNS void LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $dwr$
BEGIN
    -- a function that writes the extension's tables acts for caller only when the session may act
    -- as that role
    IF caller IS NULL OR NOT pg_catalog.pg_has_role(SESSION_USER, caller, 'MEMBER') THEN
        RAISE EXCEPTION 'permission denied to act as %', caller USING ERRCODE = '42501';
    END IF;
END
$dwr$;
COMMENT ON FUNCTION dwr._check_caller(pg_catalog.name) IS
  'Raises 42501 unless the session''s login role may act as caller (the role a function that writes the extension''s tables is told it works for).';

CREATE OR REPLACE FUNCTION dwr._require_owner(target pg_catalog.regclass, role pg_catalog.name)
RETURNS void LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $dwr$
#variable_conflict use_column
DECLARE
    owner pg_catalog.oid;
BEGIN
    SELECT relowner INTO owner FROM pg_catalog.pg_class WHERE oid OPERATOR(pg_catalog.=) target;
    IF NOT pg_catalog.pg_has_role(role, owner, 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of table %', dwr._display(target)
            USING ERRCODE = '42501',
                  DETAIL = pg_catalog.format('%s is owned by %s.', dwr._display(target), pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(owner))),
                  HINT = 'Register the table as its owner (or a member of the owning role).';
    END IF;
END
$dwr$;
COMMENT ON FUNCTION dwr._require_owner(pg_catalog.regclass, pg_catalog.name) IS
  'Raises 42501 unless role owns target (or is a member of its owner).';

CREATE FUNCTION dwr._check_not_in_reload(target pg_catalog.regclass)
RETURNS void LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $dwr$
#variable_conflict use_column
DECLARE
    other pg_catalog.int8;
BEGIN
    SELECT r.reload_id INTO other FROM dwr.reloads r
     WHERE r.ended_at IS NULL AND target OPERATOR(pg_catalog.=) ANY (r.targets);
    IF other IS NOT NULL THEN
        RAISE EXCEPTION 'table % is already in open reload %', dwr._display(target), other USING ERRCODE = '55000',
              HINT = pg_catalog.format('Finish that reload first: SELECT dwr_end_reload(%s);', other);
    END IF;
END
$dwr$;
COMMENT ON FUNCTION dwr._check_not_in_reload(pg_catalog.regclass) IS
  'Implementation of dwr_begin_reload: raises 55000 when target is in an open reload (checked again under the lock on dwr.reloads).';

CREATE FUNCTION dwr._reload_to_end(reload_id pg_catalog.int8, caller pg_catalog.name)
RETURNS pg_catalog.regclass[] LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $dwr$
#variable_conflict use_column
DECLARE
    r record;
    t pg_catalog.regclass;
BEGIN
    SELECT x.ended_at IS NOT NULL AS ended, x.targets INTO r FROM dwr.reloads x WHERE x.reload_id OPERATOR(pg_catalog.=) $1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'reload % does not exist', $1 USING ERRCODE = '42704', HINT = 'See SELECT * FROM dwr.reloads;';
    END IF;
    IF r.ended THEN
        RAISE EXCEPTION 'reload % is already ended', $1 USING ERRCODE = '55000';
    END IF;
    FOREACH t IN ARRAY r.targets LOOP
        IF EXISTS (SELECT FROM pg_catalog.pg_class WHERE oid OPERATOR(pg_catalog.=) t) THEN
            PERFORM dwr._require_owner(t, caller);
        END IF;
    END LOOP;
    RETURN r.targets;
END
$dwr$;
COMMENT ON FUNCTION dwr._reload_to_end(pg_catalog.int8, pg_catalog.name) IS
  'Implementation of dwr_end_reload: the tables of an open reload that caller may end (42704, 55000, 42501 otherwise).';

CREATE FUNCTION dwr._check_audit_owner(caller pg_catalog.name, owner pg_catalog.oid)
RETURNS void LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $dwr$
BEGIN
    -- a role the session may act as, that is (or is a member of) the extension's owner
    IF caller IS NULL OR NOT pg_catalog.pg_has_role(SESSION_USER, caller, 'MEMBER')
       OR NOT pg_catalog.pg_has_role(caller, owner, 'USAGE') THEN
        RAISE EXCEPTION 'only the owner of dms_window_reload may purge its audit' USING ERRCODE = '42501',
              HINT = 'Ask the extension''s owner (or a member of that role) to run dwr_purge_audit.';
    END IF;
END
$dwr$;
COMMENT ON FUNCTION dwr._check_audit_owner(pg_catalog.name, pg_catalog.oid) IS
  'Implementation of dwr_purge_audit: raises 42501 unless caller is a role the session may act as and a member of owner, the extension''s owner.';

CREATE FUNCTION dwr._check_may_purge(target pg_catalog.regclass, caller pg_catalog.name)
RETURNS pg_catalog.regclass LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $dwr$
#variable_conflict use_column
DECLARE
    s pg_catalog.regclass := (SELECT r.staging FROM dwr._registration(target) r);
BEGIN
    PERFORM dwr._check_caller(caller);
    -- only a caller that may empty staging (as dwr_purge_staging just did)
    IF NOT pg_catalog.has_table_privilege(caller, s, 'DELETE') THEN
        RAISE EXCEPTION 'permission denied for table %', dwr._display(s) USING ERRCODE = '42501';
    END IF;
    RETURN s;
END
$dwr$;
COMMENT ON FUNCTION dwr._check_may_purge(pg_catalog.regclass, pg_catalog.name) IS
  'Implementation of dwr_purge_staging: the staging table of target, which caller (a role the session may act as) may delete from (42501 otherwise).';

-- ---- reloads --------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION @extschema@.dwr_begin_reload(targets pg_catalog.regclass[],
                                                        window_start pg_catalog.timestamptz,
                                                        window_end pg_catalog.timestamptz)
RETURNS pg_catalog.int8 LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $dwr$
#variable_conflict use_column
DECLARE
    t pg_catalog.regclass;
    uniq pg_catalog.regclass[] := '{}';
    reg record;
    v record;
BEGIN
    IF targets IS NULL THEN PERFORM dwr._raise_null('dwr_begin_reload', 'targets'); END IF;
    IF window_start IS NULL THEN PERFORM dwr._raise_null('dwr_begin_reload', 'window_start'); END IF;
    IF window_end IS NULL THEN PERFORM dwr._raise_null('dwr_begin_reload', 'window_end'); END IF;
    IF pg_catalog.cardinality(targets) OPERATOR(pg_catalog.=) 0 THEN
        RAISE EXCEPTION 'dwr_begin_reload: targets is empty' USING ERRCODE = '22023',
              HINT = 'Name the tables to reload: dwr_begin_reload(''{production.customers}'', ...).';
    END IF;
    IF window_start OPERATOR(pg_catalog.>) window_end THEN
        RAISE EXCEPTION 'dwr_begin_reload: the window ends before it starts' USING ERRCODE = '22023',
              DETAIL = pg_catalog.format('window_start %s is after window_end %s.', window_start, window_end),
              HINT = 'Swap the two ends; both are included.';
    END IF;
    FOREACH t IN ARRAY targets LOOP
        IF t IS NULL THEN PERFORM dwr._raise_null('dwr_begin_reload', 'targets[i]'); END IF;
        IF NOT t OPERATOR(pg_catalog.=) ANY (uniq) THEN uniq := uniq OPERATOR(pg_catalog.||) t; END IF;
    END LOOP;
    FOREACH t IN ARRAY uniq LOOP
        SELECT * INTO reg FROM dwr._registration(t);
        PERFORM dwr._require_owner(t, CURRENT_USER);
        SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod) AS type_name, ty.typcategory INTO v
          FROM pg_catalog.pg_attribute a
          JOIN pg_catalog.pg_type ty ON ty.oid OPERATOR(pg_catalog.=) COALESCE(NULLIF(
               (SELECT b.typbasetype FROM pg_catalog.pg_type b WHERE b.oid OPERATOR(pg_catalog.=) a.atttypid), 0), a.atttypid)
         WHERE a.attrelid OPERATOR(pg_catalog.=) t AND a.attname OPERATOR(pg_catalog.=) reg.version_column;
        IF v.typcategory OPERATOR(pg_catalog.<>) 'D' THEN
            RAISE EXCEPTION 'version column % of % is of type %, which a time window cannot bound',
                  pg_catalog.quote_ident(v.attname), dwr._display(t), v.type_name USING ERRCODE = '42804',
                  HINT = 'A reload window needs a date, timestamp or timestamptz version column; merge without a reload otherwise.';
        END IF;
        PERFORM dwr._check_not_in_reload(t);
    END LOOP;
    RETURN dwr._reload_insert(uniq, window_start, window_end, CURRENT_USER);
END
$dwr$;
COMMENT ON FUNCTION @extschema@.dwr_begin_reload(pg_catalog.regclass[], pg_catalog.timestamptz, pg_catalog.timestamptz) IS
  'Opens a reload of these registered tables: while it is open, a merge takes only staged rows whose version lies in [window_start, window_end], and deletes in production from now on stop staged rows of the same key. Returns the reload id.';

CREATE OR REPLACE FUNCTION @extschema@.dwr_end_reload(reload_id pg_catalog.int8)
RETURNS void LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $dwr$
BEGIN
    IF $1 IS NULL THEN PERFORM dwr._raise_null('dwr_end_reload', 'reload_id'); END IF;
    PERFORM dwr._reload_to_end($1, CURRENT_USER);
    PERFORM dwr._end_reload($1, CURRENT_USER);
END
$dwr$;
COMMENT ON FUNCTION @extschema@.dwr_end_reload(pg_catalog.int8) IS
  'Closes a reload: its window no longer filters merges, and tombstones only it needed are pruned.';

-- ---- staging and audit ----------------------------------------------------------------------

CREATE OR REPLACE FUNCTION @extschema@.dwr_drop_staging(target pg_catalog.regclass)
RETURNS void LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $dwr$
#variable_conflict use_column
DECLARE
    reg record;
BEGIN
    IF target IS NULL THEN PERFORM dwr._raise_null('dwr_drop_staging', 'target'); END IF;
    SELECT * INTO reg FROM dwr._registration(target);
    IF EXISTS (SELECT FROM pg_catalog.pg_class WHERE oid OPERATOR(pg_catalog.=) target) THEN
        PERFORM dwr._require_owner(target, CURRENT_USER);
        IF EXISTS (SELECT FROM pg_catalog.pg_trigger WHERE tgrelid OPERATOR(pg_catalog.=) target
                      AND tgname OPERATOR(pg_catalog.=) 'dwr_record_delete' AND NOT tgisinternal) THEN
            -- without making CDC writers queue behind the lock request (dwr._lock_for_ddl)
            PERFORM dwr._lock_for_ddl(target, 'ACCESS EXCLUSIVE', 'remove delete tracking');
            PERFORM dwr._remove_delete_tracking(target);
        END IF;
    END IF;
    -- the registration first: on Citus it drops the tables made beside staging too
    PERFORM dwr._unregister(target, CURRENT_USER);
    IF EXISTS (SELECT FROM pg_catalog.pg_class WHERE oid OPERATOR(pg_catalog.=) reg.staging) THEN
        EXECUTE pg_catalog.format('DROP TABLE %s', reg.staging);
    END IF;
END
$dwr$;
COMMENT ON FUNCTION @extschema@.dwr_drop_staging(pg_catalog.regclass) IS
  'Drops the staging table of target, its delete tracking and its registration (on Citus also the tombstone and work tables); dwr.merge_runs keeps the history.';

CREATE OR REPLACE FUNCTION @extschema@.dwr_purge_staging(target pg_catalog.regclass,
                                                         status pg_catalog.text DEFAULT 'PROCESSED')
RETURNS pg_catalog.int8 LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $dwr$
#variable_conflict use_column
DECLARE
    reg record;
    st pg_catalog.text := pg_catalog.upper(status);
    n pg_catalog.int8;
BEGIN
    IF target IS NULL THEN PERFORM dwr._raise_null('dwr_purge_staging', 'target'); END IF;
    IF status IS NULL THEN PERFORM dwr._raise_null('dwr_purge_staging', 'status'); END IF;
    IF st OPERATOR(pg_catalog.<>) 'ALL' AND NOT st OPERATOR(pg_catalog.=) ANY ('{NEW,PROCESSED,SKIPPED,ERROR}') THEN
        RAISE EXCEPTION 'unknown staging status "%"', st USING ERRCODE = '22023',
              HINT = 'Use one of NEW, PROCESSED, SKIPPED, ERROR, or ALL.';
    END IF;
    SELECT * INTO reg FROM dwr._registration(target);
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) reg.staging) THEN
        RAISE EXCEPTION 'staging table with OID % does not exist', reg.staging::pg_catalog.oid
            USING ERRCODE = '42P01', HINT = 'The table was dropped or renamed away; check dwr.tables.';
    END IF;
    IF st OPERATOR(pg_catalog.=) 'ALL' THEN
        EXECUTE pg_catalog.format('DELETE FROM %s', reg.staging);
    ELSE
        EXECUTE pg_catalog.format('DELETE FROM %s WHERE _dwr_status OPERATOR(pg_catalog.=) $1', reg.staging) USING st;
    END IF;
    GET DIAGNOSTICS n = ROW_COUNT;
    -- deletes count against staged rows from the moment staging holds no NEW row any more
    PERFORM dwr._restart_tracking(target, CURRENT_USER);
    RETURN n;
END
$dwr$;
COMMENT ON FUNCTION @extschema@.dwr_purge_staging(pg_catalog.regclass, pg_catalog.text) IS
  'Deletes staged rows of target in that status (NEW, PROCESSED, SKIPPED, ERROR, or ALL; default PROCESSED). Returns how many rows were deleted.';

CREATE OR REPLACE FUNCTION dwr._staging_status()
RETURNS TABLE (target pg_catalog.regclass, staging pg_catalog.regclass, new_rows pg_catalog.int8,
               processed pg_catalog.int8, skipped pg_catalog.int8, error_rows pg_catalog.int8,
               total pg_catalog.int8)
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $dwr$
#variable_conflict use_column
DECLARE
    r record;
BEGIN
    FOR r IN SELECT t.target AS t, t.staging AS s,
                    pg_catalog.has_table_privilege(t.staging::pg_catalog.oid, 'SELECT') AS readable
               FROM dwr.tables t JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.staging::pg_catalog.oid
              ORDER BY t.target::pg_catalog.text LOOP
        target := r.t; staging := r.s;
        new_rows := NULL; processed := NULL; skipped := NULL; error_rows := NULL; total := NULL;
        IF r.readable THEN
            CONTINUE WHEN NOT EXISTS (SELECT FROM pg_catalog.pg_attribute a WHERE a.attrelid OPERATOR(pg_catalog.=) r.s
                                         AND a.attname OPERATOR(pg_catalog.=) '_dwr_status' AND NOT a.attisdropped);
            EXECUTE pg_catalog.format(
                'SELECT pg_catalog.count(*) FILTER (WHERE _dwr_status OPERATOR(pg_catalog.=) ''NEW''), '
                'pg_catalog.count(*) FILTER (WHERE _dwr_status OPERATOR(pg_catalog.=) ''PROCESSED''), '
                'pg_catalog.count(*) FILTER (WHERE _dwr_status OPERATOR(pg_catalog.=) ''SKIPPED''), '
                'pg_catalog.count(*) FILTER (WHERE _dwr_status OPERATOR(pg_catalog.=) ''ERROR''), '
                'pg_catalog.count(*) FROM %s', r.s)
               INTO new_rows, processed, skipped, error_rows, total;
        END IF;
        RETURN NEXT;
    END LOOP;
END
$dwr$;
COMMENT ON FUNCTION dwr._staging_status() IS
  'Implementation of the view dwr.staging_status: counts of staged rows by status for every registered table whose staging the caller may read (NULLs when not).';

CREATE OR REPLACE FUNCTION @extschema@.dwr_purge_audit(older_than pg_catalog.interval)
RETURNS pg_catalog.int8 LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $dwr$
BEGIN
    IF older_than IS NULL THEN PERFORM dwr._raise_null('dwr_purge_audit', 'older_than'); END IF;
    RETURN dwr._purge_audit(older_than, CURRENT_USER);
END
$dwr$;
COMMENT ON FUNCTION @extschema@.dwr_purge_audit(pg_catalog.interval) IS
  'Deletes the row images (dwr.row_changes) of runs that finished longer ago than older_than; dwr.merge_runs keeps every run. Extension owner only. Returns how many images were deleted.';

-- ---- pg_cron --------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION dwr._cron_schema(job pg_catalog.text, cron pg_catalog.text, command pg_catalog.text)
RETURNS pg_catalog.text LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $dwr$
#variable_conflict use_column
DECLARE
    s pg_catalog.text;
    cron_db pg_catalog.text;
    here pg_catalog.text := pg_catalog.current_database();
BEGIN
    -- pg_cron keeps its functions in a schema of its own ("cron"): where its schedule lives
    SELECT n.nspname INTO s FROM pg_catalog.pg_extension e
      JOIN pg_catalog.pg_depend d ON d.refobjid OPERATOR(pg_catalog.=) e.oid
       AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
       AND d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
      JOIN pg_catalog.pg_proc p ON p.oid OPERATOR(pg_catalog.=) d.objid
      JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace
     WHERE e.extname OPERATOR(pg_catalog.=) 'pg_cron' AND p.proname OPERATOR(pg_catalog.=) 'schedule'
     LIMIT 1;
    IF s IS NOT NULL THEN
        RETURN s;
    END IF;
    BEGIN
        -- a superuser-only setting: a role without pg_read_all_settings cannot read it
        cron_db := NULLIF(pg_catalog.current_setting('cron.database_name', true), '');
    EXCEPTION WHEN insufficient_privilege THEN
        cron_db := NULL;
    END;
    IF NOT 'pg_cron' OPERATOR(pg_catalog.=) ANY (SELECT pg_catalog.btrim(l, ' "')
                                                   FROM pg_catalog.unnest(pg_catalog.string_to_array(
                                                        pg_catalog.current_setting('shared_preload_libraries'), ',')) l) THEN
        RAISE EXCEPTION 'pg_cron is not installed' USING ERRCODE = '0A000',
              DETAIL = 'dwr_schedule makes pg_cron jobs; pg_cron is not in shared_preload_libraries.',
              HINT = 'Install pg_cron (Debian: the package postgresql-<major version>-cron) and add it to shared_preload_libraries (Amazon RDS: the DB parameter group), restart PostgreSQL, then CREATE EXTENSION pg_cron; or run dwr_merge from any other scheduler.';
    ELSIF cron_db IS NOT NULL AND cron_db OPERATOR(pg_catalog.<>) here THEN
        RAISE EXCEPTION 'pg_cron runs in database %, not in %', cron_db, here USING ERRCODE = '0A000',
              HINT = pg_catalog.format('Schedule the merge from %s: SELECT cron.schedule_in_database(%L, %L, %L, %L);',
                                       cron_db, job, cron, command, here);
    END IF;
    RAISE EXCEPTION 'the pg_cron extension is not created in this database' USING ERRCODE = '0A000',
          HINT = 'Run CREATE EXTENSION pg_cron; in the database named by cron.database_name.';
END
$dwr$;
COMMENT ON FUNCTION dwr._cron_schema(pg_catalog.text, pg_catalog.text, pg_catalog.text) IS
  'Implementation of dwr_schedule: the schema of pg_cron in this database, or the error that says how to get there.';

CREATE OR REPLACE FUNCTION dwr._cron_job(target pg_catalog.regclass, OUT job pg_catalog.text, OUT command pg_catalog.text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $dwr$
#variable_conflict use_column
DECLARE
    ext record;
    qualified pg_catalog.text;
BEGIN
    -- this extension: the compiled one or the pg_tle package (one database holds one of them)
    SELECT e.extname, n.nspname INTO ext FROM pg_catalog.pg_extension e
      JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace
     WHERE e.extname OPERATOR(pg_catalog.=) ANY ('{dms_window_reload,dms_window_reload_tle}');
    SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) INTO qualified FROM pg_catalog.pg_class c
      JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
     WHERE c.oid OPERATOR(pg_catalog.=) target;
    IF qualified IS NULL THEN
        RAISE EXCEPTION 'relation with OID % does not exist', target::pg_catalog.oid USING ERRCODE = '42P01';
    END IF;
    job := 'dwr_merge ' OPERATOR(pg_catalog.||) dwr._display(target);
    -- a scheduled merge that fails leaves a FAILED run: the compiled extension's background worker
    -- writes it for any merge; the package, which has none, runs the procedure that writes it
    command := CASE WHEN ext.extname OPERATOR(pg_catalog.=) 'dms_window_reload_tle'
                    THEN pg_catalog.format('CALL %I.dwr_merge_recorded(%L::pg_catalog.regclass)', ext.nspname, qualified)
                    ELSE pg_catalog.format('SELECT * FROM %I.dwr_merge(%L::pg_catalog.regclass)', ext.nspname, qualified) END;
END
$dwr$;
COMMENT ON FUNCTION dwr._cron_job(pg_catalog.regclass) IS
  'Implementation of dwr_schedule: the pg_cron job name and command of target''s scheduled merge.';

CREATE OR REPLACE FUNCTION @extschema@.dwr_schedule(target pg_catalog.regclass, cron pg_catalog.text)
RETURNS pg_catalog.int8 LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $dwr$
#variable_conflict use_column
DECLARE
    j record;
    id pg_catalog.int8;
BEGIN
    IF target IS NULL THEN PERFORM dwr._raise_null('dwr_schedule', 'target'); END IF;
    IF cron IS NULL THEN PERFORM dwr._raise_null('dwr_schedule', 'cron'); END IF;
    PERFORM dwr._registration(target);
    SELECT * INTO j FROM dwr._cron_job(target);
    EXECUTE pg_catalog.format('SELECT %I.schedule($1, $2, $3)', dwr._cron_schema(j.job, cron, j.command))
       INTO id USING j.job, cron, j.command;
    RETURN id;
END
$dwr$;
COMMENT ON FUNCTION @extschema@.dwr_schedule(pg_catalog.regclass, pg_catalog.text) IS
  'Schedules dwr_merge(target) as a pg_cron job named ''dwr_merge <table>'' (in the pg_tle package the job runs CALL dwr_merge_recorded, so that a failed scheduled merge leaves a FAILED run); returns the job id. Scheduling again replaces the schedule.';

CREATE OR REPLACE FUNCTION @extschema@.dwr_unschedule(target pg_catalog.regclass)
RETURNS void LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $dwr$
#variable_conflict use_column
DECLARE
    j record;
    s pg_catalog.text;
    removed pg_catalog.bool;
BEGIN
    IF target IS NULL THEN PERFORM dwr._raise_null('dwr_unschedule', 'target'); END IF;
    SELECT * INTO j FROM dwr._cron_job(target);
    s := dwr._cron_schema(j.job, '* * * * *', j.command);
    EXECUTE pg_catalog.format('SELECT %1$I.unschedule(x.jobid) FROM %1$I.job x WHERE x.jobname OPERATOR(pg_catalog.=) $1', s)
       INTO removed USING j.job;
    IF removed IS NULL THEN
        RAISE EXCEPTION 'no pg_cron job named "%"', j.job USING ERRCODE = '42704', HINT = 'See SELECT * FROM cron.job;';
    END IF;
END
$dwr$;
COMMENT ON FUNCTION @extschema@.dwr_unschedule(pg_catalog.regclass) IS
  'Removes the pg_cron job dwr_schedule made for target.';

-- @compiled-only-begin
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
-- @compiled-only-end
