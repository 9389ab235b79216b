-- dry_run computes every count and changes nothing; a merge is one transaction: all or nothing.
-- (errors raised inside PL/pgSQL carry a CONTEXT line in the pg_tle package; not shown, as in
-- the compiled extension; ${DWR_TLE_SYNC:-true} is where a pg_tle operator runs dwr tle install)
\set SHOW_CONTEXT never
CREATE SCHEMA atom;
CREATE TABLE atom.t (id int PRIMARY KEY, val text CHECK (val <> 'bad'), updated_at timestamp);
INSERT INTO atom.t VALUES (1, 'one', '2025-01-01'), (2, 'two', '2025-01-05');
SELECT dwr_create_staging('atom.t', staging_schema => 'atom_staging');
\! ${DWR_TLE_SYNC:-true}
INSERT INTO atom_staging.t (id, val, updated_at) VALUES
    (1, 'one, newer', '2025-01-02'), (2, 'two, older', '2025-01-04'), (3, 'three', '2025-01-01'),
    (4, 'bad', '2025-01-01'), (5, 'five', NULL);
CREATE TEMP TABLE prod_before AS SELECT * FROM atom.t;
CREATE TEMP TABLE stage_before AS SELECT * FROM atom_staging.t;

SELECT status, inserted, updated, unchanged, skipped_stale, errors FROM dwr_merge('atom.t', dry_run => true);
-- nothing changed, in production or in staging (both ways: a row removed counts too)
SELECT (SELECT count(*) FROM ((TABLE atom.t EXCEPT TABLE prod_before)
                              UNION ALL (TABLE prod_before EXCEPT TABLE atom.t)) d) AS prod_changed,
       (SELECT count(*) FROM ((TABLE atom_staging.t EXCEPT TABLE stage_before)
                              UNION ALL (TABLE stage_before EXCEPT TABLE atom_staging.t)) d) AS staging_changed;
-- the real merge gives the same counts
SELECT status, inserted, updated, unchanged, skipped_stale, errors FROM dwr_merge('atom.t');
SELECT dry_run, status, inserted, updated, skipped_stale, errors
  FROM dwr.merge_runs WHERE target_name = 'atom.t' ORDER BY run_id;

-- a merge inside a transaction that rolls back leaves no trace in production or staging
UPDATE atom_staging.t SET _dwr_status = 'NEW', val = 'one, newest', updated_at = '2025-01-03' WHERE id = 1;
BEGIN;
SELECT updated FROM dwr_merge('atom.t');
ROLLBACK;
SELECT * FROM atom.t WHERE id = 1;
SELECT _dwr_status FROM atom_staging.t WHERE id = 1;

-- an error that is not about one row (here a trigger that fails the statement with 55000) fails
-- the whole merge: production and staging stay exactly as they were
CREATE FUNCTION atom.refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.id = 1 THEN
    RAISE EXCEPTION 'maintenance in progress' USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER refuse BEFORE UPDATE ON atom.t FOR EACH ROW EXECUTE FUNCTION atom.refuse();
INSERT INTO atom_staging.t (id, val, updated_at) VALUES (6, 'six', '2025-01-01');
CREATE TEMP TABLE prod_before2 AS SELECT * FROM atom.t;
SELECT dwr_merge('atom.t');
\echo :LAST_ERROR_SQLSTATE
SELECT (SELECT count(*) FROM ((TABLE atom.t EXCEPT TABLE prod_before2)
                              UNION ALL (TABLE prod_before2 EXCEPT TABLE atom.t)) d) AS prod_changed,
       (SELECT count(*) FROM atom_staging.t WHERE _dwr_status = 'NEW') AS still_new;
-- a row-level complaint from a trigger (RAISE with the default P0001) only fails that row
CREATE OR REPLACE FUNCTION atom.refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.id = 1 THEN RAISE EXCEPTION 'row 1 is frozen'; END IF;
  RETURN NEW;
END $$;
SELECT inserted, updated, errors FROM dwr_merge('atom.t');
SELECT id, _dwr_status, _dwr_error FROM atom_staging.t WHERE id IN (1, 6) ORDER BY id;
