-- Shared by the benchmarks. bench.timed(variant, round, sql) runs sql and records its duration in
-- bench.result; bench.prepare(prod, staged) builds bench.customers with `prod` rows of
-- the seed's customers shape, registers it, and stages `staged` rows: 40% newer than production, 20%
-- older, 10% equal, 30% new keys; with `distributed` (on a Citus coordinator) bench.customers is
-- a distributed table (citus.shard_count shards) and staging is co-located with it.
-- Included with \ir after schema bench exists.
CREATE FUNCTION bench.prepare(prod int, staged int, distributed boolean DEFAULT false) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF to_regclass('bench.customers') IS NOT NULL THEN
    PERFORM dwr_drop_staging('bench.customers');
    DROP TABLE bench.customers;
  END IF;
  CREATE TABLE bench.customers (customer_id int PRIMARY KEY, name varchar(100) NOT NULL, email text,
                                city text, updated_at timestamptz NOT NULL);
  IF distributed THEN
    -- Citus: its DDL (distributing, and staging's) before the transaction writes the shards
    PERFORM create_distributed_table('bench.customers', 'customer_id');
    PERFORM dwr_create_staging('bench.customers', 'bench_staging');
  END IF;
  INSERT INTO bench.customers
  SELECT g, 'customer ' || g, 'c' || g || '@example.com', 'city ' || (g % 100),
         '2025-01-01'::timestamptz + g * interval '1 second'
    FROM generate_series(1, prod) g;
  IF NOT distributed THEN
    PERFORM dwr_create_staging('bench.customers', 'bench_staging');
  END IF;
  INSERT INTO bench_staging.customers (customer_id, name, email, city, updated_at)
  SELECT k, 'staged ' || k, 's' || k || '@example.com', 'city ' || (k % 100),
         CASE WHEN i <= staged * 0.4 THEN '2025-01-01'::timestamptz + k * interval '1 second' + interval '1 hour'
              WHEN i <= staged * 0.6 THEN '2025-01-01'::timestamptz + k * interval '1 second' - interval '1 hour'
              WHEN i <= staged * 0.7 THEN '2025-01-01'::timestamptz + k * interval '1 second'
              ELSE '2025-06-01'::timestamptz END
    FROM (SELECT i, CASE WHEN i <= staged * 0.7 THEN (i * (prod / (staged * 0.7)::int))::int ELSE prod + i END AS k
            FROM generate_series(1, staged) i) s;
  ANALYZE bench.customers;
  ANALYZE bench_staging.customers;
END $$;

CREATE FUNCTION bench.timed(variant text, round int, sql text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz;
BEGIN
  t0 := clock_timestamp();
  EXECUTE sql;
  INSERT INTO bench.result VALUES (variant, round, extract(epoch FROM clock_timestamp() - t0));
END $$;
