-- A staged row that production rejects becomes an ERROR row with the server's message; every other
-- row still merges, in the same transaction.
-- (errors raised inside PL/pgSQL carry a CONTEXT line in the pg_tle package; not shown, as in
-- the compiled extension; ${DWR_TLE_SYNC:-true} is where a pg_tle operator runs dwr tle install)
\set SHOW_CONTEXT never
CREATE SCHEMA rowerr;
CREATE TABLE rowerr.parents (id int PRIMARY KEY);
INSERT INTO rowerr.parents VALUES (1);
CREATE TABLE rowerr.items (
    id         int PRIMARY KEY,
    parent_id  int REFERENCES rowerr.parents,
    code       varchar(5),
    qty        int CHECK (qty >= 0),
    updated_at timestamp
);
INSERT INTO rowerr.items VALUES (10, 1, 'old', 1, '2025-01-01');
-- staging as DMS creates it: looser types
CREATE TABLE staging.items ("ID" numeric, "PARENT_ID" numeric, "CODE" varchar(200), "QTY" text, "UPDATED_AT" timestamp);
SELECT dwr_create_staging('rowerr.items');
\! ${DWR_TLE_SYNC:-true}
INSERT INTO staging.items ("ID", "PARENT_ID", "CODE", "QTY", "UPDATED_AT") VALUES
    (1, 1, 'ok',          '1',   '2025-01-02'),
    (2, 1, 'too long',    '1',   '2025-01-02'),   -- varchar(5)
    (3, 99, 'fk',         '1',   '2025-01-02'),   -- no parent 99
    (4, 1, 'check',       '-1',  '2025-01-02'),   -- qty >= 0
    (5, 1, 'cast',        'abc', '2025-01-02'),   -- not an integer
    (6, 1, 'ok2',         '2',   '2025-01-02'),
    (10, 1, 'upd',        '5',   '2025-01-02'),   -- an update that works
    (NULL, 1, 'nokey',    '1',   '2025-01-02');   -- no key at all
SELECT status, inserted, updated, errors FROM dwr_merge('rowerr.items');
TABLE rowerr.items ORDER BY id;
SELECT "ID", "CODE", _dwr_status, _dwr_error FROM staging.items ORDER BY "ID" NULLS LAST;

-- a key that does not convert is an ERROR row too (text key into integer)
CREATE TABLE rowerr.k (id int PRIMARY KEY, updated_at timestamp);
CREATE TABLE staging.k ("ID" text, "UPDATED_AT" text);
SELECT dwr_create_staging('rowerr.k');
\! ${DWR_TLE_SYNC:-true}
INSERT INTO staging.k ("ID", "UPDATED_AT") VALUES ('1', '2025-01-01'), ('x', '2025-01-01'), ('3', 'not a time');
SELECT inserted, errors FROM dwr_merge('rowerr.k');
SELECT "ID", _dwr_status, _dwr_error FROM staging.k ORDER BY 1;
TABLE rowerr.k;
