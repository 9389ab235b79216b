-- The delete production never saw (compiled extension): the source deleted a row that was inserted
-- during the lost window, so production never had it, and CDC's DELETE by key matched nothing; the
-- window's full load still holds the row. A SQL applier that deletes by key (DMS's transactional
-- apply: one DELETE ... WHERE key = $1 per change, as session_replication_role = replica) leaves a
-- tombstone all the same, and the merge does not bring the row back. Deletes of another shape (a
-- join, IN, a range, a column that is not the key) record nothing. (The pg_tle package has no such
-- capture: tle_missed_deletes; docs/guarantees.md.)
CREATE SCHEMA md;
CREATE TABLE md.t (id int PRIMARY KEY, val text, updated_at int);
INSERT INTO md.t VALUES (1, 'v1', 1), (2, 'v1', 1);
CREATE TABLE md.c (a int, b varchar(10), val text, updated_at int, PRIMARY KEY (a, b));
CREATE TABLE md.p (id int PRIMARY KEY, val text, updated_at int) PARTITION BY RANGE (id);
CREATE TABLE md.p1 PARTITION OF md.p FOR VALUES FROM (0) TO (100);
CREATE TABLE md.p2 PARTITION OF md.p FOR VALUES FROM (100) TO (200);
SELECT dwr_create_staging('md.t', 'md_staging'), dwr_create_staging('md.c', 'md_staging'),
       dwr_create_staging('md.p', 'md_staging');
SELECT tgname, tgtype & 1 = 0 AS for_each_statement, tgenabled FROM pg_trigger
 WHERE tgrelid = 'md.t'::regclass AND NOT tgisinternal ORDER BY tgname;
-- the window's full load: rows 3 to 6 were inserted during the outage (production never had them)
INSERT INTO md_staging.t (id, val, updated_at) VALUES (1, 'v2', 2), (3, 'v2', 2), (4, 'v2', 2), (5, 'v2', 2), (6, 'v2', 2);
INSERT INTO md_staging.c (a, b, val, updated_at) VALUES (1, 'x', 'v2', 2), (1, 'y', 'v2', 2);
INSERT INTO md_staging.p (id, val, updated_at) VALUES (7, 'v2', 2), (107, 'v2', 2);

-- CDC resumes: the source deletes rows 3 and 4 (a literal, and a prepared statement with a generic
-- plan, as a driver sends it), (1, 'x') and 107
SET session_replication_role = replica;
DELETE FROM md.t WHERE id = 3;
SET plan_cache_mode = force_generic_plan;
PREPARE del_t(int) AS DELETE FROM md.t WHERE id = $1;
EXECUTE del_t(4);
PREPARE del_c(int, text) AS DELETE FROM md.c WHERE a = $1 AND b = $2;
EXECUTE del_c(1, 'x');
RESET plan_cache_mode;
DELETE FROM md.p WHERE id = 107;
-- ... deletes of other shapes: no key named with =, or not every key column
DELETE FROM md.t WHERE id IN (5, 6);
DELETE FROM md.t WHERE val = 'gone';
DELETE FROM md.c WHERE a = 1;
-- ... and a delete that removes a row: its row trigger's tombstone, no second one
DELETE FROM md.t WHERE id = 2;
-- ... from PL/pgSQL (its variables are parameters)
DO $$ DECLARE k int := 6; BEGIN DELETE FROM md.t WHERE id = k; END $$;
RESET session_replication_role;
SELECT target, key FROM dwr.tombstones WHERE target::text LIKE 'md.%' ORDER BY target::text, key::text;

-- the merge: the rows the source deleted are not brought back (5, deleted with IN, comes back:
-- the limit this capture has)
SELECT inserted, updated, skipped_deleted FROM dwr_merge('md.t');
SELECT inserted, updated, skipped_deleted FROM dwr_merge('md.c');
SELECT inserted, updated, skipped_deleted FROM dwr_merge('md.p');
TABLE md.t ORDER BY id;
TABLE md.c ORDER BY a, b;
TABLE md.p ORDER BY id;

-- dwr_drop_staging removes both triggers
SELECT dwr_drop_staging('md.t'), dwr_drop_staging('md.c'), dwr_drop_staging('md.p');
SELECT count(*) AS triggers_left FROM pg_trigger WHERE tgrelid IN ('md.t'::regclass, 'md.c'::regclass, 'md.p'::regclass) AND NOT tgisinternal;
DELETE FROM md.t WHERE id = 99;
SELECT count(*) AS tombstones FROM dwr.tombstones WHERE target::text LIKE 'md.%';
DROP SCHEMA md, md_staging CASCADE;
