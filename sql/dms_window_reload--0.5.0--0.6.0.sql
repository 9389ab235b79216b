-- dms_window_reload 0.5.0 -> 0.6.0 (both modes: the pg_tle package runs this script too).
--
-- dwr_merge_batches: a stall budget (max_stall) sizes every batch, whatever batch_size says or
-- defaults to. dwr_diff and dwr_diff_summary: JIT off while they run (the compiled extension's
-- merge, batches, undo and dwr_verify set it off in C; the package's in their SET clauses).

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
  'CALL outside a transaction block: the merge of dwr_merge in committed batches of batch_size staged keys (in staging''s key order), each its own merge run, so a huge reload never holds millions of row locks or one huge transaction. With max_stall, each batch is sized from the last one''s duration so that no row stays locked longer than that (batch_size, 1000 when NULL, is then the step the batches are made of). Resumable: after a cancel or crash, CALL it again; committed batches left their rows PROCESSED, SKIPPED or ERROR and are not merged again; a batch that failed is recorded as a FAILED run. Progress: a NOTICE per batch (and pg_stat_activity.query in the compiled extension).';
COMMENT ON PROCEDURE @extschema@.dwr_merge_batches(pg_catalog.regclass, pg_catalog.int4, pg_catalog.interval) IS
  'CALL outside a transaction block: the merge of dwr_merge in committed batches of batch_size staged keys (in staging''s key order), each its own merge run, so a huge reload never holds millions of row locks or one huge transaction. With max_stall, each batch is sized from the time the last one held its rows locked (from its first write to its commit) so that no row stays locked longer than that: batches start at 1000 keys (batch_size when smaller) and grow to at most batch_size keys (no limit when NULL). Resumable: after a cancel or crash, CALL it again; committed batches left their rows PROCESSED, SKIPPED or ERROR and are not merged again; a batch that failed is recorded as a FAILED run. Progress: a NOTICE per batch (and pg_stat_activity.query in the compiled extension).';

-- The time a merge began writing production (dwr._writes_begin, below).
ALTER TABLE dwr.merge_runs ADD COLUMN writes_began pg_catalog.timestamptz;
COMMENT ON COLUMN dwr.merge_runs.writes_began IS
  'when the merge began writing production: its rows stay locked from then to the commit, so finished_at minus this is the longest a CDC write to one of them waited (NULL: an undo, a dry run, a run from before 0.6.0)';

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

-- JIT compiles a query's expressions with LLVM when its estimated cost passes jit_above_cost: a
-- comparison of 100,000 staged rows passes it, and each is planned once and runs once, so the
-- compilation (hundreds of milliseconds) is never paid back. The function's SET clause puts the
-- caller's setting back on return.
ALTER FUNCTION @extschema@.dwr_diff(pg_catalog.regclass, pg_catalog.regclass) SET jit = off;
ALTER FUNCTION @extschema@.dwr_diff_summary(pg_catalog.regclass, pg_catalog.regclass) SET jit = off;

-- A replayed change log removes rows: a merge's result counts them (an undo's removed rows are in
-- dwr.merge_runs.deleted, as before).
ALTER TYPE dwr.merge_result ADD ATTRIBUTE deleted pg_catalog.int8;
COMMENT ON COLUMN dwr.merge_runs.deleted IS
  'dwr_replay: production rows a replayed D removed; undo: rows the undone merge had inserted and the undo deleted';
COMMENT ON COLUMN dwr.row_changes.action IS
  'insert or update (a merge), delete (dwr_replay removing a row the source deleted); delete (an undo removing an inserted row), restore (an undo putting the before image back) or insert (an undo putting a removed row back)';

-- @compiled-only-begin
-- (the pg_tle package's dwr_replay is generated with its merges: engine/src/tle/mod.rs)

-- dwr_create_staging is one PL/pgSQL frame for both modes (below); its C implementation goes.
DROP FUNCTION dwr._create_staging(pg_catalog.regclass, pg_catalog.text, pg_catalog.text);

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
-- server gets the trigger (dwr_create_staging adds it to the tables registered from now on).
CREATE FUNCTION dwr._arm_missed_deletes() RETURNS trigger
LANGUAGE c
AS 'MODULE_PATHNAME', 'dwr_arm_missed_deletes_wrapper';
COMMENT ON FUNCTION dwr._arm_missed_deletes() IS
  'Statement trigger (BEFORE DELETE FOR EACH STATEMENT, ENABLE ALWAYS) of a registered table, its arguments the primary key''s columns: a DELETE of the table that deletes no row and names every key column with = and a constant or parameter records that key in dwr.tombstones.';
DO $dwr$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT tg.tgrelid::pg_catalog.regclass AS target
               FROM pg_catalog.pg_trigger tg
              WHERE tg.tgname OPERATOR(pg_catalog.=) 'dwr_record_delete' AND NOT tg.tgisinternal
                AND tg.tgparentid OPERATOR(pg_catalog.=) 0
                AND tg.tgfoid OPERATOR(pg_catalog.=) 'dwr._record_delete()'::pg_catalog.regprocedure LOOP
        -- the primary key's columns, in key order
        EXECUTE pg_catalog.format(
            'CREATE TRIGGER dwr_record_missed_delete BEFORE DELETE ON %s FOR EACH STATEMENT EXECUTE FUNCTION dwr._arm_missed_deletes(%s)',
            t.target,
            (SELECT pg_catalog.string_agg(pg_catalog.quote_literal(a.attname), ', ' ORDER BY k.n)
               FROM pg_catalog.pg_index i
               CROSS JOIN LATERAL pg_catalog.unnest(i.indkey::pg_catalog.int2[]) WITH ORDINALITY AS k(attnum, n)
               JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) i.indrelid
                                             AND a.attnum OPERATOR(pg_catalog.=) k.attnum
              WHERE i.indrelid OPERATOR(pg_catalog.=) t.target AND i.indisprimary));
        EXECUTE pg_catalog.format('ALTER TABLE %s ENABLE ALWAYS TRIGGER dwr_record_missed_delete', t.target);
    END LOOP;
END
$dwr$;
-- @compiled-only-end

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
