-- The DMS documents of a reload, merging every table of it in foreign-key order, and scheduling
-- without pg_cron.
-- (where in the PL/pgSQL an error was raised is not shown: CONTEXT lines)
\set SHOW_CONTEXT never
CREATE SCHEMA dms;
CREATE TABLE dms.customers (customer_id int PRIMARY KEY, name varchar(100), updated_at timestamp);
CREATE TABLE dms.orders (order_id int PRIMARY KEY, customer_id int NOT NULL REFERENCES dms.customers,
                         amount numeric(12,2), updated_at timestamp);
CREATE TABLE dms.lines (order_id int REFERENCES dms.orders, line_no int, qty int, updated_at timestamp,
                        PRIMARY KEY (order_id, line_no));
CREATE SCHEMA dms_staging;
-- lines' staging was made by a DMS task: looser types
CREATE TABLE dms_staging.lines ("ORDER_ID" numeric, "LINE_NO" numeric, "QTY" numeric, "UPDATED_AT" timestamp);
SELECT dwr_create_staging('dms.customers', 'dms_staging');
SELECT dwr_create_staging('dms.orders', 'dms_staging');
SELECT dwr_create_staging('dms.lines', 'dms_staging');
SELECT dwr_begin_reload('{dms.lines, dms.customers, dms.orders}', '2025-01-01 00:00+00', '2025-01-31 23:59:59.5+00') AS rid \gset

-- the table mappings for an Oracle source: one between filter a table (both ends included, widened
-- to whole seconds), schema and table renames into staging, lower-case columns, and type changes
-- where staging and production differ
SELECT jsonb_pretty(dwr_dms_table_mappings(:rid, 'SALES'));
-- another source: names as they are, one table named differently, no column lower-casing
SELECT r->>'rule-id' AS id, r->>'rule-type' AS type, r->>'rule-action' AS action,
       r->'object-locator'->>'table-name' AS source_table, r->>'value' AS value,
       r->'filters'->0->>'column-name' AS filter_column
  FROM jsonb_array_elements(dwr_dms_table_mappings(:rid, 'public', source_engine => 'postgresql',
         source_tables => '{"dms.orders": "order_headers"}')->'rules') r;
-- the window in the source's time zone
SELECT r->'filters'->0->'filter-conditions'->0 AS condition
  FROM jsonb_array_elements(dwr_dms_table_mappings(:rid, 'SALES', source_time_zone => 'Europe/Oslo')->'rules') r
 WHERE r->>'rule-type' = 'selection' LIMIT 1;
-- the same call gives the same document
SELECT dwr_dms_table_mappings(:rid, 'SALES') = dwr_dms_table_mappings(:rid, 'SALES') AS stable;

-- task settings for a full load into the existing staging tables, with overrides merged in deeply
SELECT jsonb_pretty(dwr_dms_task_settings(:rid, '{"FullLoadSettings": {"CommitRate": 50000}, "Logging": {"LogComponents": []}}'));
-- the window replayed from its change log: a CDC-only task to Amazon S3 from the window's start to
-- its end (UTC), every change of the reload's tables, CSV with Op first and each change's commit
-- time, and per table the change-log table its files go into and the replay
SELECT jsonb_pretty(dwr_dms_cdc_task(:rid, 'SALES') - 'ChangeLogs');
SELECT l->>'target' AS target, l->>'s3_folder' AS s3_folder, l->>'change_log' AS change_log,
       l->>'copy_columns' AS copy_columns
  FROM jsonb_array_elements(dwr_dms_cdc_task(:rid, 'SALES')->'ChangeLogs') l;
-- the statements it gives work: the change-log table made, a CDC file's rows in DMS's column order
-- (Op, commit time, the row), and the replay
SELECT l->>'create_table' FROM jsonb_array_elements(dwr_dms_cdc_task(:rid, 'SALES')->'ChangeLogs') l
 WHERE l->>'target' = 'dms.customers' \gexec
SELECT format('INSERT INTO %s (%s) VALUES %s', l->>'change_log', l->>'copy_columns',
              $$('I', '2025-01-05 10:00:00.000001', 900, 'new in the window', '2025-01-05 10:00:00'),
                ('U', '2025-01-06 10:00:00.000001', 900, 'changed', '2025-01-06 10:00:00'),
                ('I', '2025-01-07 10:00:00.000001', 901, 'gone again', '2025-01-07 10:00:00'),
                ('D', '2025-01-08 10:00:00.000001', 901, 'gone again', '2025-01-07 10:00:00')$$)
  FROM jsonb_array_elements(dwr_dms_cdc_task(:rid, 'SALES')->'ChangeLogs') l WHERE l->>'target' = 'dms.customers' \gexec
SELECT replace(l->>'replay', 'SELECT *', 'SELECT inserted, updated, deleted, skipped_deleted')
  FROM jsonb_array_elements(dwr_dms_cdc_task(:rid, 'SALES')->'ChangeLogs') l WHERE l->>'target' = 'dms.customers' \gexec
SELECT * FROM dms.customers WHERE customer_id >= 900 ORDER BY 1;
DROP TABLE dms_staging.customers_changes;
-- LobMaxSize fits the largest value of production's LOB-like columns (text, varchar without a
-- length, bytea, json, jsonb, xml) with a quarter on top, never below 32 (KB): in limited LOB mode
-- DMS truncates a larger LOB and only logs a warning
CREATE TABLE dms.docs (doc_id int PRIMARY KEY, body text, meta jsonb, updated_at timestamp);
INSERT INTO dms.docs VALUES (1, repeat('x', 100 * 1024), '{"a": 1}', '2025-01-02'), (2, 'short', NULL, '2025-01-02');
SELECT dwr_create_staging('dms.docs', 'dms_staging');
SELECT dwr_begin_reload('{dms.docs}', '2025-01-01', '2025-01-31') AS lob_rid \gset
SELECT (dwr_dms_task_settings(:lob_rid)->'TargetMetadata') - 'TargetSchema' AS lob_settings;
-- the limit is recorded on the reload, for the merge's guard (26_lob_guard); settings an override
-- puts in full LOB mode record none, one that sets LobMaxSize records that
SELECT lob_max_kb FROM dwr.reloads WHERE reload_id = :lob_rid;
SELECT dwr_dms_task_settings(:lob_rid, '{"TargetMetadata": {"FullLobMode": true, "LimitedSizeLobMode": false}}') IS NOT NULL AS written;
SELECT lob_max_kb FROM dwr.reloads WHERE reload_id = :lob_rid;
SELECT dwr_dms_task_settings(:lob_rid, '{"TargetMetadata": {"LobMaxSize": 4096}}') IS NOT NULL AS written;
SELECT lob_max_kb FROM dwr.reloads WHERE reload_id = :lob_rid;
-- no overrides at all (SQL NULL): the settings as they are
SELECT dwr_dms_task_settings(:lob_rid, NULL)->'TargetMetadata'->'LobMaxSize' AS lob_max_size;
SELECT dwr_end_reload(:lob_rid);
SELECT dwr_drop_staging('dms.docs');
DROP TABLE dms.docs;

\set VERBOSITY default
SELECT dwr_dms_table_mappings(-1, 'SALES');
\echo :LAST_ERROR_SQLSTATE
SELECT dwr_dms_table_mappings(:rid, 'SALES', source_tables => '[1]');
\echo :LAST_ERROR_SQLSTATE
SELECT dwr_dms_task_settings(:rid, '"x"');
\echo :LAST_ERROR_SQLSTATE

-- merging a whole reload: children were loaded before their parents, and still merge, parents first
INSERT INTO dms_staging.lines VALUES (10, 1, 5, '2025-01-10'), (10, 2, 1, '2025-01-10'), (11, 1, 2, '2025-01-11');
INSERT INTO dms_staging.orders VALUES (10, 1, 9.99, '2025-01-10'), (11, 2, 19.99, '2025-01-11');
INSERT INTO dms_staging.customers VALUES (1, 'Ann', '2025-01-09'), (2, 'Bob', '2025-01-09');
SELECT target, status, inserted, updated, errors FROM dwr_merge_all(:rid);
SELECT count(*) AS lines FROM dms.lines;
SELECT dwr_merge_all(-1);
\echo :LAST_ERROR_SQLSTATE
SELECT dwr_end_reload(:rid);
SELECT dwr_merge_all(:rid);
\echo :LAST_ERROR_SQLSTATE
-- with no reload: every registered table (here nothing is NEW any more)
SELECT target, inserted FROM dwr_merge_all() WHERE target::text LIKE 'dms.%';

-- a foreign-key cycle is refused, naming the tables
CREATE TABLE dms.a (id int PRIMARY KEY, b_id int, updated_at timestamp);
CREATE TABLE dms.b (id int PRIMARY KEY, a_id int REFERENCES dms.a, updated_at timestamp);
ALTER TABLE dms.a ADD FOREIGN KEY (b_id) REFERENCES dms.b;
SELECT dwr_create_staging('dms.a', 'dms_staging');
SELECT dwr_create_staging('dms.b', 'dms_staging');
SELECT dwr_begin_reload('{dms.a, dms.b}', '2025-01-01', '2025-02-01') AS rid2 \gset
SELECT dwr_merge_all(:rid2);
\echo :LAST_ERROR_SQLSTATE
SELECT dwr_end_reload(:rid2);

-- scheduling needs pg_cron; this server does not preload it
SELECT dwr_schedule('dms.customers', '* * * * *');
\echo :LAST_ERROR_SQLSTATE
SELECT dwr_schedule('dms.customers', NULL);
\echo :LAST_ERROR_SQLSTATE
