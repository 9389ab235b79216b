-- dms_window_reload: the extension's own schema, tables and types.
--
-- Every name is schema-qualified and every function and operator comes from pg_catalog, so the
-- search_path in force at CREATE EXTENSION changes nothing. The tables are owned by the role that
-- runs CREATE EXTENSION; nobody else may write them: merges append their runs through the
-- extension's own code, which writes as that owner (see README, "Security").

CREATE SCHEMA dwr;
COMMENT ON SCHEMA dwr IS
  'dms_window_reload: registrations, merge runs and reports. Functions live in the schema the extension was installed into.';
GRANT USAGE ON SCHEMA dwr TO PUBLIC;

CREATE TABLE dwr.tables (
    target           pg_catalog.regclass    PRIMARY KEY,
    staging          pg_catalog.regclass    NOT NULL UNIQUE,
    version_column   pg_catalog.name        NOT NULL,
    staging_created  pg_catalog.bool        NOT NULL,
    tracking_since   pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.now(),
    registered_at    pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.now(),
    registered_by    pg_catalog.name        NOT NULL DEFAULT CURRENT_USER
);
COMMENT ON TABLE dwr.tables IS
  'One row a production table registered by dwr_create_staging: its staging table and version column.';
COMMENT ON COLUMN dwr.tables.target IS 'the production table';
COMMENT ON COLUMN dwr.tables.staging IS 'the staging table a full load fills';
COMMENT ON COLUMN dwr.tables.version_column IS 'the production column that orders versions of a row (a staged row wins only when strictly greater)';
COMMENT ON COLUMN dwr.tables.staging_created IS 'true when dwr_create_staging created staging, false when it adopted a table that already existed (one a DMS task created)';
COMMENT ON COLUMN dwr.tables.tracking_since IS 'when staging was created or last emptied of NEW rows by dwr_purge_staging';
COMMENT ON COLUMN dwr.tables.registered_at IS 'when the table was registered (or registered again)';
COMMENT ON COLUMN dwr.tables.registered_by IS 'the role that registered it';

CREATE TABLE dwr.merge_runs (
    run_id                  pg_catalog.int8        GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind                    pg_catalog.text        NOT NULL DEFAULT 'merge'
                            CHECK (kind OPERATOR(pg_catalog.=) ANY ('{merge,undo}'::pg_catalog.text[])),
    target                  pg_catalog.regclass    NOT NULL,
    target_name             pg_catalog.text        NOT NULL,
    source_name             pg_catalog.text        NOT NULL,
    dry_run                 pg_catalog.bool        NOT NULL,
    status                  pg_catalog.text        NOT NULL
                            CHECK (status OPERATOR(pg_catalog.=) ANY
                                   ('{RUNNING,SUCCEEDED,SUCCEEDED_WITH_ERRORS,DRY_RUN,FAILED}'::pg_catalog.text[])),
    run_by                  pg_catalog.name        NOT NULL,
    session_user_name       pg_catalog.name        NOT NULL,
    backend_pid             pg_catalog.int4        NOT NULL,
    started_at              pg_catalog.timestamptz NOT NULL,
    finished_at             pg_catalog.timestamptz,
    duration                pg_catalog.interval,
    inserted                pg_catalog.int8,
    updated                 pg_catalog.int8,
    unchanged               pg_catalog.int8,
    skipped_stale           pg_catalog.int8,
    skipped_deleted         pg_catalog.int8,
    skipped_outside_window  pg_catalog.int8,
    deferred                pg_catalog.int8,
    errors                  pg_catalog.int8,
    deleted                 pg_catalog.int8,
    undo_of                 pg_catalog.int8,
    row_audit               pg_catalog.bool,
    reload_id               pg_catalog.int8,
    window_start            pg_catalog.timestamptz,
    window_end              pg_catalog.timestamptz,
    error_sqlstate          pg_catalog.text,
    error_message           pg_catalog.text,
    writes_began            pg_catalog.timestamptz
);
CREATE INDEX merge_runs_target_idx ON dwr.merge_runs (target, run_id);
CREATE UNIQUE INDEX merge_runs_undo_of_idx ON dwr.merge_runs (undo_of) WHERE undo_of IS NOT NULL;
COMMENT ON TABLE dwr.merge_runs IS
  'One row a merge: who ran it, when, on what, with which counts and outcome. Appended by the extension only.';
COMMENT ON COLUMN dwr.merge_runs.run_id IS 'the run; staged rows it decided carry it in _dwr_run_id';
COMMENT ON COLUMN dwr.merge_runs.kind IS 'merge, or undo (a dwr_undo of the run in undo_of)';
COMMENT ON COLUMN dwr.merge_runs.deleted IS
  'dwr_replay: production rows a replayed D removed; undo: rows the undone merge had inserted and the undo deleted';
COMMENT ON COLUMN dwr.merge_runs.undo_of IS 'undo: the run it took back';
COMMENT ON COLUMN dwr.merge_runs.writes_began IS
  'when the merge began writing production: its rows stay locked from then to the commit, so finished_at minus this is the longest a CDC write to one of them waited (NULL: an undo, a dry run, a run from before 0.6.0)';
COMMENT ON COLUMN dwr.merge_runs.row_audit IS 'whether the run wrote before and after images to dwr.row_changes (dwr.row_audit)';
COMMENT ON COLUMN dwr.merge_runs.target IS 'the production table (kept by name through pg_dump and pg_restore; a number once the table is dropped)';
COMMENT ON COLUMN dwr.merge_runs.target_name IS 'schema-qualified name of the production table at the time of the run';
COMMENT ON COLUMN dwr.merge_runs.source_name IS 'schema-qualified name of the table merged from';
COMMENT ON COLUMN dwr.merge_runs.dry_run IS 'true when the run computed its counts and changed nothing';
COMMENT ON COLUMN dwr.merge_runs.status IS 'RUNNING, SUCCEEDED, SUCCEEDED_WITH_ERRORS (some rows ERROR), DRY_RUN, FAILED';
COMMENT ON COLUMN dwr.merge_runs.run_by IS 'the role whose privileges the merge used (current_user)';
COMMENT ON COLUMN dwr.merge_runs.session_user_name IS 'the session''s login role';
COMMENT ON COLUMN dwr.merge_runs.backend_pid IS 'the server process that ran the merge';
COMMENT ON COLUMN dwr.merge_runs.started_at IS 'when the merge started (clock time)';
COMMENT ON COLUMN dwr.merge_runs.finished_at IS 'when it finished';
COMMENT ON COLUMN dwr.merge_runs.duration IS 'finished_at - started_at';
COMMENT ON COLUMN dwr.merge_runs.inserted IS 'staged rows inserted into production';
COMMENT ON COLUMN dwr.merge_runs.updated IS 'staged rows that replaced an older production version';
COMMENT ON COLUMN dwr.merge_runs.unchanged IS 'staged rows whose version production already had';
COMMENT ON COLUMN dwr.merge_runs.skipped_stale IS 'staged rows older than production, or superseded by a newer staged row of the same key';
COMMENT ON COLUMN dwr.merge_runs.skipped_deleted IS 'staged rows whose key production deleted since tracking began';
COMMENT ON COLUMN dwr.merge_runs.skipped_outside_window IS 'staged rows outside the open reload''s window (left NEW)';
COMMENT ON COLUMN dwr.merge_runs.deferred IS 'staged rows left NEW because CDC held the production row';
COMMENT ON COLUMN dwr.merge_runs.errors IS 'staged rows marked ERROR';
COMMENT ON COLUMN dwr.merge_runs.reload_id IS 'the open reload whose window the merge applied (NULL: none was open)';
COMMENT ON COLUMN dwr.merge_runs.window_start IS 'start of that window (inclusive)';
COMMENT ON COLUMN dwr.merge_runs.window_end IS 'end of that window (inclusive)';
COMMENT ON COLUMN dwr.merge_runs.error_sqlstate IS 'SQLSTATE of the error that failed the run';
COMMENT ON COLUMN dwr.merge_runs.error_message IS 'text of the error that failed the run';

CREATE TABLE dwr.row_changes (
    run_id      pg_catalog.int8        NOT NULL,
    target      pg_catalog.regclass    NOT NULL,
    key         pg_catalog.jsonb       NOT NULL,
    action      pg_catalog.text        NOT NULL
                CHECK (action OPERATOR(pg_catalog.=) ANY ('{insert,update,delete,restore}'::pg_catalog.text[])),
    before      pg_catalog.jsonb,
    after       pg_catalog.jsonb
);
CREATE INDEX row_changes_run_idx ON dwr.row_changes (run_id);
COMMENT ON TABLE dwr.row_changes IS
  'Before and after image of every production row a merge (or an undo) changed, when dwr.row_audit is on. Readable by the extension owner only: the images hold production data.';
COMMENT ON COLUMN dwr.row_changes.run_id IS 'the run in dwr.merge_runs';
COMMENT ON COLUMN dwr.row_changes.target IS 'the production table';
COMMENT ON COLUMN dwr.row_changes.key IS 'the row''s primary key, as a jsonb array in key column order';
COMMENT ON COLUMN dwr.row_changes.action IS
  'insert or update (a merge), delete (dwr_replay removing a row the source deleted); delete (an undo removing an inserted row), restore (an undo putting the before image back) or insert (an undo putting a removed row back)';
COMMENT ON COLUMN dwr.row_changes.before IS 'the whole row before the change (to_jsonb); NULL for an insert';
COMMENT ON COLUMN dwr.row_changes.after IS 'the whole row after the change; NULL for a delete';

CREATE TABLE dwr.reloads (
    reload_id     pg_catalog.int8        GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    targets       pg_catalog.regclass[]  NOT NULL,
    window_start  pg_catalog.timestamptz NOT NULL,
    window_end    pg_catalog.timestamptz NOT NULL,
    began_at      pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.now(),
    began_by      pg_catalog.name        NOT NULL DEFAULT CURRENT_USER,
    ended_at      pg_catalog.timestamptz,
    ended_by      pg_catalog.name,
    lob_max_kb    pg_catalog.int4,
    CHECK (window_start OPERATOR(pg_catalog.<=) window_end)
);
COMMENT ON TABLE dwr.reloads IS
  'One row a reload opened by dwr_begin_reload: its tables and time window; open until dwr_end_reload.';
COMMENT ON COLUMN dwr.reloads.reload_id IS 'the reload';
COMMENT ON COLUMN dwr.reloads.targets IS 'the production tables it reloads; a table is in at most one open reload';
COMMENT ON COLUMN dwr.reloads.window_start IS 'first version (inclusive) a merge takes from staging while the reload is open';
COMMENT ON COLUMN dwr.reloads.window_end IS 'last version (inclusive) a merge takes from staging while the reload is open';
COMMENT ON COLUMN dwr.reloads.began_at IS 'when it was opened: deletes in production from then on stop staged rows of the same key';
COMMENT ON COLUMN dwr.reloads.began_by IS 'the role that opened it';
COMMENT ON COLUMN dwr.reloads.ended_at IS 'when dwr_end_reload closed it (NULL: open)';
COMMENT ON COLUMN dwr.reloads.ended_by IS 'the role that closed it';
COMMENT ON COLUMN dwr.reloads.lob_max_kb IS
  'LobMaxSize (KB) of the reload''s DMS task settings in limited LOB mode, as dwr_dms_task_settings (or dwr dms task-settings) wrote them; NULL: full LOB mode, or not written. While the reload is open, the merge marks ERROR a staged row whose LOB-like value is at least this long (possibly truncated by the loader).';

CREATE TABLE dwr.tombstones (
    target      pg_catalog.regclass    NOT NULL,
    key         pg_catalog.jsonb       NOT NULL,
    deleted_at  pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    deleted_xid pg_catalog.xid8        NOT NULL DEFAULT pg_catalog.pg_current_xact_id()
);
CREATE INDEX tombstones_target_key_idx ON dwr.tombstones (target, key, deleted_at);
COMMENT ON TABLE dwr.tombstones IS
  'Deletes seen on registered production tables (by their delete-tracking trigger, whatever session_replication_role): a staged row whose key production deleted since the reload began is skipped, never re-inserted. Pruned when no open reload or staging table needs a row any more.';
COMMENT ON COLUMN dwr.tombstones.target IS 'the production table (the root of a partitioned table)';
COMMENT ON COLUMN dwr.tombstones.key IS 'the deleted row''s primary key, as a jsonb array in key column order';
COMMENT ON COLUMN dwr.tombstones.deleted_at IS 'clock time of the delete';
COMMENT ON COLUMN dwr.tombstones.deleted_xid IS 'the deleting transaction';

-- Both tables hold the operator's data: pg_dump keeps their rows.
SELECT pg_catalog.pg_extension_config_dump('dwr.tables', '');
SELECT pg_catalog.pg_extension_config_dump('dwr.reloads', '');
SELECT pg_catalog.pg_extension_config_dump('dwr.reloads_reload_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('dwr.tombstones', '');
SELECT pg_catalog.pg_extension_config_dump('dwr.row_changes', '');
SELECT pg_catalog.pg_extension_config_dump('dwr.merge_runs', '');
SELECT pg_catalog.pg_extension_config_dump('dwr.merge_runs_run_id_seq', '');

REVOKE ALL ON dwr.tables, dwr.merge_runs, dwr.reloads, dwr.tombstones FROM PUBLIC;
GRANT SELECT ON dwr.tables, dwr.merge_runs, dwr.reloads, dwr.tombstones TO PUBLIC;
REVOKE ALL ON dwr.row_changes FROM PUBLIC;

CREATE TYPE dwr.merge_result AS (
    run_id                  pg_catalog.int8,
    target                  pg_catalog.regclass,
    status                  pg_catalog.text,
    inserted                pg_catalog.int8,
    updated                 pg_catalog.int8,
    unchanged               pg_catalog.int8,
    skipped_stale           pg_catalog.int8,
    skipped_deleted         pg_catalog.int8,
    skipped_outside_window  pg_catalog.int8,
    deferred                pg_catalog.int8,
    errors                  pg_catalog.int8,
    duration                pg_catalog.interval,
    deleted                 pg_catalog.int8
);
COMMENT ON TYPE dwr.merge_result IS
  'What one merge did: its run, the table, its status and a count for every outcome of a staged row.';
