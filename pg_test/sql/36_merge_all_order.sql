-- dwr_merge_all orders the tables by their foreign keys when it is called, the same in both modes:
-- a foreign key added after the tables were registered (after the pg_tle package was generated)
-- counts; ties go by name; a cycle is refused before anything is merged.
\set SHOW_CONTEXT never
CREATE SCHEMA mo;
CREATE TABLE mo.a_child (id int PRIMARY KEY, parent_id int, updated_at timestamptz);
CREATE TABLE mo.b_parent (id int PRIMARY KEY, child_id int, updated_at timestamptz);
CREATE TABLE mo.c_other (id int PRIMARY KEY, updated_at timestamptz);
SELECT dwr_create_staging(t, 'mo_staging') FROM unnest('{mo.a_child, mo.b_parent, mo.c_other}'::regclass[]) t;
\! ${DWR_TLE_SYNC:-true}
-- the foreign key comes after the registration: a child would otherwise be merged first (by name)
ALTER TABLE mo.a_child ADD FOREIGN KEY (parent_id) REFERENCES mo.b_parent;
INSERT INTO mo_staging.b_parent (id, updated_at) VALUES (1, '2025-01-15');
INSERT INTO mo_staging.a_child (id, parent_id, updated_at) VALUES (10, 1, '2025-01-15');
INSERT INTO mo_staging.c_other (id, updated_at) VALUES (100, '2025-01-15');
SELECT dwr_begin_reload('{mo.a_child, mo.b_parent, mo.c_other}', '2025-01-01', '2025-02-01') AS rid \gset
SELECT target, status, inserted, errors FROM dwr_merge_all(:rid);
SELECT (SELECT count(*) FROM mo.a_child) AS children, (SELECT count(*) FROM mo.b_parent) AS parents;
SELECT dwr_end_reload(:rid);
-- a cycle, also made after the registration, is refused and nothing is merged
ALTER TABLE mo.b_parent ADD FOREIGN KEY (child_id) REFERENCES mo.a_child;
INSERT INTO mo_staging.c_other (id, updated_at) VALUES (101, '2025-01-15');
SELECT dwr_begin_reload('{mo.a_child, mo.b_parent, mo.c_other}', '2025-01-01', '2025-02-01') AS rid \gset
SELECT * FROM dwr_merge_all(:rid);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS others FROM mo.c_other;
SELECT dwr_end_reload(:rid);
SELECT dwr_drop_staging(t) FROM unnest('{mo.a_child, mo.b_parent, mo.c_other}'::regclass[]) t;
DROP SCHEMA mo, mo_staging CASCADE;
