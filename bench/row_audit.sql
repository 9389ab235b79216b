-- What the row audit costs a merge: dwr_merge of the same data with dwr.row_audit off and on, on
-- fresh copies, three rounds each in one session; medians reported. Sizes: :prod production rows,
-- :staged staged rows (40% newer than production, 20% older, 10% equal, 30% new keys).
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS dms_window_reload;
DROP SCHEMA IF EXISTS bench CASCADE;
DROP SCHEMA IF EXISTS bench_staging CASCADE;
CREATE SCHEMA bench;
CREATE TABLE bench.result (variant text, round int, seconds float8);

CREATE FUNCTION bench.prepare(prod int, staged int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF to_regclass('bench.customers') IS NOT NULL THEN
    PERFORM dwr_drop_staging('bench.customers');
    DROP TABLE bench.customers;
  END IF;
  CREATE TABLE bench.customers (customer_id int PRIMARY KEY, name varchar(100) NOT NULL, email text,
                                city text, updated_at timestamptz NOT NULL);
  INSERT INTO bench.customers
  SELECT g, 'customer ' || g, 'c' || g || '@example.com', 'city ' || (g % 100), '2025-01-01'::timestamptz + g * interval '1 second'
    FROM generate_series(1, prod) g;
  ANALYZE bench.customers;
  PERFORM dwr_create_staging('bench.customers', 'bench_staging');
  -- staged rows: keys spread over production, then new keys
  INSERT INTO bench_staging.customers (customer_id, name, email, city, updated_at)
  SELECT k, 'staged ' || k, 's' || k || '@example.com', 'city ' || (k % 100),
         CASE WHEN i <= staged * 0.4 THEN '2025-01-01'::timestamptz + k * interval '1 second' + interval '1 hour'
              WHEN i <= staged * 0.6 THEN '2025-01-01'::timestamptz + k * interval '1 second' - interval '1 hour'
              WHEN i <= staged * 0.7 THEN '2025-01-01'::timestamptz + k * interval '1 second'
              ELSE '2025-06-01'::timestamptz END
    FROM (SELECT i, CASE WHEN i <= staged * 0.7 THEN (i * (prod / (staged * 0.7)::int))::int ELSE prod + i END AS k
            FROM generate_series(1, staged) i) s;
  ANALYZE bench_staging.customers;
END $$;

CREATE FUNCTION bench.timed_merge(variant text, round int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz;
BEGIN
  t0 := clock_timestamp();
  PERFORM dwr_merge('bench.customers');
  INSERT INTO bench.result VALUES (variant, round, extract(epoch FROM clock_timestamp() - t0));
END $$;

SELECT bench.prepare(:prod, :staged);
SET dwr.row_audit = off;
SELECT bench.timed_merge('row audit off', 1);
SELECT bench.prepare(:prod, :staged);
SET dwr.row_audit = on;
SELECT bench.timed_merge('row audit on', 1);
SELECT bench.prepare(:prod, :staged);
SET dwr.row_audit = off;
SELECT bench.timed_merge('row audit off', 2);
SELECT bench.prepare(:prod, :staged);
SET dwr.row_audit = on;
SELECT bench.timed_merge('row audit on', 2);
SELECT bench.prepare(:prod, :staged);
SET dwr.row_audit = off;
SELECT bench.timed_merge('row audit off', 3);
SELECT bench.prepare(:prod, :staged);
SET dwr.row_audit = on;
SELECT bench.timed_merge('row audit on', 3);

SELECT variant, round(percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds)::numeric, 3) AS median_seconds,
       round((percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds)
              / (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) FROM bench.result
                  WHERE variant = 'row audit off'))::numeric, 2) AS ratio_to_off
  FROM bench.result GROUP BY variant ORDER BY variant;
SELECT dwr_drop_staging('bench.customers');
DROP SCHEMA bench CASCADE;
