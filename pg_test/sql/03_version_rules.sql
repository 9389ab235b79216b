-- The version column decides. Strictly newer replaces; equal is unchanged; older is stale; a NULL
-- production version loses; a NULL staged version is an ERROR row; several staged rows of one key:
-- the highest version merges, the rest are SKIPPED.
-- (errors raised inside PL/pgSQL carry a CONTEXT line in the pg_tle package; not shown, as in
-- the compiled extension; ${DWR_TLE_SYNC:-true} is where a pg_tle operator runs dwr tle install)
\set SHOW_CONTEXT never
CREATE SCHEMA versions;
CREATE TABLE versions.t (id int PRIMARY KEY, val text, updated_at timestamp);
INSERT INTO versions.t VALUES
    (1, 'production v5', '2025-01-05'),
    (2, 'production v5', '2025-01-05'),
    (3, 'production v5', '2025-01-05'),
    (4, 'production has no version', NULL);
SELECT dwr_create_staging('versions.t');
\! ${DWR_TLE_SYNC:-true}
INSERT INTO versions.t VALUES (9, 'untouched', '2025-01-01');
INSERT INTO staging.t (id, val, updated_at) VALUES
    (1, 'staged v6', '2025-01-06'),            -- newer: updated
    (2, 'staged v5', '2025-01-05'),            -- equal: unchanged, even though val differs
    (3, 'staged v4', '2025-01-04'),            -- older: skipped_stale
    (4, 'staged v1', '2025-01-01'),            -- production version NULL: staged row wins
    (5, 'staged, no version', NULL);           -- NULL staged version: ERROR
SELECT status, inserted, updated, unchanged, skipped_stale, errors FROM dwr_merge('versions.t');
TABLE versions.t ORDER BY id;
SELECT id, val, _dwr_status, _dwr_error FROM staging.t ORDER BY id;

-- duplicates: an adopted staging table has no primary key, so a load can hold one key twice
CREATE TABLE versions.d (id int PRIMARY KEY, val text, updated_at timestamp);
INSERT INTO versions.d VALUES (1, 'production', '2025-01-01');
CREATE TABLE staging.d (id int, val text, updated_at timestamp);
SELECT dwr_create_staging('versions.d');
\! ${DWR_TLE_SYNC:-true}
INSERT INTO staging.d (id, val, updated_at) VALUES
    (1, 'older duplicate', '2025-01-02'),
    (1, 'newest', '2025-01-04'),
    (1, 'middle', '2025-01-03'),
    (2, 'twin loaded first', '2025-01-02');
INSERT INTO staging.d (id, val, updated_at) VALUES
    (2, 'twin loaded last', '2025-01-02');    -- equal versions: the later load wins
SELECT inserted, updated, skipped_stale FROM dwr_merge('versions.d');
TABLE versions.d ORDER BY id;
SELECT id, val, _dwr_status FROM staging.d ORDER BY id, val;
