-- dwr_diff_summary against the plain SQL an operator would write (a FULL OUTER JOIN with
-- IS DISTINCT FROM), on the same data in one session, three rounds each; medians reported.
-- Sizes: :prod production rows, :staged staged rows (40% newer, 20% older, 10% equal, 30% new).
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS dms_window_reload;
DROP SCHEMA IF EXISTS bench CASCADE;
DROP SCHEMA IF EXISTS bench_staging CASCADE;
CREATE SCHEMA bench;
CREATE TABLE bench.result (variant text, round int, seconds float8);
\ir prepare.sql
SELECT bench.prepare(:prod, :staged);
VACUUM ANALYZE bench.customers;
VACUUM ANALYZE bench_staging.customers;


SELECT bench.timed(v.variant, r, v.sql)
  FROM generate_series(1, 3) r,
       (VALUES ('dwr_diff_summary', 'SELECT count(*) FROM dwr_diff_summary(''bench.customers'')'),
               ('plain FULL OUTER JOIN', $q$
SELECT CASE WHEN p.customer_id IS NULL THEN 'missing_in_production'
            WHEN s.customer_id IS NULL THEN 'missing_in_staging'
            WHEN p.updated_at < s.updated_at THEN 'older_in_production'
            WHEN p.updated_at > s.updated_at THEN 'newer_in_production'
            ELSE 'same_version_other_content' END, count(*)
  FROM bench_staging.customers s FULL OUTER JOIN bench.customers p ON p.customer_id = s.customer_id
 WHERE (p.customer_id, p.name, p.email, p.city, p.updated_at) IS DISTINCT FROM
       (s.customer_id, s.name, s.email, s.city, s.updated_at)
 GROUP BY 1$q$)) v(variant, sql)
 ORDER BY r, v.variant;

SELECT variant, round(percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds)::numeric, 3) AS median_seconds,
       round((percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds)
              / (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) FROM bench.result
                  WHERE variant = 'plain FULL OUTER JOIN'))::numeric, 2) AS ratio_to_plain
  FROM bench.result GROUP BY variant ORDER BY variant;
SELECT * FROM dwr_diff_summary('bench.customers');
SELECT dwr_drop_staging('bench.customers');
DROP SCHEMA bench CASCADE;
