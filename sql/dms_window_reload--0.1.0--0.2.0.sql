-- dms_window_reload 0.1.0 -> 0.2.0: batched merges (CALL dwr_merge_batches) and the delete tracking
-- of Citus tables (dwr._record_delete_citus). This file is also part
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
