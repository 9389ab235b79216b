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
    DWR_TLE_SYNC="$DWR tle install --quiet $(tle_conn dwr_regress_tle)" \
        DWR_TLE_CHECK="$DWR tle check $(tle_conn dwr_regress_tle)" \
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

# the Citus scenarios against a running coordinator
citus_regress() {
    local out=$WORK/citus-regress-out
    rm -rf "$out"
    mkdir -p "$out"
    "$PGX_DIR/src/test/regress/pg_regress" --host="$SOCKET_DIR" --port="$CITUS_PORT" --use-existing \
        --user=postgres --inputdir=pg_test --outputdir="$out" --dbname=postgres \
        $(tests_of citus_schedule "$@") || {
        show_diffs "$out"
        return 1
    }
}
