-- Delete tracking: dwr_create_staging installs an ENABLE ALWAYS trigger that records every delete
-- in dwr.tombstones, also when the applier runs with session_replication_role = replica (as DMS
-- and logical replication do). A staged row whose key production deleted since staging was created
-- is skipped_deleted: the merge never resurrects it.
-- (errors raised inside PL/pgSQL carry a CONTEXT line in the pg_tle package; not shown, as in
-- the compiled extension; ${DWR_TLE_SYNC:-true} is where a pg_tle operator runs dwr tle install)
\set SHOW_CONTEXT never
CREATE SCHEMA tomb;
CREATE TABLE tomb.t (id int PRIMARY KEY, val text, updated_at timestamp);
INSERT INTO tomb.t SELECT g, 'v1', '2025-01-01' FROM generate_series(1, 5) g;
DELETE FROM tomb.t WHERE id = 4;            -- before tracking began: does not count
SELECT dwr_create_staging('tomb.t', staging_schema => 'tomb_staging');
\! ${DWR_TLE_SYNC:-true}
SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = 'tomb.t'::regclass AND tgname = 'dwr_record_delete';
DELETE FROM tomb.t WHERE id = 3;            -- a CDC delete
SET session_replication_role = replica;     -- the way DMS applies changes
DELETE FROM tomb.t WHERE id = 5;
RESET session_replication_role;
SELECT target::regclass, key, deleted_at IS NOT NULL AS has_time FROM dwr.tombstones
 WHERE target = 'tomb.t'::regclass ORDER BY key;
INSERT INTO tomb_staging.t (id, val, updated_at) VALUES
    (1, 'v2', '2025-01-02'),     -- updated
    (3, 'v2', '2025-01-02'),     -- deleted by CDC: skipped
    (4, 'v2', '2025-01-02'),     -- deleted before tracking began: inserted
    (5, 'v2', '2025-01-02'),     -- deleted by a replica-mode applier: skipped
    (6, 'v2', '2025-01-02');     -- new: inserted
SELECT inserted, updated, skipped_deleted FROM dwr_merge('tomb.t');
TABLE tomb.t ORDER BY id;
SELECT id, _dwr_status FROM tomb_staging.t ORDER BY id;

-- composite keys are recorded in key order
CREATE TABLE tomb.c (region text, id int, updated_at timestamp, PRIMARY KEY (region, id));
INSERT INTO tomb.c VALUES ('eu', 1, '2025-01-01'), ('us', 1, '2025-01-01');
SELECT dwr_create_staging('tomb.c', staging_schema => 'tomb_staging');
\! ${DWR_TLE_SYNC:-true}
DELETE FROM tomb.c WHERE region = 'eu';
SELECT key FROM dwr.tombstones WHERE target = 'tomb.c'::regclass;
INSERT INTO tomb_staging.c VALUES ('eu', 1, '2025-01-02'), ('us', 1, '2025-01-02');
SELECT inserted, updated, skipped_deleted FROM dwr_merge('tomb.c');
TABLE tomb.c ORDER BY 1, 2;

-- a partitioned table: deletes routed to a partition are recorded for the partitioned table
CREATE TABLE tomb.p (id int, at date, updated_at timestamp, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE tomb.p_2024 PARTITION OF tomb.p FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE tomb.p_2025 PARTITION OF tomb.p FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
INSERT INTO tomb.p VALUES (1, '2024-06-01', '2025-01-01'), (2, '2025-06-01', '2025-01-01');
SELECT dwr_create_staging('tomb.p', staging_schema => 'tomb_staging');
\! ${DWR_TLE_SYNC:-true}
SET session_replication_role = replica;
DELETE FROM tomb.p_2025 WHERE id = 2;
RESET session_replication_role;
SELECT target::regclass, key FROM dwr.tombstones WHERE target = 'tomb.p'::regclass;
INSERT INTO tomb_staging.p VALUES (1, '2024-06-01', '2025-01-02'), (2, '2025-06-01', '2025-01-02');
SELECT inserted, updated, skipped_deleted FROM dwr_merge('tomb.p');
TABLE tomb.p ORDER BY id;

-- tombstones are pruned once nothing can need them: here when staging is emptied
SELECT count(*) AS tombstones FROM dwr.tombstones WHERE target = 'tomb.t'::regclass;
SELECT dwr_purge_staging('tomb.t', 'ALL');
SELECT count(*) AS tombstones FROM dwr.tombstones WHERE target = 'tomb.t'::regclass;
-- dropping staging removes the trigger and the table's tombstones
SELECT dwr_drop_staging('tomb.c');
SELECT count(*) AS triggers FROM pg_trigger WHERE tgrelid = 'tomb.c'::regclass AND NOT tgisinternal;
SELECT count(*) AS tombstones FROM dwr.tombstones WHERE target = 'tomb.c'::regclass;
-- the applier needs no right on dwr for its deletes to be recorded
CREATE ROLE dwr_applier;
GRANT dwr_applier TO CURRENT_USER;  -- SET ROLE needs it unless a superuser runs this
GRANT USAGE ON SCHEMA tomb TO dwr_applier;
GRANT SELECT, DELETE ON tomb.t TO dwr_applier;
INSERT INTO tomb.t VALUES (9, 'v1', '2025-01-01');
SET ROLE dwr_applier;
DELETE FROM tomb.t WHERE id = 9;
INSERT INTO dwr.tombstones (target, key) VALUES ('tomb.t'::regclass, '[1]');   -- but cannot forge one
RESET ROLE;
SELECT key FROM dwr.tombstones WHERE target = 'tomb.t'::regclass;
DROP OWNED BY dwr_applier;
DROP ROLE dwr_applier;
