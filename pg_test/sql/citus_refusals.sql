-- Citus (a coordinator and two workers, pg_test/run-all): what the extension refuses on a Citus
-- coordinator, up front and with a clear error, rather than doing something weaker. Distributed
-- and reference tables merge on their shards (citus_merge); plain tables on the coordinator merge
-- as on a single server.
SELECT nodeport = current_setting('port')::int AS coordinator, noderole, shouldhaveshards
  FROM pg_dist_node ORDER BY nodeport;
CREATE EXTENSION dms_window_reload;
-- the extension is on the workers too (Citus propagates CREATE EXTENSION)
SELECT success, result FROM run_command_on_workers(
  $$SELECT extversion FROM pg_extension WHERE extname = 'dms_window_reload'$$) ORDER BY nodeport;

CREATE SCHEMA production;
CREATE TABLE production.customers (customer_id int PRIMARY KEY, name text NOT NULL, updated_at timestamptz NOT NULL);
CREATE TABLE production.notes (note_id int PRIMARY KEY, body text NOT NULL, updated_at timestamptz NOT NULL);
CREATE TABLE production.locals (id int PRIMARY KEY, updated_at timestamptz NOT NULL);
SELECT create_distributed_table('production.customers', 'customer_id');
SELECT citus_add_local_table_to_metadata('production.locals');
CREATE TABLE production.replicated (id int PRIMARY KEY, updated_at timestamptz NOT NULL);
SET citus.shard_replication_factor = 2;
SELECT create_distributed_table('production.replicated', 'id');
RESET citus.shard_replication_factor;
INSERT INTO production.customers VALUES (1, 'Alice', '2025-01-10'), (2, 'Bob', '2025-01-10');
INSERT INTO production.notes VALUES (1, 'old', '2025-01-10');

\set VERBOSITY default
-- a Citus local table: refused before anything is created or installed
SELECT dwr_create_staging('production.locals');
-- and a distributed table whose shards have two copies (each with its own row versions)
SELECT dwr_create_staging('production.replicated');
SELECT count(*) AS staging_schemas FROM pg_namespace WHERE nspname = 'staging';

-- a plain table on the coordinator: staging, delete tracking, merge and audit as on one server
SELECT dwr_create_staging('production.notes');
INSERT INTO staging.notes (note_id, body, updated_at) VALUES (1, 'new', '2025-01-11'), (2, 'added', '2025-01-11');
SELECT status, inserted, updated FROM dwr_merge('production.notes');
TABLE production.notes ORDER BY note_id;
SELECT action, key FROM dwr.row_changes ORDER BY key;
-- its staging made a reference table behind the merge's back: refused at the next merge
INSERT INTO staging.notes (note_id, body, updated_at) VALUES (3, 'later', '2025-01-12');
SELECT create_reference_table('staging.notes');
SELECT status FROM dwr_merge('production.notes');
SELECT count(*) AS still_new FROM staging.notes WHERE _dwr_status = 'NEW';

-- a distributed table merges (and undoes) on its shards (citus_merge; batches: citus_batches;
-- from a source table: citus_source)
SELECT dwr_create_staging('production.customers');
INSERT INTO staging.customers (customer_id, name, updated_at) VALUES (1, 'Alicia', '2025-01-11');
SELECT status, updated FROM dwr_merge('production.customers');
SELECT dwr_create_staging('production.customers'); -- again: keeps staging, re-installs the trigger
\set VERBOSITY terse
SELECT dwr_drop_staging('production.notes');
SELECT dwr_drop_staging('production.customers');
SELECT count(*) AS citus_tables_left FROM pg_dist_partition WHERE logicalrelid::text LIKE 'staging.%';
DROP SCHEMA production CASCADE;
DROP EXTENSION dms_window_reload;
