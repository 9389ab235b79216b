# No statement of a merge, a batch, an undo or a diff pays JIT compilation, on a server built with
# LLVM (Debian's PostgreSQL 15). Sourced by pg_test/run-all (after lib.sh and suite.sh); run with
# `jit_check DIR PORT` while PG_MAJOR is a server with JIT.
#
# The cluster compiles every query whose estimated cost passes 100 (jit_above_cost; the default is
# 100000, which a merge of this test's 15,000 rows would not reach) and pg_stat_statements counts
# the functions JIT compiled per statement, nested ones too (track = all). The control, a join of
# staging and production like the merge's, must show compiled functions (the server really has
# JIT); the statements the extension ran inside a merge, a batched merge, an undo and
# dwr_diff_summary must show none; the caller's own jit setting is as it was afterwards. Both
# modes: the compiled extension and the pg_tle package.

jit_check() {
    local dir=$1 port=$2
    start_cluster "$dir" "$port" "shared_preload_libraries = 'pg_stat_statements,pg_tle'" \
        "pg_stat_statements.track = all" "jit = on" "jit_above_cost = 100" "jit_inline_above_cost = 100" \
        "jit_optimize_above_cost = 100" || return 1
    local ok=0
    jit_check_mode "$port" compiled || ok=1
    jit_check_mode "$port" package || ok=1
    stop_cluster "$dir"
    return $ok
}

# jit_check_mode PORT compiled|package
jit_check_mode() {
    local port=$1 mode=$2 db=dwr_jit_$2 conn out
    if [ "$mode" = compiled ]; then
        psql_port "$port" -d postgres -q -c "SET client_min_messages = warning" \
            -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" || return 1
        psql_port "$port" -d "$db" -q -c "CREATE EXTENSION dms_window_reload" || return 1
        conn="host=$SOCKET_DIR port=$port user=postgres dbname=$db"
    else
        tle_database "$db" "$port" || return 1
        conn=$(tle_conn "$db" "$port")
    fi
    psql_port "$port" -d "$db" -q -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" || return 1
    "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$conn" <<'SQL' || return 1
CREATE SCHEMA jit;
CREATE TABLE jit.t (id int PRIMARY KEY, val text, updated_at int NOT NULL);
INSERT INTO jit.t SELECT g, 'prod', 1 FROM generate_series(1, 10000) g;
SELECT dwr_create_staging('jit.t', 'jit_staging') IS NOT NULL AS registered;
SQL
    [ "$mode" = compiled ] || "$DWR" tle install --quiet "$conn" || return 1
    local su=(psql_port "$port" -d "$db" -X -q -At) as=("$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 "$conn")
    local control merged statements
    "${as[@]}" -c "INSERT INTO jit_staging.t (id, val, updated_at) SELECT g, 'staged', 2 FROM generate_series(1, 15000) g" || return 1
    # the control: this server compiles a join of staging and production
    "${su[@]}" -c "SELECT pg_stat_statements_reset()" >/dev/null || return 1
    "${as[@]}" -c "SELECT count(*) FROM jit_staging.t s JOIN jit.t t USING (id) WHERE s.updated_at > t.updated_at" >/dev/null || return 1
    control=$("${su[@]}" -c "SELECT COALESCE(sum(jit_functions), 0) FROM pg_stat_statements WHERE query LIKE 'SELECT count(*) FROM jit_staging.t s JOIN jit.t t%'") || return 1
    # a merge, its undo, a diff, batches: every statement they ran, nested ones too
    "${su[@]}" -c "SELECT pg_stat_statements_reset()" >/dev/null || return 1
    merged=$("${as[@]}" <<'SQL'
SELECT 'merged ' || inserted || ' ' || updated FROM dwr_merge('jit.t');
SELECT 'undone ' || (dwr_undo(run_id)).updated FROM dwr.merge_runs WHERE target = 'jit.t'::regclass ORDER BY run_id DESC LIMIT 1;
UPDATE jit_staging.t SET _dwr_status = 'NEW';
SELECT 'diff ' || sum(count) FROM dwr_diff_summary('jit.t');
SELECT 'jit_after ' || current_setting('jit');
SQL
) || { echo "$merged"; return 1; }
    "${as[@]}" -c "CALL dwr_merge_batches('jit.t', 500)" >/dev/null 2>&1 || return 1
    statements=$("${su[@]}" -c "SELECT count(*) || ' statements, ' || COALESCE(sum(jit_functions), 0) || ' functions JIT compiled' FROM pg_stat_statements WHERE NOT toplevel") || return 1
    echo "$mode: the control query: $control functions JIT compiled; $(echo "$merged" | tr '\n' ';') the extension's: $statements"
    [ "$control" -gt 0 ] && [[ "$merged" == *"jit_after on"* ]] && [[ "$statements" == *" 0 functions JIT compiled" ]] &&
        [ "${statements%% *}" -gt 10 ]
}
