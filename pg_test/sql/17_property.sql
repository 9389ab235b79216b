-- Property test: random identifiers (every ASCII punctuation character, spaces, quotes, backslashes,
-- capitals, unicode, up to 63 bytes) for schemas, tables and columns, and random values (quotes,
-- backslashes, control characters, unicode), through dwr_create_staging, dwr_merge and dwr_diff; the
-- result is checked against a plain-SQL model of the merge written with format('%I').
CREATE SCHEMA prop;
SELECT setseed(0.42);
CREATE FUNCTION prop.rand_text(max_len int, pool text) RETURNS text LANGUAGE sql AS $$
  SELECT string_agg(substr(pool, 1 + floor(random() * length(pool))::int, 1), '')
    FROM generate_series(1, 1 + floor(random() * max_len)::int)
$$;
CREATE FUNCTION prop.rand_ident() RETURNS text LANGUAGE plpgsql AS $$
DECLARE s text;
BEGIN
  LOOP
    s := prop.rand_text(20, 'aZ9 _!"#$%&''()*+,-./:;<=>?@[\]^`{|}~éßΩ漢');
    EXIT WHEN octet_length(s) <= 63;
  END LOOP;
  RETURN s;
END $$;
CREATE FUNCTION prop.rand_value() RETURNS text LANGUAGE sql AS $$
  SELECT prop.rand_text(12, 'ab ''"\;%_' || chr(1) || chr(9) || chr(10) || chr(127) || 'é漢')
$$;
CREATE TABLE prop.result (n int, tbl text, mismatches bigint, diff_left bigint, merged bigint);
CREATE TABLE prop.cases (n int, q text, stg text, tbl text, k text, c text, v text);

-- the tables and their staging tables first (the pg_tle package generates their merges when its
-- operator runs dwr tle install: ${DWR_TLE_SYNC:-true} below)
DO $$
DECLARE
  n int; sch text; stg text; tbl text; k text; c text; v text; q text;
BEGIN
  FOR n IN 1..25 LOOP
    sch := 'p' || n || ' ' || prop.rand_ident();
    stg := 's' || n || ' ' || prop.rand_ident();
    tbl := prop.rand_ident();
    k := 'k ' || prop.rand_ident();
    c := 'c ' || prop.rand_ident();
    v := 'v ' || prop.rand_ident();
    sch := left(sch, 60); stg := left(stg, 60); k := left(k, 60); c := left(c, 60); v := left(v, 60);
    EXECUTE format('CREATE SCHEMA %I', sch);
    EXECUTE format('CREATE TABLE %I.%I (%I text PRIMARY KEY, %I text, %I int)', sch, tbl, k, c, v);
    q := format('%I.%I', sch, tbl);
    -- production: 8 random keys; staging: 4 of them again with random versions, 4 new
    EXECUTE format('INSERT INTO %s SELECT DISTINCT ON (key) key, prop.rand_value(), (random() * 10)::int
                      FROM (SELECT prop.rand_value() || g AS key FROM generate_series(1, 8) g) x', q);
    PERFORM dwr_create_staging(q::regclass, stg, v);
    EXECUTE format('INSERT INTO %I.%I (%I, %I, %I) SELECT key, prop.rand_value(), (random() * 10)::int
                      FROM (SELECT %I AS key FROM %s LIMIT 4) p
                    UNION ALL SELECT prop.rand_value() || ''new'' || g, prop.rand_value(), (random() * 10)::int
                      FROM generate_series(1, 4) g', stg, tbl, k, c, v, k, q);
    INSERT INTO prop.cases VALUES (n, q, stg, tbl, k, c, v);
  END LOOP;
END $$;
\! ${DWR_TLE_SYNC:-true}

-- each merged, and checked against the model
DO $$
DECLARE
  x prop.cases; target regclass; mism bigint; left_after bigint; merged bigint;
BEGIN
  FOR x IN SELECT * FROM prop.cases ORDER BY n LOOP
    target := x.q::regclass;
    -- the model: for each key the production row, or the staged row when it is strictly newer
    EXECUTE format('CREATE TEMP TABLE model ON COMMIT DROP AS
                    SELECT COALESCE(s.%1$I, p.%1$I) AS k,
                           CASE WHEN p.%1$I IS NULL OR s.%3$I > p.%3$I THEN s.%2$I ELSE p.%2$I END AS c,
                           CASE WHEN p.%1$I IS NULL OR s.%3$I > p.%3$I THEN s.%3$I ELSE p.%3$I END AS v
                      FROM %4$s p FULL JOIN %5$I.%6$I s ON s.%1$I = p.%1$I', x.k, x.c, x.v, x.q, x.stg, x.tbl);
    SELECT inserted + updated INTO merged FROM dwr_merge(target);
    EXECUTE format('SELECT count(*) FROM ((SELECT %1$I, %2$I, %3$I FROM %4$s EXCEPT SELECT k, c, v FROM model)
                                          UNION ALL (SELECT k, c, v FROM model EXCEPT SELECT %1$I, %2$I, %3$I FROM %4$s)) d',
                   x.k, x.c, x.v, x.q) INTO mism;
    SELECT count(*) INTO left_after FROM dwr_diff(target) WHERE difference IN ('older_in_production', 'missing_in_production');
    INSERT INTO prop.result VALUES (x.n, x.q, mism, left_after, merged);
    DROP TABLE model;
    PERFORM dwr_drop_staging(target);
  END LOOP;
END $$;

SELECT count(*) AS tables, sum(mismatches) AS mismatches, sum(diff_left) AS left_by_diff,
       sum(merged) > 0 AS merged_something
  FROM prop.result;
-- the names really were hostile (every name has a space; most have punctuation or unicode)
SELECT count(*) FILTER (WHERE tbl ~ '["'';\\ ]') AS names_needing_quotes,
       count(*) FILTER (WHERE tbl ~ '[^\x01-\x7f]') AS names_with_unicode
  FROM prop.result;

-- every function, every argument NULL in turn: a clear error (22004) or a NULL-free answer, never
-- an internal error
CREATE TABLE prop.t (id int PRIMARY KEY, updated_at timestamptz);
SELECT dwr_create_staging('prop.t', 'prop_staging');
\! ${DWR_TLE_SYNC:-true}
DO $$
DECLARE call text; state text; bad int := 0;
BEGIN
  FOREACH call IN ARRAY ARRAY[
    'dwr_create_staging(NULL)', 'dwr_create_staging(''prop.t'', NULL)', 'dwr_create_staging(''prop.t'', ''prop_staging'', NULL)',
    'dwr_drop_staging(NULL)', 'dwr_purge_staging(NULL)', 'dwr_purge_staging(''prop.t'', NULL)',
    'dwr_begin_reload(NULL, now(), now())', 'dwr_begin_reload(''{prop.t}'', NULL, now())', 'dwr_begin_reload(''{prop.t}'', now(), NULL)',
    'dwr_begin_reload(ARRAY[NULL]::regclass[], now(), now())', 'dwr_end_reload(NULL)',
    'dwr_merge(NULL)', 'dwr_merge(''prop.t'', NULL)', 'dwr_merge_all(-5)',
    'dwr_verify(NULL)', 'dwr_diff(NULL)', 'dwr_diff_summary(NULL)', 'dwr_undo(NULL)', 'dwr_purge_audit(NULL)',
    'dwr_dms_table_mappings(NULL, ''S'')', 'dwr_dms_table_mappings(1, NULL)', 'dwr_dms_task_settings(NULL)',
    'dwr_schedule(NULL, ''* * * * *'')', 'dwr_schedule(''prop.t'', NULL)', 'dwr_unschedule(NULL)'] LOOP
    -- (the pg_tle package has no SQL functions for the DMS documents: the dwr tool writes them)
    CONTINUE WHEN call LIKE 'dwr_dms%' AND pg_catalog.to_regproc('dwr_dms_task_settings') IS NULL;
    BEGIN
      EXECUTE 'SELECT ' || call;
    EXCEPTION WHEN OTHERS THEN
      GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE;
      IF state IN ('XX000', 'XX001', 'XX002') THEN
        RAISE WARNING '% raised internal error %', call, state;
        bad := bad + 1;
      END IF;
      INSERT INTO prop.result (n, tbl) VALUES (-1, call || ' -> ' || state);
    END;
  END LOOP;
  INSERT INTO prop.result (n, tbl, mismatches) VALUES (-2, 'internal errors', bad);
END $$;
SELECT tbl AS call_and_sqlstate FROM prop.result WHERE n = -1 AND tbl NOT LIKE 'dwr_dms%' ORDER BY tbl;
-- (the compiled extension's DMS functions: 22004 too)
SELECT count(*) FILTER (WHERE tbl NOT LIKE '%-> 22004') AS dms_calls_not_22004 FROM prop.result WHERE n = -1 AND tbl LIKE 'dwr_dms%';
SELECT mismatches AS internal_errors FROM prop.result WHERE n = -2;

-- a staging table another role owns, with a trigger that would make that role a superuser if a
-- privileged merge ever fired it: refused before any row is touched
CREATE ROLE dwr_mallory;
GRANT dwr_mallory TO CURRENT_USER;   -- (so that a role that is not a superuser may give it tables)
CREATE TABLE prop.victim (id int PRIMARY KEY, updated_at timestamptz);
CREATE SCHEMA prop_mallory;
CREATE TABLE prop_mallory.victim (id int, updated_at timestamptz);
CREATE FUNCTION prop_mallory.escalate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN EXECUTE 'ALTER ROLE dwr_mallory SUPERUSER'; RETURN NEW; END $$;
CREATE TRIGGER escalate BEFORE INSERT OR UPDATE ON prop_mallory.victim FOR EACH ROW EXECUTE FUNCTION prop_mallory.escalate();
GRANT USAGE, CREATE ON SCHEMA prop_mallory TO dwr_mallory;
ALTER TABLE prop_mallory.victim OWNER TO dwr_mallory;
ALTER FUNCTION prop_mallory.escalate() OWNER TO dwr_mallory;
-- (the refusal's SQLSTATE, message and hint, with the caller's name, which differs between the
-- compiled extension's test role and the package's, written <caller>)
CREATE FUNCTION prop.refusal(call text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE msg text; hint text;
BEGIN
  EXECUTE 'SELECT ' || call;
  RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
  RETURN SQLSTATE || ': ' || replace(msg || ' HINT: ' || hint, current_user, '<caller>');
END $$;
SELECT prop.refusal($$dwr_create_staging('prop.victim', 'prop_mallory')$$) AS staging_refused;
\! ${DWR_TLE_SYNC:-true}
SELECT prop.refusal($$dwr_merge('prop.t', source => 'prop_mallory.victim')$$) AS source_refused;
SELECT rolsuper AS mallory_is_superuser FROM pg_roles WHERE rolname = 'dwr_mallory';
DROP SCHEMA prop_mallory CASCADE;
DROP ROLE dwr_mallory;
