-- Citus: CALL dwr_merge_batches on a distributed table, every batch pushed down to the shards like
-- dwr_merge, ends exactly where one dwr_merge of an identical copy ends (the data of 19_batches:
-- newer, older, equal, new keys, a NULL version, a row production refuses).
\set SHOW_CONTEXT never
SET citus.shard_count = 4;
CREATE EXTENSION dms_window_reload;
-- run ids from 3001 on (the progress names runs)
SELECT setval('dwr.merge_runs_run_id_seq', 3000) AS last_run_id_before;
-- (the data of pg_test/fixtures/batches_setup.sql, statement by statement: Citus distributes a
-- table and creates schemas on every node in transactions of their own)
CREATE SCHEMA bat_one;
CREATE SCHEMA bat_many;
CREATE TABLE bat_one.t (id int PRIMARY KEY, val text, qty int CHECK (qty >= 0), updated_at timestamptz NOT NULL);
CREATE TABLE bat_many.t (LIKE bat_one.t INCLUDING ALL);
SELECT create_distributed_table('bat_one.t', 'id'), create_distributed_table('bat_many.t', 'id', colocate_with => 'bat_one.t');
INSERT INTO bat_one.t SELECT g, 'prod ' || g, 1, '2025-01-01'::timestamptz + g * interval '1 minute' FROM generate_series(1, 1000) g;
INSERT INTO bat_many.t SELECT * FROM bat_one.t;
SELECT dwr_create_staging('bat_one.t', 'bat_one_staging');
SELECT dwr_create_staging('bat_many.t', 'bat_many_staging');
INSERT INTO bat_one_staging.t (id, val, qty, updated_at)
  -- two rows production refuses (qty -1 breaks the CHECK): an update (772) and an insert (1201)
  SELECT g, 'staged ' || g, CASE WHEN g IN (772, 1201) THEN -1 ELSE 2 END,
         CASE WHEN g % 10 = 3 THEN NULL
              WHEN g % 4 = 0 THEN '2025-01-01'::timestamptz + g * interval '1 minute' + interval '1 hour'
              WHEN g % 4 = 1 THEN '2025-01-01'::timestamptz + g * interval '1 minute' - interval '1 hour'
              WHEN g % 4 = 2 THEN '2025-01-01'::timestamptz + g * interval '1 minute'
              ELSE '2025-01-01'::timestamptz + g * interval '1 minute' + interval '2 hours' END
    FROM generate_series(1, 1600, 3) g;
INSERT INTO bat_many_staging.t (id, val, qty, updated_at) SELECT id, val, qty, updated_at FROM bat_one_staging.t;
SELECT logicalrelid, partmethod FROM pg_dist_partition WHERE logicalrelid::text LIKE 'bat_%' AND logicalrelid::text NOT LIKE '%._dwr%' ORDER BY 1::text;
SELECT inserted, updated, unchanged, skipped_stale, errors FROM dwr_merge('bat_one.t');
CALL dwr_merge_batches('bat_many.t', 110);
-- the same production rows, the same statuses and errors
SELECT count(*) AS differing_rows FROM (
  (SELECT * FROM bat_one.t EXCEPT SELECT * FROM bat_many.t)
  UNION ALL (SELECT * FROM bat_many.t EXCEPT SELECT * FROM bat_one.t)) d;
-- (a worker names the shard in a message, t_102008: the two tables' shards differ, their messages
-- otherwise do not)
SELECT count(*) AS differing_statuses FROM (
  (SELECT id, _dwr_status, regexp_replace(_dwr_error, '_[0-9]{4,}', '_<shard>', 'g') FROM bat_one_staging.t EXCEPT SELECT id, _dwr_status, regexp_replace(_dwr_error, '_[0-9]{4,}', '_<shard>', 'g') FROM bat_many_staging.t)
  UNION ALL (SELECT id, _dwr_status, regexp_replace(_dwr_error, '_[0-9]{4,}', '_<shard>', 'g') FROM bat_many_staging.t EXCEPT SELECT id, _dwr_status, regexp_replace(_dwr_error, '_[0-9]{4,}', '_<shard>', 'g') FROM bat_one_staging.t)) d;
-- the rows production refused, with the server's message
SELECT id, _dwr_status, regexp_replace(_dwr_error, '_[0-9]{4,}', '_<shard>', 'g') AS error FROM bat_many_staging.t
 WHERE _dwr_error NOT LIKE '%version%' ORDER BY id;
SELECT _dwr_status, count(*) FROM bat_many_staging.t GROUP BY 1 ORDER BY 1;
-- one merge run a batch
SELECT status, count(*), sum(inserted) AS inserted, sum(updated) AS updated
  FROM dwr.merge_runs WHERE target = 'bat_many.t'::regclass GROUP BY status ORDER BY status;
-- with a stall budget, as on a single server
UPDATE bat_many_staging.t SET _dwr_status = 'NEW', _dwr_run_id = NULL, _dwr_error = NULL;
SET client_min_messages = warning;
CALL dwr_merge_batches('bat_many.t', batch_size => 20, max_stall => interval '50 ms');
RESET client_min_messages;
SELECT _dwr_status, count(*) FROM bat_many_staging.t GROUP BY 1 ORDER BY 1;
SELECT dwr_drop_staging('bat_one.t'), dwr_drop_staging('bat_many.t');
DROP SCHEMA bat_one, bat_one_staging, bat_many, bat_many_staging CASCADE;
DROP EXTENSION dms_window_reload;
