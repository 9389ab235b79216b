# The runners of the SQL scenarios and concurrency specs, shared by pg_test/run-all (every test)
# and pg_test/regress (the tests named, against the installed extension). Sourced after lib.sh.
# Each takes the names of the tests to run; with none, its schedule (pg_test/schedule,
# isolation_schedule, tle_schedule, tle_isolation_schedule, citus_schedule). They use WORK (the
# output folders), PORT (a running cluster with the extension installed), CITUS_PORT (a running
# Citus coordinator) and DWR (the dwr tool, built).

WORK=${WORK:-${DWR_TEST_DIR:-/tmp/dwr-test}}
PORT=${PORT:-${DWR_TEST_PORT:-54329}}
CITUS_DIR=${CITUS_DIR:-$WORK/citus}
CITUS_PORT=${CITUS_PORT:-$((PORT + 10))}
TLE_ROLE=dwr_tle_admin
DWR=$REPO/target/debug/dwr

# tests_of SCHEDULE [NAME...]: the names given, or the schedule's
tests_of() {
    local schedule=$1
    shift
    if [ $# -gt 0 ]; then echo "$@"; else grep -v '^#' "pg_test/$schedule" | xargs; fi
}

# show_diffs DIR: the differences a failed pg_regress or pg_isolation_regress run left
show_diffs() {
    cat "$1/regression.diffs" 2>/dev/null | head -200
}

# the SQL scenarios of the compiled extension (a fresh database dwr_regress; 00_setup, which
# creates the extension, first when names are given)
regress() {
    local out=$WORK/regress-out tests
    rm -rf "$out"
    mkdir -p "$out"
    tests=$(tests_of schedule "$@")
    [ $# -eq 0 ] || [[ " $tests " == *" 00_setup "* ]] || tests="00_setup $tests"
    "$PGX_DIR/src/test/regress/pg_regress" --host="$SOCKET_DIR" --port="$PORT" \
        --user=postgres --inputdir=pg_test --outputdir="$out" --dbname=dwr_regress $tests || {
        show_diffs "$out"
        return 1
    }
}

# the concurrency specs of the compiled extension (a fresh database dwr_isolation)
isolation() {
    local out=$WORK/isolation-out
    rm -rf "$out"
    mkdir -p "$out"
    psql_port "$PORT" -d postgres -q -c "SET client_min_messages = warning" \
        -c "DROP DATABASE IF EXISTS dwr_isolation" -c "CREATE DATABASE dwr_isolation"
    psql_port "$PORT" -d dwr_isolation -q -c "CREATE EXTENSION dms_window_reload"
    "$PGX_DIR/src/test/isolation/pg_isolation_regress" --host="$SOCKET_DIR" --use-existing \
        --port="$PORT" --user=postgres --inputdir=pg_test --outputdir="$out" --dbname=dwr_isolation \
        $(tests_of isolation_schedule "$@") || {
        show_diffs "$out"
        return 1
    }
}

tle_conn() { echo "host=$SOCKET_DIR port=${2:-$PORT} user=$TLE_ROLE dbname=$1"; }
# a fresh database owned by the RDS-like role, with pg_tle (created by a superuser, as
# rds_superuser does on RDS) and the package installed by that role
tle_database() { # DATABASE [PORT] [no-package]
    psql_port "${2:-$PORT}" -d postgres -q -c "SET client_min_messages = warning" \
        -c "DO \$\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$TLE_ROLE') THEN
                CREATE ROLE $TLE_ROLE LOGIN CREATEDB CREATEROLE NOSUPERUSER; END IF; END \$\$" \
        -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1 OWNER $TLE_ROLE" || return 1
    # rds_superuser may set session_replication_role (CDC appliers such as DMS run with replica)
    psql_port "${2:-$PORT}" -d "$1" -q -c "SET client_min_messages = warning" -c "CREATE EXTENSION pg_tle" \
        -c "GRANT pgtle_admin TO $TLE_ROLE" \
        -c "GRANT SET ON PARAMETER session_replication_role TO $TLE_ROLE" || return 1
    [ "${3:-}" = no-package ] || "$DWR" tle install --quiet "$(tle_conn "$1" "${2:-$PORT}")"
}

# the SQL scenarios against the pg_tle package (tle_setup first when names are given)
tle_regress() {
    local out=$WORK/tle-regress-out tests
    rm -rf "$out"
    mkdir -p "$out"
    tests=$(tests_of tle_schedule "$@")
    [ $# -eq 0 ] || [[ " $tests " == *" tle_setup "* ]] || tests="tle_setup $tests"
    tle_database dwr_regress_tle || return 1
    # a foreign-data wrapper for 16_security's foreign table (made by a superuser, as on RDS; only
    # here: the fault tests' dumps are restored by the package's owner)
    psql_port "$PORT" -d dwr_regress_tle -q -c "CREATE FOREIGN DATA WRAPPER dwr_fdw" \
        -c "GRANT USAGE ON FOREIGN DATA WRAPPER dwr_fdw TO $TLE_ROLE" || return 1
    DWR_TLE_SYNC="$DWR tle install --quiet $(tle_conn dwr_regress_tle)" \
        DWR_TLE_CHECK="$DWR tle check $(tle_conn dwr_regress_tle)" \
        DWR_TLE_DWR="$DWR" DWR_TLE_CONN="$(tle_conn dwr_regress_tle)" \
        "$PGX_DIR/src/test/regress/pg_regress" --host="$SOCKET_DIR" --port="$PORT" --use-existing \
        --user=$TLE_ROLE --inputdir=pg_test --outputdir="$out" --dbname=dwr_regress_tle $tests || {
        show_diffs "$out"
        return 1
    }
}

spec_block() { awk -v b="$1" '$0 ~ "^"b"$" {f=1; next} f && /^}/ {exit} f && !/^\{/ {print}' "$2"; }
# the concurrency specs against the pg_tle package: each spec's setup runs once first, so that the
# package generates the merges of its tables, then its teardown
tle_isolation() {
    local out=$WORK/tle-isolation-out spec specs
    rm -rf "$out"
    mkdir -p "$out"
    specs=$(tests_of tle_isolation_schedule "$@")
    tle_database dwr_isolation_tle || return 1
    for spec in $specs; do
        { echo "SET client_min_messages = warning;"; spec_block setup "pg_test/specs/$spec.spec"; } |
            "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$(tle_conn dwr_isolation_tle)" >/dev/null || return 1
    done
    "$DWR" tle install --quiet "$(tle_conn dwr_isolation_tle)" || return 1
    for spec in $specs; do
        { echo "SET client_min_messages = warning;"; spec_block teardown "pg_test/specs/$spec.spec"; } |
            "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$(tle_conn dwr_isolation_tle)" >/dev/null || return 1
    done
    "$PGX_DIR/src/test/isolation/pg_isolation_regress" --host="$SOCKET_DIR" --use-existing \
        --port="$PORT" --user=$TLE_ROLE --inputdir=pg_test --outputdir="$out" --dbname=dwr_isolation_tle $specs || {
        show_diffs "$out"
        return 1
    }
}

# the Citus scenarios against a running coordinator (DWR_CITUS: single-server scenarios the
# schedule lists distribute their production table)
citus_regress() {
    local out=$WORK/citus-regress-out
    rm -rf "$out"
    mkdir -p "$out"
    DWR_CITUS=distributed "$PGX_DIR/src/test/regress/pg_regress" --host="$SOCKET_DIR" --port="$CITUS_PORT" --use-existing \
        --user=postgres --inputdir=pg_test --outputdir="$out" --dbname=postgres \
        $(tests_of citus_schedule "$@") || {
        show_diffs "$out"
        return 1
    }
}

# the pg_tle package's scheduled merges: pg_cron jobs made by dwr_schedule run dwr_merge_recorded
# (a healthy table merged, a broken one leaves a FAILED run) and dwr_merge_all, on a cluster of its
# own (PORT + 4) whose pg_cron runs in the package's database
tle_cron_test() {
    local dir=$WORK/cron-tle port=$((PORT + 4)) conn
    start_cluster "$dir" "$port" "shared_preload_libraries = 'pg_cron,pg_tle'" "cron.database_name = 'dwr_cron_tle'" \
        "cron.use_background_workers = on" "max_worker_processes = 32"
    psql_port "$port" -d postgres -q -c "SET client_min_messages = warning" \
        -c "CREATE ROLE $TLE_ROLE LOGIN CREATEDB CREATEROLE NOSUPERUSER" -c "CREATE DATABASE dwr_cron_tle OWNER $TLE_ROLE"
    psql_port "$port" -d dwr_cron_tle -q -c "SET client_min_messages = warning" -c "CREATE EXTENSION pg_cron" \
        -c "CREATE EXTENSION pg_tle" -c "GRANT pgtle_admin TO $TLE_ROLE" -c "GRANT USAGE ON SCHEMA cron TO $TLE_ROLE"
    conn="host=$SOCKET_DIR port=$port user=$TLE_ROLE dbname=dwr_cron_tle"
    "$DWR" tle install --quiet "$conn" || return 1
    "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$conn" -f - <<'SQL' || return 1
CREATE SCHEMA production;
CREATE TABLE production.customers (customer_id int PRIMARY KEY, name text, updated_at timestamptz);
CREATE TABLE production.orders (order_id int PRIMARY KEY, customer_id int REFERENCES production.customers, updated_at timestamptz);
-- a table whose merge fails as a whole (a trigger raising an error that is not about one row)
CREATE TABLE production.broken (id int PRIMARY KEY, updated_at timestamptz);
CREATE FUNCTION production.refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'maintenance in progress' USING ERRCODE = 'XX000'; END $$;
CREATE TRIGGER refuse BEFORE INSERT ON production.broken FOR EACH ROW EXECUTE FUNCTION production.refuse();
SELECT dwr_create_staging('production.orders');
SELECT dwr_create_staging('production.customers');
SELECT dwr_create_staging('production.broken');
SQL
    "$DWR" tle install --quiet "$conn" || return 1
    local merged_all
    merged_all=$("$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 "$conn" \
        -c "INSERT INTO staging.customers (customer_id, name, updated_at) VALUES (1, 'one', '2025-01-02')" \
        -c "INSERT INTO staging.orders (order_id, customer_id, updated_at) VALUES (10, 1, '2025-01-02')" \
        -c "SELECT string_agg(target || ':' || status || ':' || inserted, ' ') FROM dwr_merge_all() WHERE target::text <> 'production.broken'") || return 1
    echo "dwr_merge_all: $merged_all"
    "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$conn" \
        -c "INSERT INTO staging.customers (customer_id, name, updated_at) VALUES (2, 'two', '2025-01-03')" \
        -c "INSERT INTO staging.broken (id, updated_at) VALUES (1, '2025-01-03')" \
        -c "SELECT dwr_schedule('production.customers', '* * * * *') > 0 AS scheduled" \
        -c "SELECT dwr_schedule('production.broken', '* * * * *') > 0 AS scheduled" \
        -c "SELECT jobname, command FROM cron.job ORDER BY jobname" || return 1
    # both jobs ran: the healthy one merged customer 2 and the broken one left a FAILED run (each
    # counted on its own: two failures of the broken job alone must not pass)
    local done=0 merged=0 failed_runs=0
    for _ in $(seq 1 100); do
        read -r merged failed_runs < <("$PG_BIN/psql" -X -At -F ' ' "$conn" -c "SELECT
            (SELECT count(*) FROM production.customers WHERE customer_id = 2),
            (SELECT count(*) FROM dwr.merge_runs WHERE target_name = 'production.broken' AND status = 'FAILED')")
        if [ "$merged" -ge 1 ] && [ "$failed_runs" -ge 1 ]; then done=1; break; fi
        sleep 1
    done
    echo "scheduled merges: customer 2 merged: $merged; FAILED runs of production.broken: $failed_runs"
    "$PG_BIN/psql" -X "$conn" -c "SELECT target_name, status, run_by, inserted, error_sqlstate, error_message FROM dwr.merge_runs ORDER BY run_id" \
        -c "SELECT dwr_unschedule('production.customers')" -c "SELECT dwr_unschedule('production.broken')" \
        -At -c "SELECT count(*) AS jobs_left FROM cron.job"
    stop_cluster "$dir"
    [ "$merged_all" = "production.customers:SUCCEEDED:1 production.orders:SUCCEEDED:1" ] && [ "$done" = 1 ]
}

# A DO block that runs STATEMENT and passes only when it is refused with 55000 and the hint to run
# ALTER EXTENSION ... UPDATE (what this library says to a database whose SQL is older).
says_to_update() {
    cat <<SQL
DO \$\$ DECLARE h text; BEGIN
  $1;
  RAISE EXCEPTION 'it ran on a database whose SQL is older than the library';
EXCEPTION WHEN object_not_in_prerequisite_state THEN
  GET STACKED DIAGNOSTICS h = PG_EXCEPTION_HINT;
  IF h IS DISTINCT FROM 'Run ALTER EXTENSION dms_window_reload UPDATE; in this database.' THEN
    RAISE EXCEPTION 'unexpected hint: %', h;
  END IF;
END \$\$
SQL
}

# An RDS user's package of 0.2.0 (its install script frozen in pg_test/upgrade) in DATABASE, updated
# by this dwr: tle_020_after.sql's ASSERTs, and the result the same as a fresh package.
tle_upgrade_from_020() { # DATABASE PORT
    local conn
    tle_database "$1" "$2" no-package || return 1
    conn=$(tle_conn "$1" "$2")
    "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$conn" -v script="$(cat pg_test/upgrade/dms_window_reload_tle--0.2.0.000000.sql)" \
        -f pg_test/upgrade/tle_020_before.sql >/dev/null || return 1
    "$DWR" tle install "$conn" || return 1
    "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$conn" -f pg_test/upgrade/tle_020_after.sql || return 1
    tle_same_as_fresh "$conn" "$2"
}
# the package updated from 0.2.0 (CONN, on PORT) holds what a fresh package holds whose database registered
# the same table: every object, definition, column, comment and privilege (pg_test/upgrade/objects.sql;
# the generation number of the version aside)
tle_same_as_fresh() { # CONN PORT
    local fresh=dwr_tle_fresh fconn updated installed
    tle_database "$fresh" "$2" || return 1
    fconn=$(tle_conn "$fresh" "$2")
    "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$fconn" -c "CREATE SCHEMA upg_prod" \
        -c "CREATE TABLE upg_prod.t (id int PRIMARY KEY, v text, updated_at timestamptz)" \
        -c "SELECT dwr_create_staging('upg_prod.t', 'upg_staging')" >/dev/null || return 1
    "$DWR" tle install --quiet "$fconn" || return 1
    objects() {
        "$PG_BIN/psql" -X -At -v ON_ERROR_STOP=1 "$1" -v extname=dms_window_reload_tle \
            -f pg_test/upgrade/objects.sql | grep -v '^version '
    }
    updated=$(objects "$1") && installed=$(objects "$fconn") || return 1
    if [ "$updated" != "$installed" ]; then
        diff <(echo "$updated") <(echo "$installed")
        return 1
    fi
    echo "the package updated from 0.2.0: $(echo "$installed" | wc -l) objects, columns, constraints and indexes as in a fresh package"
}

# The upgrade paths: every earlier release (its install script frozen in pg_test/upgrade) updated to
# this version must hold exactly the objects, definitions, columns and comments of a fresh install.
upgrade() {
    local from=$1 sharedir
    sharedir="$("$PG_CONFIG" --sharedir)/extension"
    as_root cp "$REPO/pg_test/upgrade/dms_window_reload--$from.sql" "$sharedir/"
    psql_port "$PORT" -d postgres -q -c "SET client_min_messages = warning" \
        -c "DROP DATABASE IF EXISTS dwr_upgraded" -c "CREATE DATABASE dwr_upgraded" \
        -c "DROP DATABASE IF EXISTS dwr_fresh" -c "CREATE DATABASE dwr_fresh" || return 1
    psql_port "$PORT" -d dwr_upgraded -q -v ON_ERROR_STOP=1 -c "CREATE EXTENSION dms_window_reload VERSION '$from'" || return 1
    # before the update, a function that is PL/pgSQL since 0.5.0 still points at its C symbol,
    # which says what to do (src/legacy.rs)
    case "$from" in
        0.[1-4].0)
            psql_port "$PORT" -d dwr_upgraded -q -v ON_ERROR_STOP=1 \
                -c "$(says_to_update "PERFORM dwr_end_reload(1)")" || return 1
            ;;
    esac
    # ... and dwr_merge_all, PL/pgSQL since 0.6.0
    psql_port "$PORT" -d dwr_upgraded -q -v ON_ERROR_STOP=1 \
        -c "$(says_to_update "PERFORM * FROM dwr_merge_all()")" || return 1
    psql_port "$PORT" -d dwr_upgraded -q -v ON_ERROR_STOP=1 -c "ALTER EXTENSION dms_window_reload UPDATE" || return 1
    psql_port "$PORT" -d dwr_fresh -q -v ON_ERROR_STOP=1 -c "CREATE EXTENSION dms_window_reload" || return 1
    local upgraded fresh
    upgraded=$(psql_port "$PORT" -d dwr_upgraded -At -f pg_test/upgrade/objects.sql) || return 1
    fresh=$(psql_port "$PORT" -d dwr_fresh -At -f pg_test/upgrade/objects.sql) || return 1
    if [ "$upgraded" != "$fresh" ]; then
        diff <(echo "$upgraded") <(echo "$fresh")
        return 1
    fi
    echo "$from updated to $(echo "$fresh" | sed -n 's/^version //p'): $(echo "$fresh" | wc -l) objects, columns, constraints and indexes, with their definitions and privileges, as in a fresh install"
    # a table registered before the update gets what a table registered now gets: since 0.6.0 the
    # capture of a DELETE by key that matched no row (a tombstone although nothing was deleted).
    # This library does not register a table in a database whose SQL is older (it needs this
    # version's shared PL/pgSQL, and says to update, 55000), so the table is registered as 0.5.0
    # did: its row in dwr.tables and its delete trigger.
    [ "$from" = 0.5.0 ] || return 0
    local missed
    missed=$(psql_port "$PORT" -d postgres -q -c "SET client_min_messages = warning" \
        -c "DROP DATABASE IF EXISTS dwr_upgraded_registered" -c "CREATE DATABASE dwr_upgraded_registered" &&
        psql_port "$PORT" -d dwr_upgraded_registered -q -At -v ON_ERROR_STOP=1 \
            -c "SET client_min_messages = warning" \
            -c "CREATE EXTENSION dms_window_reload VERSION '$from'" \
            -c "CREATE TABLE public.t (id int PRIMARY KEY, updated_at int)" \
            -c "$(says_to_update "PERFORM dwr_create_staging('public.t')")" \
            -c "CREATE SCHEMA staging" -c "CREATE TABLE staging.t (LIKE public.t)" \
            -c "INSERT INTO dwr.tables (target, staging, version_column, staging_created, registered_by, tracking_since)
                VALUES ('public.t', 'staging.t', 'updated_at', true, CURRENT_USER, pg_catalog.now())" \
            -c "CREATE TRIGGER dwr_record_delete AFTER DELETE ON public.t FOR EACH ROW EXECUTE FUNCTION dwr._record_delete('id')" \
            -c "ALTER TABLE public.t ENABLE ALWAYS TRIGGER dwr_record_delete" \
            -c "ALTER EXTENSION dms_window_reload UPDATE" \
            -c "DELETE FROM public.t WHERE id = 1" \
            -c "SELECT 'missed delete recorded: ' || count(*) FROM dwr.tombstones WHERE key = '[1]'") || return 1
    echo "$missed" | tail -1
    [ "$(echo "$missed" | tail -1)" = "missed delete recorded: 1" ]
}
