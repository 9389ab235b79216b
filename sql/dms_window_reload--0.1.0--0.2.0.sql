-- dms_window_reload 0.1.0 -> 0.2.0: batched merges (CALL dwr_merge_batches). This file is also part
-- of the 0.2.0 install script (src/lib.rs includes it after functions.sql), so both ways of getting
-- 0.2.0 create the same objects; pg_test/run-all checks that they do.
\echo Use "ALTER EXTENSION dms_window_reload UPDATE TO '0.2.0'" to load this file. \quit

CREATE FUNCTION dwr._batch_plan(target pg_catalog.regclass, batch_size pg_catalog.int4)
RETURNS pg_catalog.int8
LANGUAGE c VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'dwr_batch_plan_wrapper';
COMMENT ON FUNCTION dwr._batch_plan(pg_catalog.regclass, pg_catalog.int4) IS
  'Implementation of dwr_merge_batches: cuts the NEW staged rows'' keys into batches of batch_size keys (bounds in the session table pg_temp._dwr_batches); returns the number of NEW staged rows.';

CREATE FUNCTION dwr._merge_batch(target pg_catalog.regclass, batch pg_catalog.int4, batches pg_catalog.int4,
                                 done pg_catalog.int8, total pg_catalog.int8)
RETURNS dwr.merge_result
LANGUAGE c VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'dwr_merge_batch_wrapper';
COMMENT ON FUNCTION dwr._merge_batch(pg_catalog.regclass, pg_catalog.int4, pg_catalog.int4, pg_catalog.int8, pg_catalog.int8) IS
  'Implementation of dwr_merge_batches: merges the staged rows of one planned batch, as one merge run.';

-- A procedure, so that it can commit after every batch; a procedure that commits cannot carry a
-- SET clause, so every name in it is schema-qualified instead.
CREATE PROCEDURE @extschema@.dwr_merge_batches(target pg_catalog.regclass,
                                               batch_size pg_catalog.int4 DEFAULT 50000)
LANGUAGE plpgsql
AS $$
DECLARE
    total pg_catalog.int8;
    batches pg_catalog.int4;
    done pg_catalog.int8 := 0;
    b pg_catalog.int4;
    r dwr.merge_result;
    n pg_catalog.int8;
BEGIN
    total := dwr._batch_plan(target, batch_size);
    SELECT (pg_catalog.count(*) OPERATOR(pg_catalog.+) 1)::pg_catalog.int4 INTO batches
      FROM pg_temp._dwr_batches;
    COMMIT;
    FOR b IN 1 .. batches LOOP
        SELECT * INTO r FROM dwr._merge_batch(target, b, batches, done, total);
        n := r.inserted OPERATOR(pg_catalog.+) r.updated OPERATOR(pg_catalog.+) r.unchanged
             OPERATOR(pg_catalog.+) r.skipped_stale OPERATOR(pg_catalog.+) r.skipped_deleted
             OPERATOR(pg_catalog.+) r.skipped_outside_window OPERATOR(pg_catalog.+) r.deferred
             OPERATOR(pg_catalog.+) r.errors;
        done := done OPERATOR(pg_catalog.+) n;
        RAISE NOTICE 'dwr_merge_batches %: batch % of %, % of % staged rows done (run %: % inserted, % updated, % unchanged, % stale, % deleted, % outside the window, % deferred, % errors)',
            target, b, batches, done, total, r.run_id, r.inserted, r.updated, r.unchanged,
            r.skipped_stale, r.skipped_deleted, r.skipped_outside_window, r.deferred, r.errors;
        COMMIT;
    END LOOP;
    DROP TABLE pg_temp._dwr_batches;
END
$$;
COMMENT ON PROCEDURE @extschema@.dwr_merge_batches(pg_catalog.regclass, pg_catalog.int4) IS
  'CALL outside a transaction block: the merge of dwr_merge in committed batches of batch_size staged keys (in staging''s key order), each its own merge run, so a huge reload never holds millions of row locks or one huge transaction. Resumable: after a cancel or crash, CALL it again; committed batches left their rows PROCESSED, SKIPPED or ERROR and are not merged again. Progress: a NOTICE per batch and pg_stat_activity.query.';
