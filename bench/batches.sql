-- Batched merges against the single merge, on fresh copies of the same data, in one session,
-- three rounds each (the variants alternate within a round); medians and the ratio to the single
-- merge reported. Sizes: :prod production rows, :staged staged rows (bench/prepare.sql: 40% newer
-- than production, 20% older, 10% equal, 30% new keys), row audit on (the default). A batch's
-- duration is the longest a CDC write to a row it wrote can wait; bench/cdc_latency.sh measures the
-- waits themselves, with CDC running.
--   psql -v prod=1000000 -v staged=200000 -f bench/batches.sql
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS dms_window_reload;
DROP SCHEMA IF EXISTS bench CASCADE;
DROP SCHEMA IF EXISTS bench_staging CASCADE;
CREATE SCHEMA bench;
CREATE SCHEMA bench_staging;
CREATE TABLE bench.result (variant text, round int, seconds float8, runs int);
\ir prepare.sql

CREATE TABLE bench.variants (ord int, variant text, sql text);
INSERT INTO bench.variants VALUES
 (1, 'dwr_merge', $q$SELECT count(*) FROM dwr_merge('bench.customers')$q$),
 (2, 'dwr_merge_batches(10000)', $q$CALL dwr_merge_batches('bench.customers', 10000)$q$),
 (3, 'dwr_merge_batches(max_stall => 100 ms)',
  $q$CALL dwr_merge_batches('bench.customers', batch_size => NULL, max_stall => interval '100 ms')$q$);

-- each variant on a fresh copy; every cell of a row is its own top-level statement (\gexec), so
-- that the batches can commit: prepare, note the time, merge, record the time and the merge runs
\o /dev/null
SELECT format('SELECT bench.prepare(%s, %s)', :prod, :staged),
       $t$SELECT pg_catalog.set_config('bench.t0', pg_catalog.clock_timestamp()::text, false),
                 pg_catalog.set_config('bench.first_run', (SELECT COALESCE(max(run_id), 0) FROM dwr.merge_runs)::text, false)$t$,
       v.sql,
       format($r$INSERT INTO bench.result SELECT %L, %s,
                  extract(epoch FROM clock_timestamp() - current_setting('bench.t0')::timestamptz),
                  (SELECT count(*) FROM dwr.merge_runs WHERE run_id > current_setting('bench.first_run')::bigint)$r$,
              v.variant, r)
  FROM generate_series(1, 3) r, bench.variants v ORDER BY r, v.ord \gexec
\o

WITH m AS (
  SELECT v.ord, r.variant, percentile_cont(0.5) WITHIN GROUP (ORDER BY r.seconds) AS median,
         round(avg(r.runs)) AS merge_runs
    FROM bench.result r JOIN bench.variants v USING (variant) GROUP BY v.ord, r.variant)
SELECT variant, merge_runs, round(median::numeric, 2) AS median_seconds,
       round((median / (SELECT median FROM m WHERE ord = 1))::numeric, 2) AS ratio_to_dwr_merge
  FROM m ORDER BY ord;
\o /dev/null
SELECT dwr_drop_staging('bench.customers');
DROP SCHEMA bench CASCADE;
\o
