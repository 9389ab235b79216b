-- The merge against what operators write by hand, on fresh copies of the same data, in one
-- session, three rounds each; medians and ratios reported. Sizes: :prod production rows, :staged
-- staged rows (40% newer than production, 20% older, 10% equal, 30% new keys), the seed's
-- customers columns. Run: psql -v prod=1000000 -v staged=200000 -f bench/merge.sql
-- The pg_tle package (README, "Managed PostgreSQL"): in a database where dms_window_reload_tle is
-- installed, as its owner, with DWR_TLE_SYNC='dwr tle install --quiet <connection string>' in the
-- environment (run once bench.customers is registered, to generate its merge).
-- Citus (README, "Citus"): on a coordinator, with -v distributed=true, bench.customers is a
-- distributed table and every variant runs on its shards; bench/citus.sh runs both on a local
-- three-node cluster.
\set ON_ERROR_STOP 1
\if :{?distributed}
\else
\set distributed false
\endif
SET client_min_messages = warning;
SELECT NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'dms_window_reload_tle') AS compiled \gset
\if :compiled
CREATE EXTENSION IF NOT EXISTS dms_window_reload;
\endif
SELECT extname AS merging_with, extversion FROM pg_extension WHERE extname LIKE 'dms_window_reload%';
DROP SCHEMA IF EXISTS bench CASCADE;
DROP SCHEMA IF EXISTS bench_staging CASCADE;
CREATE SCHEMA bench;
-- (made here, not by dwr_create_staging: Citus refuses a schema command in a transaction that
-- already distributed a table)
CREATE SCHEMA bench_staging;
CREATE TABLE bench.result (variant text, round int, seconds float8);

\ir prepare.sql
-- the pg_tle package generates the merge of bench.customers once it is registered (each round makes
-- the table anew, with the same columns: the generated merge stays valid)
SELECT bench.prepare(10, 5, :distributed);
\! ${DWR_TLE_SYNC:-true}


-- the hand-written merges with row images write them here, as dwr.row_changes is shaped (and
-- with the least row audit, one text image)
CREATE TABLE bench.images (run_id int8 NOT NULL, action text NOT NULL, key jsonb NOT NULL, before jsonb, after jsonb);
CREATE INDEX ON bench.images (run_id);
CREATE TABLE bench.text_images (run_id int8 NOT NULL, action text NOT NULL, key text NOT NULL, before text);
CREATE INDEX ON bench.text_images (run_id);
-- a written row's before image: 18's RETURNING old; before 18 the rows to update, read first
SELECT current_setting('server_version_num')::int >= 180000 AS old_in_returning \gset
\if :old_in_returning
\set read_before ''
\set join_before ''
\set before_row 'old'
\else
\set read_before 'CREATE TEMP TABLE b ON COMMIT DROP AS SELECT p.* FROM bench.customers p JOIN bench_staging.customers s ON s.customer_id = p.customer_id WHERE s.updated_at > p.updated_at;'
\set join_before 'JOIN b ON b.customer_id = s.customer_id'
\set before_row 'b'
\endif

CREATE TABLE bench.variants (ord int, variant text, audit boolean, sql text);
INSERT INTO bench.variants VALUES
 (1, 'seed procedure', false, $q$
  UPDATE bench.customers p SET name = s.name, email = s.email, city = s.city, updated_at = s.updated_at
    FROM bench_staging.customers s WHERE s.customer_id = p.customer_id AND s.updated_at > p.updated_at;
  INSERT INTO bench.customers (customer_id, name, email, city, updated_at)
  SELECT s.customer_id, s.name, s.email, s.city, s.updated_at FROM bench_staging.customers s
   WHERE NOT EXISTS (SELECT 1 FROM bench.customers p WHERE p.customer_id = s.customer_id);
  UPDATE bench_staging.customers SET _dwr_status = 'PROCESSED'$q$),
 (2, 'INSERT ON CONFLICT + marking', false, $q$
  INSERT INTO bench.customers AS p (customer_id, name, email, city, updated_at)
  SELECT customer_id, name, email, city, updated_at FROM bench_staging.customers
  ON CONFLICT (customer_id) DO UPDATE SET name = EXCLUDED.name, email = EXCLUDED.email, city = EXCLUDED.city,
     updated_at = EXCLUDED.updated_at WHERE p.updated_at < EXCLUDED.updated_at;
  UPDATE bench_staging.customers SET _dwr_status = 'PROCESSED'$q$),
 (3, 'MERGE + marking', false, $q$
  MERGE INTO bench.customers p USING bench_staging.customers s ON p.customer_id = s.customer_id
  WHEN MATCHED AND p.updated_at < s.updated_at THEN
    UPDATE SET name = s.name, email = s.email, city = s.city, updated_at = s.updated_at
  WHEN NOT MATCHED THEN INSERT (customer_id, name, email, city, updated_at)
    VALUES (s.customer_id, s.name, s.email, s.city, s.updated_at);
  UPDATE bench_staging.customers SET _dwr_status = 'PROCESSED'$q$),
 (4, 'bare upsert (no marking)', false, $q$
  INSERT INTO bench.customers AS p (customer_id, name, email, city, updated_at)
  SELECT customer_id, name, email, city, updated_at FROM bench_staging.customers
  ON CONFLICT (customer_id) DO UPDATE SET name = EXCLUDED.name, email = EXCLUDED.email, city = EXCLUDED.city,
     updated_at = EXCLUDED.updated_at WHERE p.updated_at < EXCLUDED.updated_at$q$),
 -- the least a merge that keeps the contract's per-row statuses does on this data (no window,
 -- tombstones, duplicates, NULLs, rejected rows or rows CDC holds: there are none): the seed
 -- procedure's two writes, then every staged row's status from production's version (equal after
 -- the writes: PROCESSED; newer: SKIPPED, stale). Without that read of production no merge tells a
 -- stale row from an unchanged one.
 (5, 'hand-written merge with per-row statuses', false, $q$
  UPDATE bench.customers p SET name = s.name, email = s.email, city = s.city, updated_at = s.updated_at
    FROM bench_staging.customers s WHERE s.customer_id = p.customer_id AND s.updated_at > p.updated_at;
  INSERT INTO bench.customers (customer_id, name, email, city, updated_at)
  SELECT s.customer_id, s.name, s.email, s.city, s.updated_at FROM bench_staging.customers s
   WHERE NOT EXISTS (SELECT 1 FROM bench.customers p WHERE p.customer_id = s.customer_id);
  UPDATE bench_staging.customers s
     SET _dwr_status = CASE WHEN p.updated_at > s.updated_at THEN 'SKIPPED' ELSE 'PROCESSED' END, _dwr_run_id = 1
    FROM bench.customers p WHERE p.customer_id = s.customer_id$q$),
 -- the same with both images of every written row as jsonb in a logged table (bench.images),
 -- written by the caller in the statements that write production
 (6, 'hand-written merge with per-row statuses and row images', true, format($q$
  TRUNCATE bench.images;
  %s
  WITH u AS (UPDATE bench.customers p SET name = s.name, email = s.email, city = s.city, updated_at = s.updated_at
    FROM bench_staging.customers s %s WHERE s.customer_id = p.customer_id AND s.updated_at > p.updated_at
    RETURNING p.customer_id, to_jsonb(%s.*) AS before, to_jsonb(p.*) AS after)
  INSERT INTO bench.images SELECT 1, 'update', jsonb_build_object('customer_id', u.customer_id), u.before, u.after FROM u;
  WITH i AS (INSERT INTO bench.customers AS p (customer_id, name, email, city, updated_at)
  SELECT s.customer_id, s.name, s.email, s.city, s.updated_at FROM bench_staging.customers s
   WHERE NOT EXISTS (SELECT 1 FROM bench.customers p WHERE p.customer_id = s.customer_id)
   RETURNING p.customer_id, to_jsonb(p.*) AS after)
  INSERT INTO bench.images SELECT 1, 'insert', jsonb_build_object('customer_id', i.customer_id), NULL, i.after FROM i;
  UPDATE bench_staging.customers s
     SET _dwr_status = CASE WHEN p.updated_at > s.updated_at THEN 'SKIPPED' ELSE 'PROCESSED' END, _dwr_run_id = 1
    FROM bench.customers p WHERE p.customer_id = s.customer_id$q$,
  :'read_before', :'join_before', :'before_row')),
 -- the least any row audit keeps: one image per updated row (its before image, the row's text
 -- form), none for inserts
 (7, 'hand-written merge with per-row statuses and the least row audit', true, format($q$
  TRUNCATE bench.text_images;
  %s
  WITH u AS (UPDATE bench.customers p SET name = s.name, email = s.email, city = s.city, updated_at = s.updated_at
    FROM bench_staging.customers s %s WHERE s.customer_id = p.customer_id AND s.updated_at > p.updated_at
    RETURNING p.customer_id, %s::text AS before)
  INSERT INTO bench.text_images SELECT 1, 'update', u.customer_id::text, u.before FROM u;
  INSERT INTO bench.customers (customer_id, name, email, city, updated_at)
  SELECT s.customer_id, s.name, s.email, s.city, s.updated_at FROM bench_staging.customers s
   WHERE NOT EXISTS (SELECT 1 FROM bench.customers p WHERE p.customer_id = s.customer_id);
  UPDATE bench_staging.customers s
     SET _dwr_status = CASE WHEN p.updated_at > s.updated_at THEN 'SKIPPED' ELSE 'PROCESSED' END, _dwr_run_id = 1
    FROM bench.customers p WHERE p.customer_id = s.customer_id$q$, :'read_before', :'join_before', :'before_row')),
 (8, 'dwr_merge, row audit off', false, $q$SELECT dwr_merge('bench.customers')$q$),
 (9, 'dwr_merge, row audit on', true, $q$SELECT dwr_merge('bench.customers')$q$),
 -- the same merges trying the fast way first (dwr.fast_merge on; off by default)
 (10, 'dwr_merge, row audit off, fast way', false,
  $q$SET dwr.fast_merge = on; SELECT dwr_merge('bench.customers'); RESET dwr.fast_merge$q$),
 (11, 'dwr_merge, row audit on, fast way', true,
  $q$SET dwr.fast_merge = on; SELECT dwr_merge('bench.customers'); RESET dwr.fast_merge$q$);
-- Citus: the hand-written merges with row images would bring every image to the coordinator
\if :distributed
DELETE FROM bench.variants WHERE ord IN (6, 7);
\endif

-- each round: every variant on a fresh copy (prepare commits before the timed statement)
SELECT format('SELECT bench.prepare(%s, %s, %L);' || E'\n' || 'SET dwr.row_audit = %s;' || E'\n' ||
              'SELECT bench.timed(%L, %s, %L);', :prod, :staged, :distributed, v.audit, v.variant, r, v.sql)
  FROM generate_series(1, 3) r, bench.variants v ORDER BY r, v.ord \gexec

WITH m AS (
  SELECT v.ord, r.variant, percentile_cont(0.5) WITHIN GROUP (ORDER BY r.seconds) AS median
    FROM bench.result r JOIN bench.variants v USING (variant) GROUP BY v.ord, r.variant)
SELECT variant, round(median::numeric, 2) AS median_seconds,
       round((median / (SELECT median FROM m WHERE ord = 1))::numeric, 2) AS ratio_to_seed,
       round((median / (SELECT median FROM m WHERE ord = 4))::numeric, 2) AS ratio_to_bare_upsert
  FROM m ORDER BY ord;
SELECT dwr_drop_staging('bench.customers');
DROP SCHEMA bench CASCADE;
