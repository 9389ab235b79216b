-- dms_window_reload, roles and grants (1 of 2): the roles. Run with psql as a role that may create
-- roles and owns the database: a superuser, or on Amazon RDS the master user, after the extension
-- (or the pg_tle package) is installed. Then docs/grants/owner.sql as dwr_admin.
-- pg_test/sql/23_roles_and_grants runs both in both modes and checks each role's rights.

-- dwr_admin owns the production tables and runs the reload: registers tables (the caller must own
-- the table), merges, undoes. The staging tables dwr_create_staging makes are its too, as the merge
-- requires (staging owned by another role is refused: it could run that role's code). On RDS it
-- can also install the pg_tle package: GRANT pgtle_admin TO dwr_admin (once pg_tle is created).
CREATE ROLE dwr_admin LOGIN;
-- the DMS endpoint of the CDC task: writes production, nothing else. (DMS also sets
-- session_replication_role = replica, which needs, from a superuser on PostgreSQL 15 and later,
-- GRANT SET ON PARAMETER session_replication_role TO dms_cdc; on RDS, rds_superuser.)
CREATE ROLE dms_cdc LOGIN;
-- the DMS endpoint of the full-load task: fills staging (TargetTablePrepMode DO_NOTHING: no DDL)
CREATE ROLE dms_full_load LOGIN;
-- whoever may read the row images: whole rows of production data, before and after each merge
CREATE ROLE dwr_auditor LOGIN;

-- dwr_admin makes the schemas of production and staging
GRANT CREATE ON DATABASE :"DBNAME" TO dwr_admin;

-- only the extension's owner reads dwr.row_changes until it grants it (this runs as that owner:
-- the superuser who created the extension, or the role that installed the package). Everything
-- else in dwr (registrations, runs, reloads, tombstones, the views) everyone may read; nobody but
-- the extension writes it.
GRANT SELECT ON dwr.row_changes TO dwr_auditor;
