-- dms_window_reload 0.2.0 -> 0.3.0: state that survives pg_dump/pg_restore, and DDL on production
-- that never makes CDC writers queue.
--
-- This file is written once for every way of getting 0.3.0: it is this update script, part of the
-- compiled extension's install script (src/lib.rs includes it after schema.sql), and part of the
-- pg_tle package's install and update scripts (engine/src/tle.rs). So it holds only what both modes
-- share: table changes and PL/pgSQL. pg_test/run-all checks that an updated install equals a fresh
-- one.
\echo Use "ALTER EXTENSION dms_window_reload UPDATE TO '0.3.0'" to load this file. \quit

-- The production table of a run, a row image and a tombstone is a regclass, as in dwr.tables and
-- dwr.reloads: pg_dump writes it as the table's name and pg_restore resolves that name again in the
-- new database, where a raw OID would name another table or none (a tombstone keyed by an old OID
-- let a restored database re-insert a row CDC had deleted). pg_upgrade keeps table OIDs, so either
-- survives it. On a fresh install these columns are regclass already and nothing changes.
ALTER TABLE dwr.merge_runs ALTER COLUMN target TYPE pg_catalog.regclass;
ALTER TABLE dwr.row_changes ALTER COLUMN target TYPE pg_catalog.regclass;
ALTER TABLE dwr.tombstones ALTER COLUMN target TYPE pg_catalog.regclass;
COMMENT ON COLUMN dwr.merge_runs.target IS 'the production table (kept by name through pg_dump and pg_restore; a number once the table is dropped)';
COMMENT ON COLUMN dwr.row_changes.target IS 'the production table';
COMMENT ON COLUMN dwr.tombstones.target IS 'the production table (the root of a partitioned table)';

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
-- server's tuplestore and spill to disk past work_mem.
CREATE OR REPLACE FUNCTION @extschema@.dwr_diff(target pg_catalog.regclass, source pg_catalog.regclass DEFAULT NULL)
RETURNS TABLE (key pg_catalog.jsonb, difference pg_catalog.text, production pg_catalog.jsonb, staged pg_catalog.jsonb)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
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
SET search_path = pg_catalog, pg_temp
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

-- @compiled-only-begin
-- (the pg_tle package's batched merge came in 0.4.0: the package leaves this part out)

-- A batch may span several planned batches (through: the last of them), for the stall budget of
-- dwr_merge_batches.
DROP FUNCTION dwr._merge_batch(pg_catalog.regclass, pg_catalog.int4, pg_catalog.int4, pg_catalog.int8, pg_catalog.int8);
CREATE FUNCTION dwr._merge_batch(target pg_catalog.regclass, batch pg_catalog.int4, batches pg_catalog.int4,
                                 done pg_catalog.int8, total pg_catalog.int8, through pg_catalog.int4)
RETURNS dwr.merge_result
LANGUAGE c VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'dwr_merge_batch_wrapper';
COMMENT ON FUNCTION dwr._merge_batch(pg_catalog.regclass, pg_catalog.int4, pg_catalog.int4, pg_catalog.int8, pg_catalog.int8, pg_catalog.int4) IS
  'Implementation of dwr_merge_batches: merges the staged rows of planned batches batch to through, as one merge run.';

-- A procedure, so that it can commit after every batch; a procedure that commits cannot carry a
-- SET clause, so every name in it is schema-qualified instead. With max_stall, the planned batches
-- are small steps (batch_size keys, 1000 when NULL) and each batch takes as many of them as fit the
-- budget: the rows a batch writes stay locked until it commits, so its duration is the longest a
-- CDC write to one of them can wait. The next batch is sized from the last one's duration, aiming
-- at 80% of the budget and at most four times the last one's steps.
DROP PROCEDURE @extschema@.dwr_merge_batches(pg_catalog.regclass, pg_catalog.int4);
CREATE PROCEDURE @extschema@.dwr_merge_batches(target pg_catalog.regclass,
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
    budget pg_catalog.float8;
    started pg_catalog.timestamptz;
    took pg_catalog.float8;
    r dwr.merge_result;
    n pg_catalog.int8;
BEGIN
    IF max_stall IS NOT NULL THEN
        budget := pg_catalog.date_part('epoch', max_stall);
        IF budget OPERATOR(pg_catalog.<=) 0 THEN
            RAISE EXCEPTION 'dwr_merge_batches: max_stall must be positive'
                USING ERRCODE = '22023', DETAIL = pg_catalog.format('max_stall is %s.', max_stall),
                      HINT = 'Pass the longest a CDC write may wait for a batch, for example interval ''100 ms''.';
        END IF;
        batch_size := COALESCE(batch_size, 1000);
    END IF;
    total := dwr._batch_plan(target, batch_size);
    SELECT (pg_catalog.count(*) OPERATOR(pg_catalog.+) 1)::pg_catalog.int4 INTO batches
      FROM pg_temp._dwr_batches;
    COMMIT;
    WHILE b OPERATOR(pg_catalog.<=) batches LOOP
        last := LEAST(b OPERATOR(pg_catalog.+) span OPERATOR(pg_catalog.-) 1, batches);
        started := pg_catalog.clock_timestamp();
        SELECT * INTO r FROM dwr._merge_batch(target, b, batches, done, total, last);
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
            took := pg_catalog.date_part('epoch', pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) started);
            span := GREATEST(1, LEAST(span OPERATOR(pg_catalog.*) 4,
                        pg_catalog.floor(span OPERATOR(pg_catalog.*) 0.8 OPERATOR(pg_catalog.*) budget
                                         OPERATOR(pg_catalog./) GREATEST(took, 0.0001))::pg_catalog.int4));
        END IF;
        b := last OPERATOR(pg_catalog.+) 1;
    END LOOP;
    DROP TABLE pg_temp._dwr_batches;
END
$dwr$;
COMMENT ON PROCEDURE @extschema@.dwr_merge_batches(pg_catalog.regclass, pg_catalog.int4, pg_catalog.interval) IS
  'CALL outside a transaction block: the merge of dwr_merge in committed batches of batch_size staged keys (in staging''s key order), each its own merge run, so a huge reload never holds millions of row locks or one huge transaction. With max_stall, each batch is sized from the last one''s duration so that no row stays locked longer than that (batch_size, 1000 when NULL, is then the step the batches are made of). Resumable: after a cancel or crash, CALL it again; committed batches left their rows PROCESSED, SKIPPED or ERROR and are not merged again. Progress: a NOTICE per batch and pg_stat_activity.query.';
-- @compiled-only-end
