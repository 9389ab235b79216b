-- dms_window_reload: the functions both modes have, as they are in this version.
--
-- This is the source you edit: the compiled extension's install script includes it after
-- schema.sql (src/lib.rs), and the pg_tle package's install script after schema.sql too
-- (engine/src/tle/mod.rs). Everything here is PL/pgSQL or SQL and runs the same in both modes: one
-- text, one set of messages, DETAILs, HINTs and SQLSTATEs. What differs by mode is behind the
-- functions that write the extension's own tables, which no caller may write (dwr._reload_insert,
-- dwr._end_reload, dwr._unregister, dwr._restart_tracking, dwr._purge_audit, and
-- dwr._remove_delete_tracking, which on Citus lets trigger DDL through): C functions of the
-- compiled extension that switch to the extension owner for the write alone (sql/functions.sql),
-- SECURITY DEFINER functions of the package owner in the package (sql/tle/functions.sql). Each is
-- told the role it acts for and checks that role itself.
--
-- A change here goes into the update script of the version too (sql/dms_window_reload--A--B.sql,
-- which ALTER EXTENSION UPDATE and a package's update from an older base run): the test command
-- checks that every earlier release updated holds exactly what a fresh install holds.
--
-- Every name is schema-qualified and every operator is pg_catalog's, so no caller's search_path
-- changes what these functions do.

-- The delete-tracking trigger: AFTER DELETE FOR EACH ROW, ENABLE ALWAYS (so it fires for appliers
-- that run with session_replication_role = replica, as DMS and logical replication do). Its
-- arguments are the primary key's column names. It runs as the extension owner, so the applier
-- needs no right on dwr; it can only append a tombstone for the table it fired on.
CREATE FUNCTION dwr._record_delete() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    old_row pg_catalog.jsonb := pg_catalog.to_jsonb(OLD);
BEGIN
    INSERT INTO dwr.tombstones (target, key)
    SELECT COALESCE(pg_catalog.pg_partition_root(TG_RELID), TG_RELID),
           pg_catalog.jsonb_agg(old_row OPERATOR(pg_catalog.->) k.name ORDER BY k.ord)
      FROM pg_catalog.unnest(TG_ARGV) WITH ORDINALITY AS k(name, ord);
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION dwr._record_delete() IS
  'Trigger function of the delete tracking that dwr_create_staging installs on a production table: records the deleted key in dwr.tombstones.';

CREATE OR REPLACE FUNCTION dwr._setting_ms(name pg_catalog.text, fallback pg_catalog.int4)
RETURNS pg_catalog.int4 LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $dwr$
#variable_conflict use_column
DECLARE
    v pg_catalog.text := NULLIF(pg_catalog.btrim(pg_catalog.current_setting(name, true)), '');
BEGIN
    -- a setting the compiled extension defines reads as a value with a unit ('50ms', '1min'); the
    -- package's placeholder settings hold whatever text they were set to
    IF v IS NULL THEN
        RETURN fallback;
    ELSIF v OPERATOR(pg_catalog.~) '^[0-9]+$' THEN
        RETURN v::pg_catalog.int4;
    END IF;
    RETURN (pg_catalog.date_part('epoch', v::pg_catalog.interval) OPERATOR(pg_catalog.*) 1000)::pg_catalog.int4;
END
$dwr$;
COMMENT ON FUNCTION dwr._setting_ms(pg_catalog.text, pg_catalog.int4) IS
  'A setting in milliseconds, or fallback when it is not set.';

-- The one way the extension takes a table lock on production (installing or removing the delete
-- trigger): LOCK TABLE with lock_timeout = dwr.ddl_lock_timeout, retried with backoff. A lock request
-- that waits makes every later request on the table wait behind it, CDC's writes included; bounded
-- attempts keep that queue at most dwr.ddl_lock_timeout long, and between attempts CDC runs freely.
-- After dwr.ddl_lock_wait in all it gives up with 55P03, naming the sessions that hold the table.
CREATE OR REPLACE FUNCTION dwr._lock_for_ddl(target pg_catalog.regclass, mode pg_catalog.text,
                                             purpose pg_catalog.text)
RETURNS void LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $dwr$
#variable_conflict use_column
DECLARE
    step_ms pg_catalog.int4 := GREATEST(dwr._setting_ms('dwr.ddl_lock_timeout', 50), 1);
    budget_ms pg_catalog.int4 := GREATEST(dwr._setting_ms('dwr.ddl_lock_wait', 60000), 0);
    saved pg_catalog.text := pg_catalog.current_setting('lock_timeout');
    started pg_catalog.timestamptz := pg_catalog.clock_timestamp();
    attempts pg_catalog.int4 := 0;
    waited_ms pg_catalog.float8;
    pause_ms pg_catalog.float8;
    holders pg_catalog.text;
    conflicting pg_catalog.text[];
BEGIN
    -- the granted modes that conflict with the one requested (PostgreSQL's lock conflict table)
    conflicting := CASE mode
        WHEN 'SHARE ROW EXCLUSIVE' THEN '{RowExclusiveLock,ShareUpdateExclusiveLock,ShareLock,ShareRowExclusiveLock,ExclusiveLock,AccessExclusiveLock}'
        WHEN 'ACCESS EXCLUSIVE' THEN '{AccessShareLock,RowShareLock,RowExclusiveLock,ShareUpdateExclusiveLock,ShareLock,ShareRowExclusiveLock,ExclusiveLock,AccessExclusiveLock}'
    END::pg_catalog.text[];
    IF conflicting IS NULL THEN
        RAISE EXCEPTION 'dwr._lock_for_ddl: unsupported lock mode %', mode USING ERRCODE = '22023';
    END IF;
    LOOP
        attempts := attempts OPERATOR(pg_catalog.+) 1;
        BEGIN
            PERFORM pg_catalog.set_config('lock_timeout', step_ms::pg_catalog.text OPERATOR(pg_catalog.||) 'ms', true);
            EXECUTE pg_catalog.format('LOCK TABLE %s IN %s MODE', target, mode);
            PERFORM pg_catalog.set_config('lock_timeout', saved, true);
            RETURN;
        EXCEPTION WHEN lock_not_available THEN
            NULL; -- the subtransaction's rollback put lock_timeout back
        END;
        waited_ms := pg_catalog.date_part('epoch', pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) started)
                     OPERATOR(pg_catalog.*) 1000;
        SELECT pg_catalog.string_agg(
                   CASE WHEN l.pid IS NULL
                        THEN pg_catalog.format('prepared transaction %L (%s)',
                                               (SELECT p.gid FROM pg_catalog.pg_locks x
                                                  JOIN pg_catalog.pg_prepared_xacts p
                                                    ON p.transaction OPERATOR(pg_catalog.=) x.transactionid
                                                 WHERE x.locktype OPERATOR(pg_catalog.=) 'transactionid'
                                                   AND x.virtualtransaction OPERATOR(pg_catalog.=) l.virtualtransaction
                                                 LIMIT 1), l.mode)
                        ELSE pg_catalog.format('process %s (%s, %s, transaction started %s: %s)', l.pid, l.mode,
                                               COALESCE(a.state, 'unknown state'), a.xact_start,
                                               pg_catalog.left(COALESCE(a.query, ''), 120))
                   END, '; ' ORDER BY l.pid)
          INTO holders
          FROM pg_catalog.pg_locks l
          LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid OPERATOR(pg_catalog.=) l.pid
         WHERE l.locktype OPERATOR(pg_catalog.=) 'relation' AND l.granted
           AND l.database OPERATOR(pg_catalog.=) (SELECT d.oid FROM pg_catalog.pg_database d
                                                   WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database())
           AND l.relation OPERATOR(pg_catalog.=) target
           AND l.pid IS DISTINCT FROM pg_catalog.pg_backend_pid()
           AND l.mode OPERATOR(pg_catalog.=) ANY (conflicting);
        IF waited_ms OPERATOR(pg_catalog.>=) budget_ms THEN
            RAISE EXCEPTION 'could not lock table % to %: other transactions kept holding it', target, purpose
                USING ERRCODE = '55P03',
                      DETAIL = pg_catalog.format('Waited %s ms (dwr.ddl_lock_wait) in attempts of at most %s ms each (dwr.ddl_lock_timeout). Holding it: %s.',
                                                 budget_ms, step_ms, COALESCE(holders, 'nobody any more')),
                      HINT = 'Nothing was changed. Call it again when those transactions have ended (or end them), or raise dwr.ddl_lock_wait; CDC writes never waited behind this request longer than dwr.ddl_lock_timeout.';
        END IF;
        IF attempts OPERATOR(pg_catalog.=) 1 THEN
            RAISE NOTICE 'waiting for a lock on table % to %: other transactions hold it', target, purpose
                USING DETAIL = pg_catalog.format('Holding it: %s.', COALESCE(holders, 'nobody any more')),
                      HINT = pg_catalog.format('Retrying for up to %s ms (dwr.ddl_lock_wait); each attempt waits at most %s ms (dwr.ddl_lock_timeout), so CDC writes are not held up longer than that.',
                                               budget_ms, step_ms);
        END IF;
        -- exponential backoff with jitter, at most a second, never past the budget
        pause_ms := LEAST(step_ms::pg_catalog.float8 OPERATOR(pg_catalog.*) (2::pg_catalog.float8 OPERATOR(pg_catalog.^) LEAST(attempts, 10)), 1000)
                    OPERATOR(pg_catalog.*) (0.5 OPERATOR(pg_catalog.+) pg_catalog.random() OPERATOR(pg_catalog./) 2);
        pause_ms := GREATEST(LEAST(pause_ms, budget_ms OPERATOR(pg_catalog.-) waited_ms), 0);
        PERFORM pg_catalog.pg_sleep(pause_ms OPERATOR(pg_catalog./) 1000);
    END LOOP;
END
$dwr$;
COMMENT ON FUNCTION dwr._lock_for_ddl(pg_catalog.regclass, pg_catalog.text, pg_catalog.text) IS
  'Takes a table lock on a production table for the extension''s own DDL without making CDC queue: attempts of dwr.ddl_lock_timeout with backoff, 55P03 after dwr.ddl_lock_wait.';

-- Written once for both modes: the compiled extension and the pg_tle package run this same function.
CREATE OR REPLACE FUNCTION @extschema@.dwr_retry_errors(target pg_catalog.regclass)
RETURNS pg_catalog.int8 LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $dwr$
#variable_conflict use_column
DECLARE
    staging pg_catalog.regclass;
    n pg_catalog.int8;
BEGIN
    IF target IS NULL THEN
        RAISE EXCEPTION 'dwr_retry_errors: argument "target" must not be NULL'
            USING ERRCODE = '22004', HINT = 'Pass a value for target.';
    END IF;
    SELECT t.staging INTO staging FROM dwr.tables t WHERE t.target OPERATOR(pg_catalog.=) $1;
    IF staging IS NULL THEN
        RAISE EXCEPTION 'table % has no registered staging table', target
            USING ERRCODE = '55000', DETAIL = pg_catalog.format('dwr.tables has no row for %s.', target),
                  HINT = pg_catalog.format('Create or adopt its staging table first: SELECT dwr_create_staging(''%s'');', target);
    END IF;
    -- with the caller's privileges (UPDATE on staging), like every change the extension makes
    EXECUTE pg_catalog.format('UPDATE %s SET %I = ''NEW'', %I = NULL, %I = NULL WHERE %I OPERATOR(pg_catalog.=) ''ERROR''',
                              staging, '_dwr_status', '_dwr_error', '_dwr_run_id', '_dwr_status');
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$dwr$;
COMMENT ON FUNCTION @extschema@.dwr_retry_errors(pg_catalog.regclass) IS
  'Puts the ERROR rows of target''s staging table back to NEW (error text and run cleared), after the operator fixed their cause, so that the next merge takes them; returns how many.';

-- dwr_diff and dwr_diff_summary, the same in both modes: they run the comparison that
-- dwr._diff_query returns (the compiled extension builds it from the catalog at each call; the
-- pg_tle package returns the one dwr tle install generated for the table), so the rows go to the
-- server's tuplestore and spill to disk past work_mem. JIT off while they run: a comparison of
-- 100,000 staged rows passes jit_above_cost, and it is planned once and runs once, so LLVM's
-- compilation (hundreds of milliseconds) is never paid back; the SET clause puts the caller's
-- setting back on return.
CREATE OR REPLACE FUNCTION @extschema@.dwr_diff(target pg_catalog.regclass, source pg_catalog.regclass DEFAULT NULL)
RETURNS TABLE (key pg_catalog.jsonb, difference pg_catalog.text, production pg_catalog.jsonb, staged pg_catalog.jsonb)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp SET jit = off
AS $dwr$
DECLARE
    ws pg_catalog.timestamptz;
    we pg_catalog.timestamptz;
BEGIN
    SELECT r.window_start, r.window_end INTO ws, we FROM dwr.reloads r
     WHERE r.ended_at IS NULL AND dwr_diff.target OPERATOR(pg_catalog.=) ANY (r.targets);
    RETURN QUERY EXECUTE dwr._diff_query(dwr_diff.target, dwr_diff.source, false) USING ws, we;
END
$dwr$;
COMMENT ON FUNCTION @extschema@.dwr_diff(pg_catalog.regclass, pg_catalog.regclass) IS
  'Rows whose content differs between staging (or source) and production, changing nothing: missing_in_production, missing_in_staging (production rows in the open reload''s window that staging lacks), older_in_production, newer_in_production, same_version_other_content; with the key and both images.';

CREATE OR REPLACE FUNCTION @extschema@.dwr_diff_summary(target pg_catalog.regclass, source pg_catalog.regclass DEFAULT NULL)
RETURNS TABLE (difference pg_catalog.text, count pg_catalog.int8)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp SET jit = off
AS $dwr$
DECLARE
    ws pg_catalog.timestamptz;
    we pg_catalog.timestamptz;
BEGIN
    SELECT r.window_start, r.window_end INTO ws, we FROM dwr.reloads r
     WHERE r.ended_at IS NULL AND dwr_diff_summary.target OPERATOR(pg_catalog.=) ANY (r.targets);
    RETURN QUERY EXECUTE dwr._diff_query(dwr_diff_summary.target, dwr_diff_summary.source, true) USING ws, we;
END
$dwr$;
COMMENT ON FUNCTION @extschema@.dwr_diff_summary(pg_catalog.regclass, pg_catalog.regclass) IS
  'dwr_diff counted by kind of difference, in one pass (a hash full join of staging and production).';

CREATE FUNCTION dwr._record_lob_limit(reload_id pg_catalog.int8, lob_max_kb pg_catalog.int4,
                                      caller pg_catalog.name)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $dwr$
#variable_conflict use_column
DECLARE
    t pg_catalog.regclass;
BEGIN
    -- for caller only when the session may act as that role, and only for a reload of tables it owns
    IF caller IS NULL OR NOT pg_catalog.pg_has_role(SESSION_USER, caller, 'MEMBER') THEN
        RAISE EXCEPTION 'permission denied to act as %', caller USING ERRCODE = '42501';
    END IF;
    FOR t IN SELECT pg_catalog.unnest(r.targets) FROM dwr.reloads r WHERE r.reload_id OPERATOR(pg_catalog.=) $1 LOOP
        IF NOT pg_catalog.pg_has_role(caller, (SELECT c.relowner FROM pg_catalog.pg_class c
                                                 WHERE c.oid OPERATOR(pg_catalog.=) t), 'USAGE') THEN
            RAISE EXCEPTION 'must be owner of table %', t USING ERRCODE = '42501',
                  HINT = 'Write the DMS task settings of a reload as the owner of its tables.';
        END IF;
    END LOOP;
    UPDATE dwr.reloads r SET lob_max_kb = $2 WHERE r.reload_id OPERATOR(pg_catalog.=) $1;
END
$dwr$;
COMMENT ON FUNCTION dwr._record_lob_limit(pg_catalog.int8, pg_catalog.int4, pg_catalog.name) IS
  'Records on the reload the LobMaxSize its DMS task settings give (NULL: full LOB mode), for the merge''s guard against values the loader may have truncated.';

-- The phases of a merge (classifying, inserting, updating, writing statuses, writing row images):
-- a NOTICE per phase once the merge has run dwr.progress_notice_after (default 5 s; 0: every
-- merge; -1: never), so a long merge says where it is and a short one stays quiet. The compiled
-- extension also shows the phase in pg_stat_activity.query.
CREATE FUNCTION dwr._merge_progress(target pg_catalog.regclass, phase pg_catalog.text,
                                    staged pg_catalog.int8, started pg_catalog.timestamptz)
RETURNS void LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $dwr$
#variable_conflict use_column
DECLARE
    v pg_catalog.text := pg_catalog.btrim(pg_catalog.current_setting('dwr.progress_notice_after', true));
BEGIN
    IF v OPERATOR(pg_catalog.~~) '-%' THEN
        RETURN;
    END IF;
    IF (pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) started) OPERATOR(pg_catalog.>=)
       (dwr._setting_ms('dwr.progress_notice_after', 5000) OPERATOR(pg_catalog.*) pg_catalog.interval '1 millisecond') THEN
        RAISE NOTICE 'dwr_merge %: %', target,
            phase OPERATOR(pg_catalog.||) COALESCE(', ' OPERATOR(pg_catalog.||) staged OPERATOR(pg_catalog.||) ' staged rows', '');
    END IF;
END
$dwr$;
COMMENT ON FUNCTION dwr._merge_progress(pg_catalog.regclass, pg_catalog.text, pg_catalog.int8, pg_catalog.timestamptz) IS
  'The progress of a merge: a NOTICE naming its phase (and its staged rows) once it has run dwr.progress_notice_after.';

-- Where a merge begins writing production (after it has read and classified): the rows it writes
-- stay locked from then to its commit, so dwr_merge_batches sizes the next batch by that time, the
-- longest a CDC write to one of them waits, and an operator reads it in dwr.merge_runs. Only the
-- session's own running run is stamped.
CREATE FUNCTION dwr._writes_begin(run_id pg_catalog.int8)
RETURNS void LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $dwr$
UPDATE dwr.merge_runs m SET writes_began = pg_catalog.clock_timestamp()
 WHERE m.run_id OPERATOR(pg_catalog.=) $1 AND m.status OPERATOR(pg_catalog.=) 'RUNNING'
   AND m.backend_pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid()
$dwr$;
COMMENT ON FUNCTION dwr._writes_begin(pg_catalog.int8) IS
  'Stamps dwr.merge_runs.writes_began of a running run of this session: the merge begins writing production.';

-- What dwr_create_staging checks before it changes anything, written once for both modes (the same
-- messages, DETAIL, HINT and SQLSTATE): the names given, then the target is a permanent table with a
-- primary key and an existing version column of a type with an ordering.
CREATE FUNCTION dwr._check_target(target pg_catalog.regclass, staging_schema pg_catalog.name,
                                  version_column pg_catalog.name)
RETURNS void LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $dwr$
#variable_conflict use_column
DECLARE
    r record;
    t pg_catalog.text;
    v record;
BEGIN
    IF target IS NULL THEN
        RAISE EXCEPTION 'dwr_create_staging: argument "target" must not be NULL'
            USING ERRCODE = '22004', HINT = 'Pass a value for target.';
    END IF;
    IF staging_schema IS NULL THEN
        RAISE EXCEPTION 'dwr_create_staging: argument "staging_schema" must not be NULL'
            USING ERRCODE = '22004', HINT = 'Pass a value for staging_schema.';
    ELSIF staging_schema OPERATOR(pg_catalog.=) '' THEN
        RAISE EXCEPTION 'dwr_create_staging: argument "staging_schema" must not be empty'
            USING ERRCODE = '22023', HINT = 'Pass a name for staging_schema.';
    END IF;
    IF version_column IS NULL THEN
        RAISE EXCEPTION 'dwr_create_staging: argument "version_column" must not be NULL'
            USING ERRCODE = '22004', HINT = 'Pass a value for version_column.';
    ELSIF version_column OPERATOR(pg_catalog.=) '' THEN
        RAISE EXCEPTION 'dwr_create_staging: argument "version_column" must not be empty'
            USING ERRCODE = '22023', HINT = 'Pass a name for version_column.';
    END IF;
    SELECT c.relkind, c.relpersistence,
           pg_catalog.format('%s.%I', CASE WHEN c.relpersistence OPERATOR(pg_catalog.=) 't' THEN 'pg_temp'
                                           ELSE pg_catalog.quote_ident(n.nspname) END, c.relname) AS shown INTO r
      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
     WHERE c.oid OPERATOR(pg_catalog.=) target;
    t := r.shown;
    IF NOT r.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}'::pg_catalog."char"[]) THEN
        RAISE EXCEPTION '% is not a table', t USING ERRCODE = '42809',
            DETAIL = pg_catalog.format('%s is %s, not a table', t,
                COALESCE((SELECT k.shown FROM (VALUES ('v', 'a view'), ('m', 'a materialized view'),
                                  ('f', 'a foreign table'), ('S', 'a sequence'), ('i', 'an index'), ('I', 'an index'),
                                  ('c', 'a composite type'), ('t', 'a TOAST table')) AS k(kind, shown)
                           WHERE k.kind::pg_catalog."char" OPERATOR(pg_catalog.=) r.relkind), 'a relation')),
            HINT = 'dms_window_reload merges into ordinary and partitioned tables; name the table the view or foreign table reads from.';
    END IF;
    IF r.relpersistence OPERATOR(pg_catalog.=) 't' THEN
        RAISE EXCEPTION '% is a temporary table', t USING ERRCODE = '0A000',
            DETAIL = pg_catalog.format('%s is a temporary table; its registration, staging table and delete tracking would outlive it', t),
            HINT = 'Reload into a permanent table.';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_index i WHERE i.indrelid OPERATOR(pg_catalog.=) target AND i.indisprimary) THEN
        RAISE EXCEPTION 'table % has no primary key', t USING ERRCODE = '55000',
            DETAIL = pg_catalog.format('%s has no primary key', t),
            HINT = pg_catalog.format('Rows are matched on the primary key: add one with ALTER TABLE %s ADD PRIMARY KEY (...).', t);
    END IF;
    SELECT pg_catalog.format_type(a.atttypid, a.atttypmod) AS type_name, bt.oid AS base, bt.typtype, bt.typcategory
      INTO v
      FROM pg_catalog.pg_attribute a
      JOIN pg_catalog.pg_type ty ON ty.oid OPERATOR(pg_catalog.=) a.atttypid
      JOIN pg_catalog.pg_type bt ON bt.oid OPERATOR(pg_catalog.=) CASE WHEN ty.typtype OPERATOR(pg_catalog.=) 'd'
                                                                      THEN ty.typbasetype ELSE ty.oid END
     WHERE a.attrelid OPERATOR(pg_catalog.=) target AND a.attname OPERATOR(pg_catalog.=) version_column
       AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'version column % does not exist in %', pg_catalog.quote_ident(version_column), t
            USING ERRCODE = '42703',
                  DETAIL = pg_catalog.format('%s has no column %s', t, pg_catalog.quote_ident(version_column)),
                  HINT = 'Name the version column when registering: dwr_create_staging(target, version_column => ''...'').';
    END IF;
    -- a default btree operator class for the (domain's base) type: what engine/sql/relation.sql
    -- reads as the column's ordering
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_opclass oc
                     JOIN pg_catalog.pg_am am ON am.oid OPERATOR(pg_catalog.=) oc.opcmethod
                    WHERE am.amname OPERATOR(pg_catalog.=) 'btree' AND oc.opcdefault
                      AND (oc.opcintype OPERATOR(pg_catalog.=) v.base
                           OR (v.typtype OPERATOR(pg_catalog.=) 'e'
                               AND oc.opcintype OPERATOR(pg_catalog.=) 'pg_catalog.anyenum'::pg_catalog.regtype)
                           OR (v.typcategory OPERATOR(pg_catalog.=) 'A'
                               AND oc.opcintype OPERATOR(pg_catalog.=) 'pg_catalog.anyarray'::pg_catalog.regtype)
                           OR (v.base OPERATOR(pg_catalog.=) 'pg_catalog.varchar'::pg_catalog.regtype
                               AND oc.opcintype OPERATOR(pg_catalog.=) 'pg_catalog.text'::pg_catalog.regtype))) THEN
        RAISE EXCEPTION 'version column % of % cannot be ordered', pg_catalog.quote_ident(version_column), t
            USING ERRCODE = '42804',
                  DETAIL = pg_catalog.format('type %s has no ordering, so no version can be newer than another', v.type_name),
                  HINT = 'Use a column of an ordered type (timestamp, bigint, numeric) as the version column.';
    END IF;
END
$dwr$;
COMMENT ON FUNCTION dwr._check_target(pg_catalog.regclass, pg_catalog.name, pg_catalog.name) IS
  'What dwr_create_staging checks before it changes anything (both modes): the names given; target a permanent table with a primary key and an orderable version column.';

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

-- A procedure, so that it can commit after every batch; a procedure that commits cannot carry a
-- SET clause, so every name in it is schema-qualified instead. With max_stall, the planned batches
-- are small steps (1000 keys, or batch_size when smaller) and each batch takes as many of them as
-- fit the budget, up to batch_size keys (any number when NULL): the rows a batch writes stay locked
-- from its first write until it commits (dwr.merge_runs.writes_began: dwr._writes_begin), the
-- longest a CDC write to one of them can wait. The first batch is one step; the next is sized from
-- the time the last one held its rows, aiming at 80% of the budget and at most four times the last
-- one's steps. (Until that time was recorded, the whole batch was measured, reading and
-- classifying too, which made the batches smaller than the budget allows. Before 0.6.0 the steps
-- were batch_size keys, so a budget given with the default batch_size started with batches of
-- 50,000 keys.) Each batch runs in a subtransaction: when it fails, its work is rolled back, the
-- failure recorded and committed (dwr._batch_failed), then raised again.
CREATE OR REPLACE PROCEDURE @extschema@.dwr_merge_batches(target pg_catalog.regclass,
                                                          batch_size pg_catalog.int4 DEFAULT 50000,
                                                          max_stall pg_catalog.interval DEFAULT NULL)
LANGUAGE plpgsql
AS $dwr$
DECLARE
    total pg_catalog.int8;
    batches pg_catalog.int4;
    done pg_catalog.int8 := 0;
    b pg_catalog.int4 := 1;
    last pg_catalog.int4;
    span pg_catalog.int4 := 1;
    step pg_catalog.int4 := batch_size;
    most pg_catalog.int4 := 2147483647;
    budget pg_catalog.float8;
    started pg_catalog.timestamptz;
    took pg_catalog.float8;
    r dwr.merge_result;
    n pg_catalog.int8;
    st pg_catalog.text;
    msg pg_catalog.text;
    det pg_catalog.text;
    hnt pg_catalog.text;
BEGIN
    IF max_stall IS NOT NULL THEN
        budget := pg_catalog.date_part('epoch', max_stall);
        IF budget OPERATOR(pg_catalog.<=) 0 THEN
            RAISE EXCEPTION 'dwr_merge_batches: max_stall must be positive'
                USING ERRCODE = '22023', DETAIL = pg_catalog.format('max_stall is %s.', max_stall),
                      HINT = 'Pass the longest a CDC write may wait for a batch, for example interval ''100 ms''.';
        END IF;
        step := LEAST(COALESCE(batch_size, 1000), 1000);
        IF batch_size IS NOT NULL AND batch_size OPERATOR(pg_catalog.>) 0 THEN
            most := GREATEST(1, batch_size OPERATOR(pg_catalog./) step);
        END IF;
    END IF;
    total := dwr._batch_plan(target, step);
    SELECT (pg_catalog.count(*) OPERATOR(pg_catalog.+) 1)::pg_catalog.int4 INTO batches
      FROM pg_temp._dwr_batches;
    COMMIT;
    WHILE b OPERATOR(pg_catalog.<=) batches LOOP
        last := LEAST(b OPERATOR(pg_catalog.+) span OPERATOR(pg_catalog.-) 1, batches);
        started := pg_catalog.clock_timestamp();
        st := NULL;
        BEGIN
            SELECT * INTO r FROM dwr._merge_batch(target, b, batches, done, total, last);
        EXCEPTION WHEN OTHERS OR query_canceled THEN
            GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL,
                                    hnt = PG_EXCEPTION_HINT;
        END;
        IF st IS NOT NULL THEN
            PERFORM dwr._batch_failed(target, started, st,
                                      msg OPERATOR(pg_catalog.||) COALESCE(' (' OPERATOR(pg_catalog.||) NULLIF(det, '') OPERATOR(pg_catalog.||) ')', ''));
            COMMIT;
            IF NULLIF(det, '') IS NOT NULL AND NULLIF(hnt, '') IS NOT NULL THEN
                RAISE EXCEPTION USING MESSAGE = msg, ERRCODE = st, DETAIL = det, HINT = hnt;
            ELSIF NULLIF(det, '') IS NOT NULL THEN
                RAISE EXCEPTION USING MESSAGE = msg, ERRCODE = st, DETAIL = det;
            ELSIF NULLIF(hnt, '') IS NOT NULL THEN
                RAISE EXCEPTION USING MESSAGE = msg, ERRCODE = st, HINT = hnt;
            END IF;
            RAISE EXCEPTION USING MESSAGE = msg, ERRCODE = st;
        END IF;
        n := r.inserted OPERATOR(pg_catalog.+) r.updated OPERATOR(pg_catalog.+) r.unchanged
             OPERATOR(pg_catalog.+) r.skipped_stale OPERATOR(pg_catalog.+) r.skipped_deleted
             OPERATOR(pg_catalog.+) r.skipped_outside_window OPERATOR(pg_catalog.+) r.deferred
             OPERATOR(pg_catalog.+) r.errors;
        done := done OPERATOR(pg_catalog.+) n;
        RAISE NOTICE 'dwr_merge_batches %: % of %, % of % staged rows done (run %: % inserted, % updated, % unchanged, % stale, % deleted, % outside the window, % deferred, % errors)',
            target, CASE WHEN last OPERATOR(pg_catalog.=) b THEN 'batch ' OPERATOR(pg_catalog.||) b
                         ELSE 'batches ' OPERATOR(pg_catalog.||) b OPERATOR(pg_catalog.||) '-' OPERATOR(pg_catalog.||) last END,
            batches, done, total, r.run_id, r.inserted, r.updated, r.unchanged,
            r.skipped_stale, r.skipped_deleted, r.skipped_outside_window, r.deferred, r.errors;
        COMMIT;
        IF budget IS NOT NULL THEN
            -- how long the batch's rows stayed locked: from its first write to after its commit
            took := pg_catalog.date_part('epoch', pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-)
                        COALESCE((SELECT m.writes_began FROM dwr.merge_runs m
                                   WHERE m.run_id OPERATOR(pg_catalog.=) r.run_id), started));
            span := GREATEST(1, LEAST(span OPERATOR(pg_catalog.*) 4, most,
                        pg_catalog.floor(span OPERATOR(pg_catalog.*) 0.8 OPERATOR(pg_catalog.*) budget
                                         OPERATOR(pg_catalog./) GREATEST(took, 0.0001))::pg_catalog.int4));
        END IF;
        b := last OPERATOR(pg_catalog.+) 1;
    END LOOP;
    DROP TABLE pg_temp._dwr_batches;
END
$dwr$;
COMMENT ON PROCEDURE @extschema@.dwr_merge_batches(pg_catalog.regclass, pg_catalog.int4, pg_catalog.interval) IS
  'CALL outside a transaction block: the merge of dwr_merge in committed batches of batch_size staged keys (in staging''s key order), each its own merge run, so a huge reload never holds millions of row locks or one huge transaction. With max_stall, each batch is sized from the time the last one held its rows locked (from its first write to its commit) so that no row stays locked longer than that: batches start at 1000 keys (batch_size when smaller) and grow to at most batch_size keys (no limit when NULL). Resumable: after a cancel or crash, CALL it again; committed batches left their rows PROCESSED, SKIPPED or ERROR and are not merged again; a batch that failed is recorded as a FAILED run. Progress: a NOTICE per batch (and pg_stat_activity.query in the compiled extension).';

-- what kind of relation a pg_class.relkind is, with its article, for messages (the compiled
-- extension's Relation::a_kind says the same; 35_create_staging_refusals compares the modes)
CREATE FUNCTION dwr._a_kind(relkind pg_catalog."char") RETURNS pg_catalog.text
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
SELECT CASE relkind WHEN 'r' THEN 'a table' WHEN 'p' THEN 'a partitioned table' WHEN 'v' THEN 'a view'
       WHEN 'm' THEN 'a materialized view' WHEN 'f' THEN 'a foreign table' WHEN 'S' THEN 'a sequence'
       WHEN 'i' THEN 'an index' WHEN 'I' THEN 'an index' WHEN 'c' THEN 'a composite type'
       WHEN 't' THEN 'a TOAST table' ELSE 'a relation' END
$$;
COMMENT ON FUNCTION dwr._a_kind(pg_catalog."char") IS
  'Implementation detail of dms_window_reload: a relation kind in words, for messages.';

-- One merge or undo of a table at a time, in both modes (the package had it alone, and the compiled
-- extension took the same advisory lock in Rust): lock space 1146573361 (0x44575231, "DWR1"), the
-- table's oid. (CREATE OR REPLACE: a package being updated has it already.)
CREATE OR REPLACE FUNCTION dwr._lock_target(target pg_catalog.regclass)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $dwr$
#variable_conflict use_column
DECLARE
    timeout pg_catalog.int4 := dwr._setting_ms('dwr.lock_timeout', 0);
    saved pg_catalog.text := pg_catalog.current_setting('lock_timeout');
BEGIN
    IF timeout OPERATOR(pg_catalog.<=) 0 THEN
        PERFORM pg_catalog.pg_advisory_xact_lock(1146573361, target::pg_catalog.oid::pg_catalog.int4);
        RETURN;
    END IF;
    BEGIN
        PERFORM pg_catalog.set_config('lock_timeout', timeout::pg_catalog.text, true);
        PERFORM pg_catalog.pg_advisory_xact_lock(1146573361, target::pg_catalog.oid::pg_catalog.int4);
        PERFORM pg_catalog.set_config('lock_timeout', saved, true);
    EXCEPTION WHEN lock_not_available THEN
        RAISE EXCEPTION 'another merge of % is running', target
            USING ERRCODE = '55P03',
                  DETAIL = pg_catalog.format('waited dwr.lock_timeout = %sms for it to finish', timeout),
                  HINT = 'Wait for the other merge to commit, or raise dwr.lock_timeout (0 waits as long as it takes).';
    END;
END
$dwr$;
COMMENT ON FUNCTION dwr._lock_target(pg_catalog.regclass) IS
  'Implementation detail of dms_window_reload: serialises merges and undos of one table (an advisory lock until the transaction ends), waiting at most dwr.lock_timeout.';

-- What the merges of both modes ask of a table's deletes (the package had these alone; the
-- compiled extension ran the same queries in Rust).
CREATE OR REPLACE FUNCTION dwr._deletes_count_since(target pg_catalog.regclass)
RETURNS pg_catalog.timestamptz LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $dwr$
SELECT COALESCE((SELECT r.began_at FROM dwr.reloads r WHERE r.ended_at IS NULL
                    AND $1 OPERATOR(pg_catalog.=) ANY (r.targets)),
                (SELECT t.tracking_since FROM dwr.tables t WHERE t.target OPERATOR(pg_catalog.=) $1))
$dwr$;
COMMENT ON FUNCTION dwr._deletes_count_since(pg_catalog.regclass) IS
  'Implementation detail of dms_window_reload: from when deletes in target stop staged rows: when its open reload began, or else when its staging table was created or last emptied.';

CREATE OR REPLACE FUNCTION dwr._tombstone_cutoff(target pg_catalog.oid)
RETURNS pg_catalog.timestamptz LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $dwr$
SELECT LEAST(t.tracking_since,
             (SELECT pg_catalog.min(r.began_at) FROM dwr.reloads r WHERE r.ended_at IS NULL
                 AND t.target OPERATOR(pg_catalog.=) ANY (r.targets)))
  FROM dwr.tables t WHERE t.target::pg_catalog.oid OPERATOR(pg_catalog.=) $1
$dwr$;
COMMENT ON FUNCTION dwr._tombstone_cutoff(pg_catalog.oid) IS
  'Implementation detail of dms_window_reload: the tombstones of target older than this are needed neither by its staging table (created or last emptied since) nor by an open reload.';

-- dwr_merge_all, one PL/pgSQL function for both modes (the compiled extension had it in Rust, the
-- package a copy generated with the foreign-key order of the moment it was generated): the tables
-- of the reload (or every registered table whose staging table exists), parents before children by
-- the foreign keys among them, in rounds, ties by name; a cycle refused before anything is merged.
CREATE OR REPLACE FUNCTION @extschema@.dwr_merge_all(reload_id pg_catalog.int8 DEFAULT NULL)
RETURNS SETOF dwr.merge_result
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $dwr$
#variable_conflict use_column
DECLARE
    r record;
    chosen pg_catalog.regclass[] := '{}';
    waiting pg_catalog.regclass[];
    ready pg_catalog.regclass[];
    ordered pg_catalog.regclass[] := '{}';
    t pg_catalog.regclass;
BEGIN
    IF $1 IS NOT NULL THEN
        SELECT x.ended_at IS NOT NULL AS ended, x.targets INTO r FROM dwr.reloads x
         WHERE x.reload_id OPERATOR(pg_catalog.=) $1;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'reload % does not exist', $1 USING ERRCODE = '42704', HINT = 'See SELECT * FROM dwr.reloads;';
        END IF;
        IF r.ended THEN
            RAISE EXCEPTION 'reload % is ended', $1 USING ERRCODE = '55000',
                  HINT = 'Merge every registered table with dwr_merge_all(), or open a new reload.';
        END IF;
        chosen := r.targets;
    ELSE
        -- every registration whose production and staging tables both exist; a broken one is
        -- named and left out rather than failing the others
        FOR r IN SELECT x.target, EXISTS (SELECT FROM pg_catalog.pg_class s
                                           WHERE s.oid OPERATOR(pg_catalog.=) x.staging::pg_catalog.oid) AS staged
                   FROM dwr.tables x
                   JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) x.target::pg_catalog.oid
                  ORDER BY dwr._display(x.target) COLLATE pg_catalog."C" LOOP
            IF r.staged THEN
                chosen := chosen OPERATOR(pg_catalog.||) r.target;
            ELSE
                RAISE WARNING 'dwr_merge_all: skipping %: its staging table no longer exists (re-create it with dwr_create_staging)',
                    dwr._display(r.target);
            END IF;
        END LOOP;
    END IF;
    -- parents before children: each round takes the tables none of whose parents is still waiting
    -- (a table referencing itself is no constraint), by name
    waiting := chosen;
    WHILE pg_catalog.cardinality(waiting) OPERATOR(pg_catalog.>) 0 LOOP
        SELECT pg_catalog.array_agg(x ORDER BY dwr._display(x) COLLATE pg_catalog."C") INTO ready
          FROM pg_catalog.unnest(waiting) AS x
         WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_constraint c
                            WHERE c.contype OPERATOR(pg_catalog.=) 'f'
                              AND c.conrelid OPERATOR(pg_catalog.=) x::pg_catalog.oid
                              AND c.confrelid OPERATOR(pg_catalog.<>) x::pg_catalog.oid
                              AND c.confrelid OPERATOR(pg_catalog.=) ANY (waiting::pg_catalog.oid[]));
        IF ready IS NULL THEN
            RAISE EXCEPTION 'the foreign keys among these tables form a cycle, so no table can be merged first'
                USING ERRCODE = '55000',
                      DETAIL = 'tables on or behind the cycle: ' OPERATOR(pg_catalog.||)
                               (SELECT pg_catalog.string_agg(dwr._display(x), ', ' ORDER BY dwr._display(x) COLLATE pg_catalog."C")
                                  FROM pg_catalog.unnest(waiting) AS x),
                      HINT = 'Merge them one by one with dwr_merge, in an order your data allows (or make one of the foreign keys DEFERRABLE INITIALLY DEFERRED).';
        END IF;
        ordered := ordered OPERATOR(pg_catalog.||) ready;
        waiting := ARRAY(SELECT x FROM pg_catalog.unnest(waiting) AS x WHERE x OPERATOR(pg_catalog.<>) ALL (ready));
    END LOOP;
    FOREACH t IN ARRAY ordered LOOP
        RETURN NEXT @extschema@.dwr_merge(t);
    END LOOP;
END
$dwr$;
COMMENT ON FUNCTION @extschema@.dwr_merge_all(pg_catalog.int8) IS
  'Merges every table of the open reload (or, with NULL, every registered table) in one transaction, parents before children by the foreign keys among them; a foreign-key cycle is refused with the tables named. One dwr.merge_result a table.';

-- The staging table of dwr_create_staging, made or adopted the same way in both modes (the package
-- had it in PL/pgSQL, the compiled extension in Rust); what is per mode stays around it: the Citus
-- placement, the delete trigger's topology, the registration write.
CREATE OR REPLACE FUNCTION dwr._check_staging_owner(target pg_catalog.regclass, staging pg_catalog.regclass)
RETURNS void LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $dwr$
#variable_conflict use_column
DECLARE
    t_owner pg_catalog.oid;
    s_owner pg_catalog.oid;
BEGIN
    SELECT relowner INTO t_owner FROM pg_catalog.pg_class WHERE oid OPERATOR(pg_catalog.=) target;
    SELECT relowner INTO s_owner FROM pg_catalog.pg_class WHERE oid OPERATOR(pg_catalog.=) staging;
    IF s_owner IS NULL THEN
        RAISE EXCEPTION 'staging table with OID % does not exist', staging::pg_catalog.oid
            USING ERRCODE = '42P01', HINT = 'The table was dropped or renamed away; check dwr.tables.';
    END IF;
    IF s_owner OPERATOR(pg_catalog.<>) t_owner THEN
        RAISE EXCEPTION 'staging table % is owned by %, not by %, the owner of %', staging,
              pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(s_owner)),
              pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(t_owner)), target
            USING ERRCODE = '42501',
                  DETAIL = 'A merge reads staging with the caller''s privileges; a table another role owns could run that role''s code (triggers, defaults) as the caller.',
                  HINT = pg_catalog.format('Give staging to the production table''s owner: ALTER TABLE %s OWNER TO %s;',
                                           staging, pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(t_owner)));
    END IF;
END
$dwr$;
COMMENT ON FUNCTION dwr._check_staging_owner(pg_catalog.regclass, pg_catalog.regclass) IS
  'Implementation detail of dms_window_reload: refuses a staging table owned by another role than the production table''s owner.';

CREATE OR REPLACE FUNCTION dwr._make_staging(target pg_catalog.regclass, staging_schema pg_catalog.name,
                                             meta_names pg_catalog.text[], meta_types pg_catalog.text[],
                                             fillfactor pg_catalog.int4,
                                             OUT staging pg_catalog.regclass, OUT created pg_catalog.bool)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $dwr$
#variable_conflict use_column
DECLARE
    t record;
    existing pg_catalog.oid;
    kind pg_catalog."char";
    cols pg_catalog.text;
    other pg_catalog.text;
    i pg_catalog.int4;
    s pg_catalog.regclass;
BEGIN
    SELECT n.nspname, c.relname INTO t
      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
     WHERE c.oid OPERATOR(pg_catalog.=) target;
    IF staging_schema OPERATOR(pg_catalog.=) t.nspname THEN
        RAISE EXCEPTION 'staging schema % is the schema of %', pg_catalog.quote_ident(staging_schema), target
            USING ERRCODE = '22023', HINT = 'Staging must live in another schema, for example ''staging''.';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_namespace WHERE nspname OPERATOR(pg_catalog.=) staging_schema) THEN
        EXECUTE pg_catalog.format('CREATE SCHEMA %I', staging_schema);
    END IF;
    SELECT c.oid, c.relkind INTO existing, kind FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n
        ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
     WHERE n.nspname OPERATOR(pg_catalog.=) staging_schema AND c.relname OPERATOR(pg_catalog.=) t.relname;
    IF existing IS NULL THEN
        -- every production column with its type (generated and identity columns become plain
        -- columns; no defaults; NOT NULL only on the primary key, so a row with a NULL version can
        -- be staged and reported rather than refused by the load), the same primary key, the
        -- metadata columns
        SELECT pg_catalog.string_agg(pg_catalog.format('%I %s', a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod)),
                                     ', ' ORDER BY a.attnum) INTO cols
          FROM pg_catalog.pg_attribute a
         WHERE a.attrelid OPERATOR(pg_catalog.=) target AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped;
        EXECUTE pg_catalog.format('CREATE TABLE %I.%I (%s, PRIMARY KEY (%s), %s) WITH (fillfactor = %s)',
                                  staging_schema, t.relname, cols,
                                  (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY k.ord)
                                     FROM pg_catalog.pg_index x
                                    CROSS JOIN LATERAL pg_catalog.unnest(x.indkey) WITH ORDINALITY AS k(attnum, ord)
                                     JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) x.indrelid
                                                                   AND a.attnum OPERATOR(pg_catalog.=) k.attnum
                                    WHERE x.indrelid OPERATOR(pg_catalog.=) target AND x.indisprimary),
                                  (SELECT pg_catalog.string_agg(pg_catalog.format('%I %s', m.name, m.type), ', ' ORDER BY m.ord)
                                     FROM ROWS FROM (pg_catalog.unnest(meta_names), pg_catalog.unnest(meta_types))
                                          WITH ORDINALITY AS m(name, type, ord)),
                                  fillfactor);
        s := pg_catalog.format('%I.%I', staging_schema, t.relname)::pg_catalog.regclass;
        created := true;
    ELSE
        s := existing::pg_catalog.regclass;
        IF kind OPERATOR(pg_catalog.<>) ALL (ARRAY['r', 'p']::pg_catalog."char"[]) THEN
            RAISE EXCEPTION '% exists and is %, not a table', s, dwr._a_kind(kind)
                  USING ERRCODE = '42809', HINT = 'Drop or rename it, or choose another staging_schema.';
        END IF;
        PERFORM dwr._check_staging_owner(target, s);
        -- adopt: add the metadata columns it lacks, rewriting no row (a column with a constant
        -- default is added without touching rows; the volatile default of _dwr_loaded_at is set
        -- once the column exists, so it applies to new rows only)
        FOR i IN 1 .. pg_catalog.cardinality(meta_names) LOOP
            CONTINUE WHEN EXISTS (SELECT FROM pg_catalog.pg_attribute a WHERE a.attrelid OPERATOR(pg_catalog.=) existing
                                     AND a.attname OPERATOR(pg_catalog.=) meta_names[i] AND NOT a.attisdropped);
            IF meta_names[i] OPERATOR(pg_catalog.=) '_dwr_loaded_at' THEN
                EXECUTE pg_catalog.format('ALTER TABLE %s ADD COLUMN %I pg_catalog.timestamptz', s, meta_names[i]);
                EXECUTE pg_catalog.format('ALTER TABLE %s ALTER COLUMN %I SET DEFAULT pg_catalog.clock_timestamp()',
                                          s, meta_names[i]);
            ELSE
                EXECUTE pg_catalog.format('ALTER TABLE %s ADD COLUMN %I %s', s, meta_names[i], meta_types[i]);
            END IF;
        END LOOP;
        created := false;
    END IF;
    -- a staging table already registered for another target would be merged twice
    SELECT d.target::pg_catalog.text INTO other FROM dwr.tables d
     WHERE d.staging OPERATOR(pg_catalog.=) s AND d.target OPERATOR(pg_catalog.<>) $1;
    IF other IS NOT NULL THEN
        RAISE EXCEPTION 'staging table % is already registered for %', s, other USING ERRCODE = '42P07',
              HINT = 'Use another staging_schema, or dwr_drop_staging the other registration first.';
    END IF;
    staging := s;
END
$dwr$;
COMMENT ON FUNCTION dwr._make_staging(pg_catalog.regclass, pg_catalog.name, pg_catalog.text[], pg_catalog.text[], pg_catalog.int4) IS
  'Implementation detail of dms_window_reload: the staging table of dwr_create_staging in staging_schema, made (created) or adopted (its missing metadata columns added), and refused when it is not a table, is owned by another role or serves another production table. Both modes pass the metadata columns and fill factor of dwr_engine::ddl.';

-- dwr_create_staging, one frame for both modes: the checks, the staging table made or adopted
-- (with the engine's metadata columns and fill factor, dwr_engine::ddl, which a unit test compares
-- with the literals below), then what differs by mode behind three functions: the staging table
-- prepared for this server (on Citus placed like production; the package refuses a Citus table),
-- the delete trigger installed, and the registration written as the extension owner. The trigger
-- is the last change to production, so that the table lock it needs is held as briefly as possible
-- (until the caller commits), and asked for in attempts CDC never queues behind.
CREATE OR REPLACE FUNCTION @extschema@.dwr_create_staging(target pg_catalog.regclass,
                                                          staging_schema pg_catalog.name DEFAULT 'staging',
                                                          version_column pg_catalog.name DEFAULT 'updated_at')
RETURNS pg_catalog.regclass
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $dwr$
#variable_conflict use_column
DECLARE
    s pg_catalog.regclass;
    created pg_catalog.bool;
    replace pg_catalog.bool;
BEGIN
    PERFORM dwr._check_target(target, staging_schema, version_column);
    PERFORM dwr._require_owner(target, CURRENT_USER);
    SELECT m.staging, m.created INTO s, created
      FROM dwr._make_staging(target, staging_schema,
                        ARRAY['_dwr_status', '_dwr_loaded_at', '_dwr_error', '_dwr_run_id']::pg_catalog.text[],
                        ARRAY['pg_catalog.text NOT NULL DEFAULT ''NEW'' CHECK ("_dwr_status" OPERATOR(pg_catalog.=) ANY (''{NEW,PROCESSED,SKIPPED,ERROR}''::pg_catalog.text[]))', 'pg_catalog.timestamptz DEFAULT pg_catalog.clock_timestamp()', 'pg_catalog.text', 'pg_catalog.int8']::pg_catalog.text[],
                        50) AS m;
    PERFORM dwr._prepare_staging(target, s, version_column);
    replace := EXISTS (SELECT FROM pg_catalog.pg_trigger t WHERE t.tgrelid OPERATOR(pg_catalog.=) target
                          AND t.tgname OPERATOR(pg_catalog.=) 'dwr_record_delete' AND NOT t.tgisinternal);
    PERFORM dwr._lock_for_ddl(target, CASE WHEN replace THEN 'ACCESS EXCLUSIVE' ELSE 'SHARE ROW EXCLUSIVE' END,
                              'install delete tracking');
    PERFORM dwr._install_delete_tracking(target, s, replace);
    PERFORM dwr._register(target, s, version_column, created, CURRENT_USER);
    RETURN s;
END
$dwr$;
COMMENT ON FUNCTION @extschema@.dwr_create_staging(pg_catalog.regclass, pg_catalog.name, pg_catalog.name) IS
  'Creates staging_schema.<table> (the target''s columns and primary key plus the _dwr_ metadata columns), or adopts a table of that name that a DMS full load created (adding the metadata columns, changing no row), and registers the pair in dwr.tables. Returns the staging table. With the pg_tle package, run dwr tle install afterwards to generate the table''s merge.';

-- dwr_schedule: a role that may not read shared_preload_libraries (without pg_read_all_settings)
-- gets the error that says what to do in this database, not a permission error about a setting
CREATE OR REPLACE FUNCTION dwr._cron_schema(job pg_catalog.text, cron pg_catalog.text, command pg_catalog.text)
RETURNS pg_catalog.text LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $dwr$
#variable_conflict use_column
DECLARE
    s pg_catalog.text;
    cron_db pg_catalog.text;
    preloaded pg_catalog.bool;
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
    BEGIN
        -- readable with pg_read_all_settings (Amazon RDS's rds_superuser has it); without it, the
        -- error below that names the step left in this database
        preloaded := 'pg_cron' OPERATOR(pg_catalog.=) ANY (SELECT pg_catalog.btrim(l, ' "')
                                                             FROM pg_catalog.unnest(pg_catalog.string_to_array(
                                                                  pg_catalog.current_setting('shared_preload_libraries'), ',')) l);
    EXCEPTION WHEN insufficient_privilege THEN
        preloaded := NULL;
    END;
    IF NOT preloaded THEN
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
