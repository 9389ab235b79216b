-- The Citus merge runs on the shards: every statement it sends to the workers is a per-shard
-- task (pg_test/run-all greps this script's log of remote commands for intermediate results,
-- repartitioning or COPY, which would mean rows pulled through the coordinator), and every write's
-- plan is a Citus Adaptive plan with per-shard tasks (pg_test/citus/plans.awk).
SET client_min_messages = warning;
SET citus.shard_count = 4;
CREATE EXTENSION IF NOT EXISTS dms_window_reload;
DROP SCHEMA IF EXISTS pd, pd_staging CASCADE;
CREATE SCHEMA pd;
CREATE TABLE pd.t (id int PRIMARY KEY, payload text NOT NULL, updated_at timestamptz NOT NULL);
SELECT create_distributed_table('pd.t', 'id');
INSERT INTO pd.t SELECT g, 'v1', '2025-01-10' FROM generate_series(1, 1000) g;
SELECT dwr_create_staging('pd.t', 'pd_staging');
DELETE FROM pd.t WHERE id = 7;
INSERT INTO pd_staging.t (id, payload, updated_at)
SELECT g, 'v2', '2025-01-11' FROM generate_series(1, 1200, 2) g;
SET citus.log_remote_commands = on;
SET client_min_messages = log;
SELECT status, inserted, updated, skipped_deleted FROM dwr_merge('pd.t');
RESET citus.log_remote_commands;
SET client_min_messages = warning;
SELECT dwr_drop_staging('pd.t');

-- The same merge's plans (auto_explain, nested statements, as NOTICEs): pg_test/run-all checks that
-- every statement writing production, staging or the work tables is a Citus Adaptive plan with one
-- task per shard, never "pull to coordinator" or a repartition. A dry run: EXPLAIN opens savepoints
-- on the workers, after which the merge defers its rows (README, "Citus"); only the plans count.
SELECT dwr_create_staging('pd.t', 'pd_staging');
INSERT INTO pd_staging.t (id, payload, updated_at)
SELECT g, 'v3', '2025-01-12' FROM generate_series(1, 1200, 3) g;
LOAD 'auto_explain';
SET auto_explain.log_min_duration = 0;
SET auto_explain.log_nested_statements = on;
SET auto_explain.log_level = notice;
SET client_min_messages = notice;
SELECT status FROM dwr_merge('pd.t', dry_run => true);
SET client_min_messages = warning;
SET auto_explain.log_min_duration = -1;
SELECT dwr_drop_staging('pd.t');
DROP SCHEMA pd CASCADE;
DROP SCHEMA pd_staging CASCADE;
