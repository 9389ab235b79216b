-- The pg_tle package reads a source through the staging table's columns, as text
-- (engine/src/tle/source.rs): what the compiled extension plans at each call from the source's own
-- columns, the package generated beforehand. Runs after 15_source_and_diff, on its tables.
\set VERBOSITY default
\set SHOW_CONTEXT never
-- a source without one of staging's columns is refused with 0A000 (the compiled extension merges
-- it, keeping production's value of the missing column)
CREATE TABLE replay.partial ("REGION" text, "ID" int, "VAL" text, "UPDATED_AT" timestamptz);
SELECT dwr_merge('bey.t', source => 'replay.partial');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM dwr_diff_summary('bey.t', source => 'replay.partial');
\echo :LAST_ERROR_SQLSTATE
-- so is one with two columns that match one of staging's only when case is ignored
CREATE TABLE replay.twice ("REGION" text, "ID" int, "VAL" text, "NOTE" text, "Note" text,
                           "UPDATED_AT" timestamptz);
SELECT dwr_merge('bey.t', source => 'replay.twice');
\echo :LAST_ERROR_SQLSTATE
-- a column of the very name wins
ALTER TABLE replay.twice ADD COLUMN note text;
INSERT INTO replay.twice VALUES ('eu', 20, 'exact name', 'NOTE', 'Note', '2025-01-26 00:00+00', 'note');
SELECT status, inserted FROM dwr_merge('bey.t', source => 'replay.twice');
SELECT id, val, note FROM bey.t WHERE id = 20;
-- the session's copy is dropped at commit, and made anew by each merge of a transaction
BEGIN;
SELECT status, inserted FROM dwr_merge('bey.t', dry_run => true, source => 'replay.twice');
SELECT status, inserted, unchanged FROM dwr_merge('bey.t', source => 'replay.twice');
COMMIT;
SELECT pg_catalog.to_regclass('pg_temp._dwr_source') AS copy_after_commit;
-- a change log is read the same way: without one of staging's columns it is refused with 0A000
-- (the compiled extension replays it, keeping production's value: 30_replay_some_columns)
CREATE TABLE replay.partial_changes ("Op" text, seq bigint, "REGION" text, "ID" int, "UPDATED_AT" timestamptz);
SELECT dwr_replay('bey.t', 'replay.partial_changes', order_by => '{seq}');
\echo :LAST_ERROR_SQLSTATE
DROP TABLE replay.partial, replay.twice, replay.partial_changes;
