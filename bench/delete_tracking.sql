-- What delete tracking costs a CDC delete: the same deletes on a table with and without the
-- dwr_record_delete trigger, in one session, three rounds each; medians reported.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS dms_window_reload;
DROP SCHEMA IF EXISTS bench CASCADE;
CREATE SCHEMA bench;
CREATE TABLE bench.result (variant text, round int, rows int, seconds float8);

CREATE FUNCTION bench.round(variant text, tracked boolean, round int, n int) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz; i int;
BEGIN
  DROP TABLE IF EXISTS bench.t;
  CREATE TABLE bench.t (id int PRIMARY KEY, name text, email text, updated_at timestamptz NOT NULL);
  INSERT INTO bench.t SELECT g, 'customer ' || g, 'c' || g || '@example.com', now() FROM generate_series(1, n) g;
  IF tracked THEN
    PERFORM dwr_create_staging('bench.t', 'bench_staging');
  END IF;
  t0 := clock_timestamp();
  IF variant LIKE 'row by row%' THEN
    FOR i IN 1..n LOOP
      DELETE FROM bench.t WHERE id = i;   -- one statement a row, as DMS applies deletes
    END LOOP;
  ELSE
    DELETE FROM bench.t;
  END IF;
  INSERT INTO bench.result VALUES (variant, round, n, extract(epoch FROM clock_timestamp() - t0));
  IF tracked THEN
    PERFORM dwr_drop_staging('bench.t');
  END IF;
END $$;

SELECT bench.round(v.variant, v.tracked, r, :rows)
  FROM generate_series(1, 3) r,
       (VALUES ('row by row, untracked', false), ('row by row, tracked', true),
               ('one statement, untracked', false), ('one statement, tracked', true)) v(variant, tracked);

SELECT variant, rows,
       round((percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) * 1e6 / rows)::numeric, 2) AS median_us_per_delete
  FROM bench.result GROUP BY variant, rows ORDER BY variant DESC;
DROP SCHEMA bench CASCADE;
