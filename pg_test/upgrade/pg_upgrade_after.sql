-- pg_upgrade keeps the extension's state: on the new server, after pg_upgrade from the old one
-- (pg_upgrade_before.sql). Every check is an ASSERT: a failed one stops the script with its message.
DO $$
BEGIN
    ASSERT (SELECT count(*) FROM dwr.tables WHERE target = 'upg.customers'::regclass
             AND staging = 'upg_staging.customers'::regclass) = 1, 'the registration is lost';
    ASSERT (SELECT count(*) FROM dwr.reloads WHERE ended_at IS NULL
             AND 'upg.customers'::regclass = ANY (targets)) = 1, 'the open reload is lost';
    ASSERT (SELECT count(*) FROM dwr.tombstones WHERE target = 'upg.customers'::regclass
             AND key = '[10]') = 1, 'the tombstone is lost';
    ASSERT (SELECT count(*) FROM dwr.row_changes c JOIN dwr.merge_runs r USING (run_id)
             WHERE r.target = 'upg.customers'::regclass AND c.target = 'upg.customers'::regclass) = 5,
           'the run or its row images are lost';
END
$$;
-- the row CDC deleted, staged again inside the window, is not resurrected
INSERT INTO upg_staging.customers (customer_id, name, updated_at) VALUES (10, 'stale copy', '2025-01-15');
DO $$
DECLARE
    r dwr.merge_result;
BEGIN
    SELECT * INTO r FROM dwr_merge('upg.customers');
    ASSERT r.skipped_deleted = 1 AND r.inserted = 0, 'a deleted key was not skipped: ' || r::text;
    ASSERT NOT EXISTS (SELECT FROM upg.customers WHERE customer_id = 10), 'a deleted row came back';
    -- the run made before the upgrade can be undone
    SELECT * INTO r FROM dwr_undo((SELECT min(run_id) FROM dwr.merge_runs WHERE target = 'upg.customers'::regclass));
    ASSERT r.status = 'SUCCEEDED', 'undo: ' || r::text;
    ASSERT (SELECT string_agg(name, ',' ORDER BY customer_id) FROM upg.customers WHERE customer_id <= 5)
           = 'name 1,name 2,name 3,name 4,name 5', 'undo did not restore the rows';
    -- the delete trigger came along and records new deletes
    DELETE FROM upg.customers WHERE customer_id = 11;
    ASSERT (SELECT count(*) FROM dwr.tombstones WHERE target = 'upg.customers'::regclass AND key = '[11]') = 1,
           'a delete after the upgrade was not recorded';
END
$$;
SELECT 'pg_upgrade kept the registration, the open reload, the tombstone, the run and its images; '
       || 'the deleted key was skipped, the old run undone, a new delete recorded' AS result;
