-- dms_window_reload, roles and grants (2 of 2): what the DMS endpoints may touch. Run with psql as
-- dwr_admin (after docs/grants/roles.sql). The schema names are psql variables:
--   psql -v prod=production -v stage=staging -f docs/grants/owner.sql
\if :{?prod}
\else
\set prod production
\endif
\if :{?stage}
\else
\set stage staging
\endif

CREATE SCHEMA IF NOT EXISTS :"prod";
CREATE SCHEMA IF NOT EXISTS :"stage";

-- CDC: the production tables, now and those created later
GRANT USAGE ON SCHEMA :"prod" TO dms_cdc;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA :"prod" TO dms_cdc;
ALTER DEFAULT PRIVILEGES IN SCHEMA :"prod" GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO dms_cdc;

-- the full load: the staging tables, now and those dwr_create_staging makes later (SELECT: DMS
-- reads the table; INSERT: the rows). Nothing on production, nothing on dwr.
GRANT USAGE ON SCHEMA :"stage" TO dms_full_load;
GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA :"stage" TO dms_full_load;
ALTER DEFAULT PRIVILEGES IN SCHEMA :"stage" GRANT SELECT, INSERT ON TABLES TO dms_full_load;
