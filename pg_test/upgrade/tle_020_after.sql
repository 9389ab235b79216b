-- After `dwr tle install` of this version updated the 0.2.0 package (tle_020_before.sql): the new
-- base's table changes applied, its whole script the default version (so that a restored dump
-- re-creates the tables as they are now), the shared functions there, the old tombstone still
-- stopping its key. Every check is an ASSERT.
DO $$
BEGIN
    ASSERT (SELECT extversion FROM pg_extension WHERE extname = 'dms_window_reload_tle') = '0.6.0.000000',
           'the package was not updated to 0.6.0.000000';
    ASSERT (SELECT default_version FROM pgtle.available_extensions() WHERE name = 'dms_window_reload_tle') = '0.6.0.000000',
           'the new base is not the default version';
    ASSERT (SELECT pg_catalog.format_type(atttypid, atttypmod) FROM pg_attribute
             WHERE attrelid = 'dwr.tombstones'::regclass AND attname = 'target') = 'regclass',
           'dwr.tombstones.target is still an OID';
    ASSERT (SELECT count(*) FROM dwr.tombstones WHERE target = 'upg_prod.t'::regclass AND key = '[3]') = 1,
           'the tombstone of the 0.2.0 package is lost';
    ASSERT to_regprocedure('dwr._lock_for_ddl(regclass, text, text)') IS NOT NULL
           AND to_regprocedure('dwr_retry_errors(regclass)') IS NOT NULL, 'the shared functions are missing';
END
$$;
INSERT INTO upg_staging.t (id, v, updated_at) VALUES (3, 'again', '2025-01-02'), (4, 'newer', '2025-01-02');
DO $$
DECLARE
    r dwr.merge_result;
BEGIN
    SELECT * INTO r FROM dwr_merge('upg_prod.t');
    ASSERT r.skipped_deleted = 1 AND r.updated = 1 AND r.inserted = 0, 'merge after the update: ' || r::text;
END
$$;
