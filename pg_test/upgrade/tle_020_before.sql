-- The pg_tle package of 0.2.0 (:'script', its frozen install script), installed and used: a table
-- registered and a delete recorded, while dwr.tombstones still keyed tables by OID.
SELECT pgtle.install_extension('dms_window_reload_tle', '0.2.0.000000',
                               'dms_window_reload as a pg_tle package (0.2.0)', :'script', ARRAY['plpgsql']);
CREATE EXTENSION dms_window_reload_tle;
CREATE SCHEMA upg_prod;
CREATE TABLE upg_prod.t (id int PRIMARY KEY, v text, updated_at timestamptz);
INSERT INTO upg_prod.t SELECT g, 'v' || g, '2025-01-01' FROM generate_series(1, 10) g;
SELECT dwr_create_staging('upg_prod.t', 'upg_staging');
DELETE FROM upg_prod.t WHERE id = 3;
