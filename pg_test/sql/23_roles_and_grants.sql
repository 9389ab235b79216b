-- The roles of docs/roles-and-grants.md, created by its scripts (docs/grants/) as they are, then each
-- connected in turn: it can do its job, and a step outside it is refused with 42501. (pg_regress
-- runs in the repository, so the scripts are read from there.)
\set VERBOSITY terse
\set SHOW_CONTEXT never
-- (roles are global: those of an earlier run of this file go first; its database is gone)
SET client_min_messages = warning;
DROP ROLE IF EXISTS dwr_admin, dms_cdc, dms_full_load, dwr_auditor;
RESET client_min_messages;
\set runner :USER
-- (the scripts' own text is not echoed: their errors would be)
\set ECHO none
\i docs/grants/roles.sql
\c - dwr_admin
\set prod grants_prod
\set stage grants_staging
\i docs/grants/owner.sql
\set ECHO all

-- dwr_admin: its production table, registered; staging is its too
CREATE TABLE grants_prod.customers (customer_id int PRIMARY KEY, name text, updated_at timestamptz);
INSERT INTO grants_prod.customers VALUES (1, 'one', '2025-01-01'), (2, 'two', '2025-01-01');
SELECT dwr_create_staging('grants_prod.customers', 'grants_staging');
\! ${DWR_TLE_SYNC:-true}
SELECT tableowner FROM pg_tables WHERE schemaname = 'grants_staging' AND tablename = 'customers';

-- the full load fills staging, and only staging
\c - dms_full_load
INSERT INTO grants_staging.customers (customer_id, name, updated_at) VALUES (1, 'one, reloaded', '2025-01-02'), (3, 'three', '2025-01-02');
INSERT INTO grants_prod.customers VALUES (9, 'nine', '2025-01-02');
SELECT count(*) FROM dwr.row_changes;

-- CDC writes production; its delete is recorded (through the extension's narrow path: dms_cdc
-- has no right on dwr), and it can touch neither staging nor the audit
\c - dms_cdc
DELETE FROM grants_prod.customers WHERE customer_id = 2;
UPDATE grants_staging.customers SET name = 'forged';
DELETE FROM dwr.tombstones;
SELECT key FROM dwr.tombstones WHERE target = 'grants_prod.customers'::regclass;

-- dwr_admin merges, audited
\c - dwr_admin
SELECT status, inserted, updated FROM dwr_merge('grants_prod.customers');
SELECT run_by, inserted, updated FROM dwr.merge_runs WHERE target = 'grants_prod.customers'::regclass;

-- the auditor reads the row images; nobody else here does (dms_cdc tried above with the tombstones)
\c - dwr_auditor
SELECT key, action, after->>'name' AS name FROM dwr.row_changes
 WHERE target::text = 'grants_prod.customers' ORDER BY key;
UPDATE dwr.row_changes SET after = NULL;

-- everything goes again: dwr_admin's objects and default privileges, then the roles
\c - dwr_admin
SELECT dwr_drop_staging('grants_prod.customers');
SET client_min_messages = error;
DROP OWNED BY dwr_admin;
\c - :runner
REVOKE SELECT ON dwr.row_changes FROM dwr_auditor;
REVOKE CREATE ON DATABASE :"DBNAME" FROM dwr_admin;
DROP ROLE dwr_admin, dms_cdc, dms_full_load, dwr_auditor;
