-- Time per staged row as staging grows: dwr_merge (row audit off) and the bare upsert next to it,
-- on fresh copies, medians of three rounds per size, production fixed at :prod rows.
-- Run: psql -v prod=1000000 -f bench/scaling.sql   (sizes: 100k, 200k, 400k, 800k staged rows)
-- Other sizes: -v sizes=100000,1000000 (ten times the rows); the same sizes with another :prod
-- show what production's size costs.
\set ON_ERROR_STOP 1
\if :{?sizes}
\else
\set sizes 100000,200000,400000,800000
\endif
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS dms_window_reload;
DROP SCHEMA IF EXISTS bench CASCADE;
DROP SCHEMA IF EXISTS bench_staging CASCADE;
CREATE SCHEMA bench;
CREATE TABLE bench.result (variant text, round int, seconds float8);

\ir prepare.sql

SET dwr.row_audit = off;
SELECT format('SELECT bench.prepare(%s, %s);' || E'\n' || 'SELECT bench.timed(%L, %s, %L);',
              :prod, m, v.name || ' ' || m, r, v.sql)
  FROM unnest(string_to_array(:'sizes', ',')::int[]) m, generate_series(1, 3) r,
       (VALUES (1, 'dwr_merge', $q$SELECT dwr_merge('bench.customers')$q$),
               (2, 'bare upsert', $q$
  INSERT INTO bench.customers AS p (customer_id, name, email, city, updated_at)
  SELECT customer_id, name, email, city, updated_at FROM bench_staging.customers
  ON CONFLICT (customer_id) DO UPDATE SET name = EXCLUDED.name, email = EXCLUDED.email, city = EXCLUDED.city,
     updated_at = EXCLUDED.updated_at WHERE p.updated_at < EXCLUDED.updated_at$q$)) v(ord, name, sql)
 ORDER BY m, r, v.ord \gexec

WITH m AS (
  SELECT split_part(variant, ' ', -1)::int AS staged, regexp_replace(variant, ' [0-9]+$', '') AS variant,
         percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) AS median
    FROM bench.result GROUP BY 1, 2)
SELECT :prod AS production, d.staged, round(d.median::numeric, 2) AS dwr_merge_s,
       round((d.median * 1e6 / d.staged)::numeric, 2) AS dwr_merge_us_per_row,
       round((u.median * 1e6 / u.staged)::numeric, 2) AS bare_upsert_us_per_row,
       round((d.median / u.median)::numeric, 2) AS ratio_to_bare_upsert
  FROM m d JOIN m u ON u.staged = d.staged AND u.variant = 'bare upsert'
 WHERE d.variant = 'dwr_merge' ORDER BY d.staged;
SELECT dwr_drop_staging('bench.customers');
DROP SCHEMA bench CASCADE;
