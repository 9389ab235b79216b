-- dms_window_reload 0.3.0 -> 0.4.0: the batched merge in both modes; the LOB limit of a reload;
-- the progress of a long merge.
--
-- Written once for every way of getting 0.4.0, like the 0.2.0 -> 0.3.0 script: this update script,
-- part of the compiled extension's install script (src/lib.rs), and part of the pg_tle package's
-- install and update scripts (engine/src/tle/mod.rs, without the compiled-only part). The procedure
-- below is the same text in both modes; what differs is behind the functions it calls:
-- dwr._batch_plan and dwr._merge_batch (C in the compiled extension, generated per table in the
-- package) and dwr._batch_failed.
\echo Use "ALTER EXTENSION dms_window_reload UPDATE TO '0.4.0'" to load this file. \quit

-- The LobMaxSize the reload's DMS task was given (limited LOB mode): while the reload is open, a
-- staged value of a LOB-like column this long may have been cut by the loader, and the merge marks
-- its row ERROR instead of writing it.
ALTER TABLE dwr.reloads ADD COLUMN lob_max_kb pg_catalog.int4;
COMMENT ON COLUMN dwr.reloads.lob_max_kb IS
  'LobMaxSize (KB) of the reload''s DMS task settings in limited LOB mode, as dwr_dms_task_settings (or dwr dms task-settings) wrote them; NULL: full LOB mode, or not written. While the reload is open, the merge marks ERROR a staged row whose LOB-like value is at least this long (possibly truncated by the loader).';

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

-- The pg_tle package's undo reads a run's images through the functions generated from the undo's
-- program (engine/src/undo.rs); nothing in the compiled extension had this function.
DROP FUNCTION IF EXISTS dwr._undo_images(pg_catalog.int8);

-- @compiled-only-begin
-- dwr_dms_task_settings records the LOB limit it chose on the reload
ALTER FUNCTION @extschema@.dwr_dms_task_settings(pg_catalog.int8, pg_catalog.jsonb) VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.dwr_dms_task_settings(pg_catalog.int8, pg_catalog.jsonb) IS
  'AWS DMS task settings for a full load of the reload into its existing staging tables (TargetSchema = the staging schema, TargetTablePrepMode = DO_NOTHING, LOB settings sized from the largest value of the tables'' LOB-like columns, logging on); overrides is merged in deeply. Records the LobMaxSize of limited LOB mode on the reload (dwr.reloads.lob_max_kb), for the merge''s guard against truncated values.';

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
-- @compiled-only-end

-- A procedure, so that it can commit after every batch; a procedure that commits cannot carry a
-- SET clause, so every name in it is schema-qualified instead. With max_stall, the planned batches
-- are small steps (batch_size keys, 1000 when NULL) and each batch takes as many of them as fit the
-- budget: the rows a batch writes stay locked until it commits, so its duration is the longest a
-- CDC write to one of them can wait. The next batch is sized from the last one's duration, aiming
-- at 80% of the budget and at most four times the last one's steps. Each batch runs in a
-- subtransaction: when it fails, its work is rolled back, the failure recorded and committed
-- (dwr._batch_failed), then raised again.
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
        batch_size := COALESCE(batch_size, 1000);
    END IF;
    total := dwr._batch_plan(target, batch_size);
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
  'CALL outside a transaction block: the merge of dwr_merge in committed batches of batch_size staged keys (in staging''s key order), each its own merge run, so a huge reload never holds millions of row locks or one huge transaction. With max_stall, each batch is sized from the last one''s duration so that no row stays locked longer than that (batch_size, 1000 when NULL, is then the step the batches are made of). Resumable: after a cancel or crash, CALL it again; committed batches left their rows PROCESSED, SKIPPED or ERROR and are not merged again; a batch that failed is recorded as a FAILED run. Progress: a NOTICE per batch (and pg_stat_activity.query in the compiled extension).';
