-- dwr_create_staging's refusals, with one expected output for the compiled extension and the
-- pg_tle package: the same SQLSTATE, message, DETAIL and HINT in both modes (the calling role's
-- name, which differs between the two runs, shown as <caller>).
\set SHOW_CONTEXT never
CREATE SCHEMA cs;
CREATE FUNCTION cs.refusal(call text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE st text; msg text; det text; hnt text;
BEGIN
    EXECUTE call;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL,
                            hnt = PG_EXCEPTION_HINT;
    RETURN replace(concat_ws(E'\n', st || ': ' || msg, 'DETAIL: ' || nullif(det, ''),
                             'HINT: ' || nullif(hnt, '')), current_user, '<caller>');
END $$;
CREATE TABLE cs.t (id int PRIMARY KEY, v text, updated_at timestamptz NOT NULL);
CREATE TABLE cs.no_key (id int, updated_at timestamptz);
CREATE VIEW cs.v AS SELECT * FROM cs.t;
CREATE TEMPORARY TABLE tmp_t (id int PRIMARY KEY, updated_at timestamptz);
CREATE TABLE cs.json_version (id int PRIMARY KEY, updated_at json);
-- staging in production's own schema
SELECT cs.refusal($$SELECT dwr_create_staging('cs.t', 'cs')$$);
-- a view where staging would go
CREATE SCHEMA cs_views;
CREATE VIEW cs_views.t AS SELECT * FROM cs.t;
SELECT cs.refusal($$SELECT dwr_create_staging('cs.t', 'cs_views')$$);
-- a staging table another role owns
CREATE ROLE dwr_cs_other;
GRANT dwr_cs_other TO CURRENT_USER;
CREATE SCHEMA cs_other;
CREATE TABLE cs_other.t (id int PRIMARY KEY, v text, updated_at timestamptz);
GRANT CREATE ON SCHEMA cs_other TO dwr_cs_other;
ALTER TABLE cs_other.t OWNER TO dwr_cs_other;
SELECT cs.refusal($$SELECT dwr_create_staging('cs.t', 'cs_other')$$);
-- what the shared checks refuse: a view, a temporary table, no primary key, no version column,
-- a version without ordering, a NULL argument
SELECT cs.refusal($$SELECT dwr_create_staging('cs.v')$$);
SELECT cs.refusal($$SELECT dwr_create_staging('tmp_t')$$);
SELECT cs.refusal($$SELECT dwr_create_staging('cs.no_key')$$);
SELECT cs.refusal($$SELECT dwr_create_staging('cs.t', 'cs_staging', 'changed_at')$$);
SELECT cs.refusal($$SELECT dwr_create_staging('cs.json_version')$$);
SELECT cs.refusal($$SELECT dwr_create_staging('cs.t', NULL)$$);
-- a production table the caller does not own (a role that is not a superuser)
CREATE TABLE cs.u (id int PRIMARY KEY, v text, updated_at timestamptz NOT NULL);
GRANT CREATE ON SCHEMA cs TO dwr_cs_other;
ALTER TABLE cs.u OWNER TO dwr_cs_other;
CREATE ROLE dwr_cs_stranger;
GRANT USAGE ON SCHEMA cs TO dwr_cs_stranger;
GRANT dwr_cs_stranger TO CURRENT_USER;
SET ROLE dwr_cs_stranger;
SELECT cs.refusal($$SELECT dwr_create_staging('cs.u', 'cs_staging')$$);
RESET ROLE;
-- none of them left anything behind
SELECT count(*) AS registered FROM dwr.tables WHERE target::text LIKE 'cs.%';
SELECT count(*) AS staging_schemas FROM pg_namespace WHERE nspname = 'cs_staging';
DROP TABLE tmp_t;
SET client_min_messages = warning;
DROP SCHEMA cs, cs_views, cs_other CASCADE;
REVOKE dwr_cs_other FROM CURRENT_USER;
REVOKE dwr_cs_stranger FROM CURRENT_USER;
DROP ROLE dwr_cs_other, dwr_cs_stranger;
