-- PostgreSQL 17's MERGE ... RETURNING merge_action() against the INSERT ... ON CONFLICT DO UPDATE
-- ... WHERE newer that the fast way writes production with: the same staged rows (40% newer than
-- production, 20% older, 10% equal, 30% new keys) on fresh copies of production, three rounds
-- each in one session, medians. Both return what each row became (MERGE: merge_action(); the
-- upsert: xmax = 0 for an insert). Neither returns the row as it was before an update (that is
-- PostgreSQL 18's RETURNING old.*), so neither gives the row audit its before image.
-- Run on a PostgreSQL 17 server: psql -v prod=500000 -v staged=100000 -f bench/merge_returning.sql
\set ON_ERROR_STOP 1
\if :{?prod}
\else
\set prod 500000
\endif
\if :{?staged}
\else
\set staged 100000
\endif
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS bench_mr CASCADE;
CREATE SCHEMA bench_mr;
CREATE TABLE bench_mr.base (id int PRIMARY KEY, name text, city text, updated_at timestamptz NOT NULL);
INSERT INTO bench_mr.base SELECT g, 'customer ' || g, 'Oslo', '2025-01-01'::timestamptz + g * interval '1 second'
  FROM generate_series(1, :prod) g;
CREATE TABLE bench_mr.staged AS
SELECT id, 'staged ' || id AS name, 'Lima' AS city,
       CASE WHEN k < 4 THEN '2025-01-01'::timestamptz + id * interval '1 second' + interval '1 hour'
            WHEN k < 6 THEN '2025-01-01'::timestamptz + id * interval '1 second' - interval '1 hour'
            ELSE '2025-01-01'::timestamptz + id * interval '1 second' END AS updated_at
  FROM (SELECT g AS id, g % 10 AS k FROM generate_series(1, (:staged * 0.7)::int) g) s
UNION ALL
SELECT :prod + g, 'new ' || g, 'Lima', '2025-02-01'::timestamptz FROM generate_series(1, (:staged * 0.3)::int) g;
ANALYZE bench_mr.staged;
CREATE TABLE bench_mr.result (variant text, round int, ms float8, inserted bigint, updated bigint);

CREATE FUNCTION bench_mr.run(variant text, round int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz;
    ins bigint;
    upd bigint;
BEGIN
    DROP TABLE IF EXISTS bench_mr.prod;
    CREATE TABLE bench_mr.prod (LIKE bench_mr.base INCLUDING ALL);
    INSERT INTO bench_mr.prod SELECT * FROM bench_mr.base;
    ANALYZE bench_mr.prod;
    t0 := clock_timestamp();
    IF variant = 'INSERT ... ON CONFLICT DO UPDATE ... WHERE newer' THEN
        WITH w AS (
            INSERT INTO bench_mr.prod AS t (id, name, city, updated_at)
            SELECT id, name, city, updated_at FROM bench_mr.staged
            ON CONFLICT (id) DO UPDATE SET name = excluded.name, city = excluded.city, updated_at = excluded.updated_at
            WHERE t.updated_at < excluded.updated_at
            RETURNING (t.xmax = 0) AS inserted)
        SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) INTO ins, upd FROM w;
    ELSE
        WITH w AS (
            MERGE INTO bench_mr.prod AS t USING bench_mr.staged s ON t.id = s.id
            WHEN MATCHED AND t.updated_at < s.updated_at THEN
                UPDATE SET name = s.name, city = s.city, updated_at = s.updated_at
            WHEN NOT MATCHED THEN
                INSERT (id, name, city, updated_at) VALUES (s.id, s.name, s.city, s.updated_at)
            RETURNING merge_action() AS action)
        SELECT count(*) FILTER (WHERE action = 'INSERT'), count(*) FILTER (WHERE action = 'UPDATE') INTO ins, upd FROM w;
    END IF;
    INSERT INTO bench_mr.result VALUES (variant, round,
        1000 * extract(epoch FROM clock_timestamp() - t0), ins, upd);
END $$;

SELECT bench_mr.run(v, r)
  FROM generate_series(1, 3) r,
       unnest(ARRAY['INSERT ... ON CONFLICT DO UPDATE ... WHERE newer', 'MERGE ... RETURNING merge_action()']) v;

SELECT variant, round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric) AS median_ms,
       min(inserted) AS inserted, min(updated) AS updated
  FROM bench_mr.result GROUP BY variant ORDER BY variant;
SELECT round((percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) FILTER (WHERE variant LIKE 'MERGE%')
            / percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) FILTER (WHERE variant LIKE 'INSERT%'))::numeric, 2)
       AS merge_over_upsert
  FROM bench_mr.result;
DROP SCHEMA bench_mr CASCADE;
