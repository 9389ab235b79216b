-- CALL dwr_merge_batches: the merge of dwr_merge in committed batches ends in exactly the state of
-- one single-transaction merge of the same data, also when a batch fails halfway and the call is
-- made again. Two identical copies: one merged at once, one in batches. (Run against the pg_tle
-- package too; ${DWR_TLE_SYNC:-true} is where a pg_tle operator runs dwr tle install.)
-- run ids from 2001 on, whichever scenarios ran before this one (the progress names runs)
\set SHOW_CONTEXT never
SELECT setval('dwr.merge_runs_run_id_seq', 2000) AS last_run_id_before;
CREATE SCHEMA bat_one;
CREATE SCHEMA bat_many;
\i pg_test/fixtures/batches_setup.sql
SELECT pg_temp.setup('bat_one'), pg_temp.setup('bat_many');
\! ${DWR_TLE_SYNC:-true}
SELECT count(*) AS staged FROM bat_many_staging.t;

SELECT inserted, updated, unchanged, skipped_stale, errors FROM dwr_merge('bat_one.t');

-- a trigger that cancels the batch holding key 1150 (the fourth of five), the way a cancel or a
-- crash would stop the call there
CREATE FUNCTION bat_many.stop() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.id = 1150 THEN
    RAISE EXCEPTION 'canceled halfway' USING ERRCODE = 'query_canceled';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER stop BEFORE INSERT ON bat_many.t FOR EACH ROW EXECUTE FUNCTION bat_many.stop();
CALL dwr_merge_batches('bat_many.t', 110);
-- the batches before it committed, the one it stopped in did not
SELECT _dwr_status, count(*) FROM bat_many_staging.t GROUP BY 1 ORDER BY 1;
SELECT max(id) AS highest_merged_key FROM bat_many_staging.t WHERE _dwr_status <> 'NEW';
DROP TRIGGER stop ON bat_many.t;
-- called again, it goes on with the rows still NEW
CALL dwr_merge_batches('bat_many.t', 110);

-- the same production rows, the same statuses and errors
SELECT count(*) AS differing_rows FROM (
  (SELECT * FROM bat_one.t EXCEPT SELECT * FROM bat_many.t)
  UNION ALL (SELECT * FROM bat_many.t EXCEPT SELECT * FROM bat_one.t)) d;
SELECT count(*) AS differing_statuses FROM (
  (SELECT id, _dwr_status, _dwr_error FROM bat_one_staging.t EXCEPT SELECT id, _dwr_status, _dwr_error FROM bat_many_staging.t)
  UNION ALL (SELECT id, _dwr_status, _dwr_error FROM bat_many_staging.t EXCEPT SELECT id, _dwr_status, _dwr_error FROM bat_one_staging.t)) d;
SELECT _dwr_status, count(*) FROM bat_many_staging.t GROUP BY 1 ORDER BY 1;
-- the rows production refused, isolated inside their batches (their neighbours were written)
SELECT s.id, s._dwr_status, s._dwr_error, t.qty AS production_qty
  FROM bat_many_staging.t s LEFT JOIN bat_many.t t USING (id)
 WHERE s._dwr_error NOT LIKE '%version%' OR s.id IN (769, 775, 1198, 1204) ORDER BY s.id;
-- one merge run a batch, the canceled one recorded as FAILED
SELECT status, count(*), sum(inserted) AS inserted, sum(updated) AS updated
  FROM dwr.merge_runs WHERE target = 'bat_many.t'::regclass GROUP BY status ORDER BY status;

-- nothing NEW: one empty batch
CALL dwr_merge_batches('bat_many.t', 110);

-- a composite key with a key part whose operators live outside pg_catalog is cut column by column
CREATE EXTENSION IF NOT EXISTS citext;
CREATE TABLE bat_many.c (region citext, id int, updated_at int, PRIMARY KEY (region, id));
SELECT dwr_create_staging('bat_many.c', 'bat_many_staging');
\! ${DWR_TLE_SYNC:-true}
INSERT INTO bat_many_staging.c (region, id, updated_at)
  SELECT r, g, 1 FROM unnest(ARRAY['North', 'east', 'South']) r, generate_series(1, 4) g;
CALL dwr_merge_batches('bat_many.c', 5);
SELECT region, count(*) FROM bat_many.c GROUP BY 1 ORDER BY 1;

-- a version staged in another type (a cast in every batch) with keys that need none: the rows are
-- numbered and cast first, then classified with the batch's bounds on production
CREATE TABLE bat_many.v (id int PRIMARY KEY, val text, updated_at bigint);
INSERT INTO bat_many.v SELECT g, 'prod', 10 FROM generate_series(1, 6) g;
CREATE TABLE bat_many_staging.v (id int PRIMARY KEY, val text, updated_at int);
SELECT dwr_create_staging('bat_many.v', 'bat_many_staging');
\! ${DWR_TLE_SYNC:-true}
INSERT INTO bat_many_staging.v (id, val, updated_at)
  SELECT g, 'staged', CASE WHEN g % 2 = 0 THEN 20 ELSE 5 END FROM generate_series(1, 9) g;
CALL dwr_merge_batches('bat_many.v', 4);
SELECT val, updated_at, count(*) FROM bat_many.v GROUP BY 1, 2 ORDER BY 1, 2;
SELECT _dwr_status, count(*) FROM bat_many_staging.v GROUP BY 1 ORDER BY 1;

-- refused clearly
\set VERBOSITY default
BEGIN;
CALL dwr_merge_batches('bat_many.t', 110);
ROLLBACK;
CALL dwr_merge_batches('bat_many.t', 0);
CALL dwr_merge_batches('bat_many.t', NULL);
CALL dwr_merge_batches('pg_catalog.pg_class');
\set VERBOSITY terse

SELECT dwr_drop_staging('bat_one.t'), dwr_drop_staging('bat_many.t'), dwr_drop_staging('bat_many.c'),
       dwr_drop_staging('bat_many.v');
DROP SCHEMA bat_one, bat_one_staging, bat_many, bat_many_staging CASCADE;

