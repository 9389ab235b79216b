-- Citus (a coordinator and two workers, pg_test/run-all): what this version does on a Citus
-- coordinator. Tables Citus does not manage merge as on a single server; distributed, reference and
-- Citus local tables are refused up front with 0A000 (the merge's temporary work table lives on
-- the coordinator, where the workers holding the shards cannot see it), never half-way.
SELECT nodeport = current_setting('port')::int AS coordinator, noderole, shouldhaveshards
  FROM pg_dist_node ORDER BY nodeport;
CREATE EXTENSION dms_window_reload;
-- the extension is on the workers too (Citus propagates CREATE EXTENSION)
SELECT success, result FROM run_command_on_workers(
  $$SELECT extversion FROM pg_extension WHERE extname = 'dms_window_reload'$$) ORDER BY nodeport;

CREATE SCHEMA production;
CREATE TABLE production.customers (customer_id int PRIMARY KEY, name text NOT NULL, updated_at timestamptz NOT NULL);
CREATE TABLE production.regions (region_id int PRIMARY KEY, name text NOT NULL, updated_at timestamptz NOT NULL);
CREATE TABLE production.notes (note_id int PRIMARY KEY, body text NOT NULL, updated_at timestamptz NOT NULL);
SELECT create_distributed_table('production.customers', 'customer_id');
SELECT create_reference_table('production.regions');
INSERT INTO production.customers VALUES (1, 'Alice', '2025-01-10'), (2, 'Bob', '2025-01-10');
INSERT INTO production.notes VALUES (1, 'old', '2025-01-10');

\set VERBOSITY default
-- a distributed or reference table: refused before anything is created or installed
SELECT dwr_create_staging('production.customers');
SELECT dwr_create_staging('production.regions');
SELECT count(*) AS staging_schemas FROM pg_namespace WHERE nspname = 'staging';
SELECT count(*) AS triggers FROM pg_trigger WHERE tgrelid = 'production.customers'::regclass AND NOT tgisinternal;

-- a plain table on the coordinator: staging, delete tracking, merge and audit as on one server
SELECT dwr_create_staging('production.notes');
INSERT INTO staging.notes (note_id, body, updated_at) VALUES (1, 'new', '2025-01-11'), (2, 'added', '2025-01-11');
SELECT status, inserted, updated FROM dwr_merge('production.notes');
TABLE production.notes ORDER BY note_id;
SELECT action, key FROM dwr.row_changes ORDER BY key;

-- a registered table distributed afterwards is refused at the next merge, and so is staging
-- distributed behind the merge's back
INSERT INTO staging.notes (note_id, body, updated_at) VALUES (3, 'later', '2025-01-12');
SELECT create_reference_table('staging.notes');
SELECT status FROM dwr_merge('production.notes');
SELECT count(*) AS still_new FROM staging.notes WHERE _dwr_status = 'NEW';
\set VERBOSITY terse
SELECT dwr_drop_staging('production.notes');
DROP SCHEMA production CASCADE;
DROP EXTENSION dms_window_reload;
