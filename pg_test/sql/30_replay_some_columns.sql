-- dwr_replay of a change log with only some of production's columns (compiled extension; the
-- pg_tle package reads a log through the staging table's columns and refuses one that lacks any:
-- tle_source): an update keeps production's value of the columns the log lacks.
\set SHOW_CONTEXT never
CREATE SCHEMA rs;
CREATE TABLE rs.customers (id int PRIMARY KEY, name text NOT NULL, city text, updated_at timestamptz NOT NULL);
SELECT dwr_create_staging('rs.customers', 'rs_staging');
INSERT INTO rs.customers VALUES (3, 'three', 'Pune', '2025-01-01'), (4, 'four', 'Kyiv', '2025-01-01');
CREATE TABLE rs.narrow ("Op" text, seq bigint, id int, name text, updated_at timestamptz);
INSERT INTO rs.narrow VALUES ('U', 1, 3, 'three narrow', '2025-01-19 00:00'), ('D', 2, 4, NULL, '2025-01-01');
SELECT updated, deleted FROM dwr_replay('rs.customers', 'rs.narrow', order_by => '{seq}');
SELECT id, name, city FROM rs.customers ORDER BY id;
SELECT dwr_drop_staging('rs.customers');
DROP SCHEMA rs, rs_staging CASCADE;
