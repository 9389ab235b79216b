-- The pg_tle package's side of 32_missed_deletes: a trusted extension has no C, so nothing sees a
-- DELETE by key that matched no row. The source deletes a row that was inserted during the lost
-- window (production never had it): no tombstone, and a merge of the window's full load brings the
-- row back. What the operator does instead (docs/guarantees.md, docs/runbook.md): replay the
-- window's change log, whose D of that key leaves the tombstone.
CREATE SCHEMA md;
CREATE TABLE md.t (id int PRIMARY KEY, val text, updated_at int);
INSERT INTO md.t VALUES (1, 'v1', 1);
CREATE TABLE md.u (LIKE md.t INCLUDING ALL);
INSERT INTO md.u VALUES (1, 'v1', 1);
SELECT dwr_create_staging('md.t', 'md_staging'), dwr_create_staging('md.u', 'md_staging');
\! ${DWR_TLE_SYNC:-true}
-- the window's full load: row 3 was inserted during the outage
INSERT INTO md_staging.t (id, val, updated_at) VALUES (1, 'v2', 2), (3, 'v2', 2);
INSERT INTO md_staging.u (id, val, updated_at) VALUES (1, 'v2', 2), (3, 'v2', 2);
-- CDC resumes: the source deletes row 3, by key, as DMS's transactional apply does
SET session_replication_role = replica;
DELETE FROM md.t WHERE id = 3;
DELETE FROM md.u WHERE id = 3;
RESET session_replication_role;
SELECT count(*) AS tombstones FROM dwr.tombstones WHERE target::text LIKE 'md.%';
-- the full load's merge brings row 3 back
SELECT inserted, updated, skipped_deleted FROM dwr_merge('md.t');
TABLE md.t ORDER BY id;
-- the change log of the window, replayed first (I of 3, then its D): row 3 stays deleted, and the
-- full load's merge after it does not bring it back
CREATE TABLE md.changes (id int, val text, updated_at int, "Op" text, seq int);
INSERT INTO md.changes (id, val, updated_at, "Op", seq) VALUES (3, 'v2', 2, 'I', 1), (3, 'v2', 2, 'D', 2), (1, 'v2', 2, 'U', 3);
SELECT inserted, updated, deleted FROM dwr_replay('md.u', 'md.changes', '{seq}');
SELECT inserted, updated, skipped_deleted FROM dwr_merge('md.u');
TABLE md.u ORDER BY id;
SELECT dwr_drop_staging('md.t'), dwr_drop_staging('md.u');
DROP SCHEMA md, md_staging CASCADE;
