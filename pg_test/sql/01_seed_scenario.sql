-- The seed document's scenario: production.customers and production.orders replicated by CDC; a
-- past window reloaded into staging; the merge inserts what is missing, updates what is older,
-- leaves equal versions alone and refuses older ones.
-- (errors raised inside PL/pgSQL carry a CONTEXT line in the pg_tle package; not shown, as in
-- the compiled extension; ${DWR_TLE_SYNC:-true} is where a pg_tle operator runs dwr tle install)
\set SHOW_CONTEXT never
CREATE SCHEMA production;
CREATE TABLE production.customers (
    customer_id integer PRIMARY KEY,
    name        varchar(100) NOT NULL,
    email       text,
    updated_at  timestamp NOT NULL
);
CREATE TABLE production.orders (
    order_id    bigint PRIMARY KEY,
    customer_id integer NOT NULL REFERENCES production.customers,
    amount      numeric(12,2) NOT NULL,
    status      text NOT NULL,
    updated_at  timestamp NOT NULL
);
INSERT INTO production.customers VALUES
    (1, 'Alice',  'alice@old.example', '2025-01-10 09:00'),
    (2, 'Bob',    'bob@old.example',   '2025-01-11 09:00'),
    (3, 'Carol',  'carol@example',     '2025-01-12 09:00'),
    (4, 'Dave',   'dave@new.example',  '2025-01-20 09:00');
INSERT INTO production.orders VALUES
    (100, 1, 10.00, 'open',    '2025-01-10 10:00'),
    (101, 2, 20.00, 'open',    '2025-01-11 10:00'),
    (102, 3, 30.00, 'shipped', '2025-01-12 10:00'),
    (103, 4, 40.00, 'shipped', '2025-01-25 10:00');

SELECT dwr_create_staging('production.customers');
SELECT dwr_create_staging('production.orders');
\! ${DWR_TLE_SYNC:-true}

-- the full load of the window, as DMS writes it: plain INSERTs that know nothing of _dwr_ columns
INSERT INTO staging.customers (customer_id, name, email, updated_at) VALUES
    (1, 'Alice', 'alice@new.example', '2025-01-15 09:00'),  -- newer: update
    (2, 'Bob',   'bob@new.example',   '2025-01-16 09:00'),  -- newer: update
    (3, 'Carol', 'carol@example',     '2025-01-12 09:00'),  -- same version: unchanged
    (4, 'Dave',  'dave@old.example',  '2025-01-14 09:00'),  -- older than production: stale
    (5, 'Erin',  'erin@example',      '2025-01-17 09:00');  -- missing: insert
INSERT INTO staging.orders (order_id, customer_id, amount, status, updated_at) VALUES
    (100, 1, 10.00, 'shipped',   '2025-01-15 10:00'),
    (101, 2, 20.00, 'cancelled', '2025-01-16 10:00'),
    (102, 3, 30.00, 'shipped',   '2025-01-12 10:00'),
    (103, 4, 40.00, 'open',      '2025-01-14 10:00'),
    (104, 5, 50.00, 'open',      '2025-01-17 10:00');

SELECT target, status, inserted, updated, unchanged, skipped_stale, skipped_deleted,
       skipped_outside_window, deferred, errors
  FROM dwr_merge('production.customers');
SELECT target, status, inserted, updated, unchanged, skipped_stale, skipped_deleted,
       skipped_outside_window, deferred, errors
  FROM dwr_merge('production.orders');

TABLE production.customers ORDER BY customer_id;
TABLE production.orders ORDER BY order_id;

-- every staged row says what became of it, and which run decided
SELECT customer_id, _dwr_status, _dwr_run_id IS NOT NULL AS has_run, _dwr_error
  FROM staging.customers ORDER BY customer_id;

-- the audit of both runs
SELECT run_id, kind, target_name, source_name, dry_run, status, run_by = current_user AS by_me,
       inserted, updated, unchanged, skipped_stale, errors, finished_at >= started_at AS timed
  FROM dwr.merge_runs ORDER BY run_id;

-- a second merge finds nothing NEW and changes nothing
SELECT status, inserted, updated, unchanged, skipped_stale FROM dwr_merge('production.customers');

-- 'customers' resolves through search_path, as any regclass argument does
SET search_path = production, public;
SELECT target, inserted FROM dwr_merge('customers');
RESET search_path;

SELECT * FROM dwr.staging_status ORDER BY target::text;
