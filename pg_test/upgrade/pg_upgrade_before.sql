-- pg_upgrade keeps the extension's state (pg_test/run-all, "pg_upgrade"): on the old server, a
-- registered table in the middle of an open reload, with an audited run and a tombstone.
CREATE EXTENSION dms_window_reload;
CREATE SCHEMA upg;
CREATE TABLE upg.customers (customer_id int PRIMARY KEY, name text, updated_at timestamptz);
INSERT INTO upg.customers SELECT g, 'name ' || g, '2025-01-05' FROM generate_series(1, 20) g;
SELECT dwr_create_staging('upg.customers', 'upg_staging');
SELECT dwr_begin_reload('{upg.customers}', '2025-01-01', '2025-02-01');
INSERT INTO upg_staging.customers (customer_id, name, updated_at)
SELECT g, 'reloaded ' || g, '2025-01-10' FROM generate_series(1, 5) g;
SELECT status, updated FROM dwr_merge('upg.customers');
-- CDC deletes a row during the reload
DELETE FROM upg.customers WHERE customer_id = 10;
