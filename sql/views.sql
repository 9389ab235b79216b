-- dms_window_reload: views over every registered table.

CREATE VIEW dwr.type_verification AS
SELECT t.target, t.staging, v.column_name, v.problem, v.severity,
       v.production_type, v.staging_type, v.detail
  FROM dwr.tables t
  JOIN pg_catalog.pg_class pc ON pc.oid OPERATOR(pg_catalog.=) t.target::pg_catalog.oid
  JOIN pg_catalog.pg_class sc ON sc.oid OPERATOR(pg_catalog.=) t.staging::pg_catalog.oid
 CROSS JOIN LATERAL @extschema@.dwr_verify(t.target) AS v;
COMMENT ON VIEW dwr.type_verification IS
  'dwr_verify for every registered table whose production and staging tables exist.';

CREATE VIEW dwr.staging_status AS
SELECT s.target, s.staging, s.new_rows, s.processed, s.skipped, s.error_rows, s.total
  FROM dwr._staging_status() AS s;
COMMENT ON VIEW dwr.staging_status IS
  'Staged rows by status for every registered table the caller may read: NEW (not merged yet, or deferred, or outside the window), PROCESSED, SKIPPED, ERROR.';

GRANT SELECT ON dwr.type_verification, dwr.staging_status TO PUBLIC;
