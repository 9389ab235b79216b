# A lost window repaired under a real CDC applier: PostgreSQL's logical replication. Sourced by
# pg_test/run-all (after lib.sh); run with `logical_replication_test DIR PORT [replay|absent]`:
# the window repaired by replaying its change log (dwr_replay, the default), or by its full load
# and deletes by absence (dwr_merge, then dwr_delete_absent).
#
# One cluster (wal_level = logical), two databases: src (the source, publishing customers) and prod
# (production, subscribed; the apply worker runs with session_replication_role = replica). The
# source keeps updated_at (a trigger) and a change log of every change (the CDC task a repair
# starts at the window's start, as DMS writes to S3: Op, a sequence, the row; a D carries the
# deleted row). Then:
#   1. an outage: the subscription is disabled and the source inserts, updates and deletes rows,
#      some of them rows inserted during the outage (production never has them); the slot is
#      advanced past all of it: those changes are lost;
#   2. CDC resumes; the reload opens; the window's full load is copied into staging;
#   3. (replay) the source goes on: it updates and deletes rows production never had (CDC's UPDATE
#      and DELETE find nothing: no trigger fires, no tombstone);
#   4. (replay) the change log is copied and replayed (dwr_replay) while the source keeps updating
#      and deleting rows the replay writes too (CDC applies them meanwhile), and the full load is
#      merged after it; (absent) the full load is merged and the production rows it lacks are
#      removed (dwr_delete_absent), while the source keeps writing the same way. A full load can
#      only speak for the rows whose version lies in its window, so the absent way's window starts
#      before the table's first row: the load is the whole table as of the window's end (a delete
#      of a row production never had, step 3, is out of its reach: docs/guarantees.md);
#   5. once the subscriber caught up, production must equal the source row for row, with no apply
#      error.

logical_replication_test() {
    local dir=$1 port=$2 way=${3:-replay}
    start_cluster "$dir" "$port" "wal_level = logical" "max_replication_slots = 10" "max_wal_senders = 10" \
        "max_logical_replication_workers = 4" || return 1
    local s=(psql_port "$port" -d src -X -q -v ON_ERROR_STOP=1)
    local p=(psql_port "$port" -d prod -X -q -v ON_ERROR_STOP=1)
    psql_port "$port" -d postgres -q -c "CREATE DATABASE src" -c "CREATE DATABASE prod" || return 1
    "${s[@]}" >/dev/null <<'SQL' || return 1
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, city text, updated_at timestamptz NOT NULL);
-- the source's own version column
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.updated_at := clock_timestamp(); RETURN NEW; END $$;
CREATE TRIGGER touch BEFORE INSERT OR UPDATE ON customers FOR EACH ROW EXECUTE FUNCTION touch();
-- the change log a CDC task started at the window's start writes (not published)
CREATE TABLE changelog ("Op" text, seq bigserial, id int, name text, city text, updated_at timestamptz);
CREATE FUNCTION log_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    INSERT INTO changelog ("Op", id, name, city, updated_at) VALUES ('D', OLD.id, OLD.name, OLD.city, OLD.updated_at);
  ELSE
    INSERT INTO changelog ("Op", id, name, city, updated_at) VALUES (left(TG_OP, 1), NEW.id, NEW.name, NEW.city, NEW.updated_at);
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER log_change AFTER INSERT OR UPDATE OR DELETE ON customers FOR EACH ROW EXECUTE FUNCTION log_change();
INSERT INTO customers (id, name, city) SELECT g, 'customer ' || g, 'Oslo' FROM generate_series(1, 1000) g;
CREATE PUBLICATION pub FOR TABLE customers;
SELECT 1 FROM pg_create_logical_replication_slot('sub_slot', 'pgoutput');
SQL
    "${p[@]}" <<SQL || return 1
CREATE EXTENSION dms_window_reload;
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, city text, updated_at timestamptz NOT NULL);
CREATE SUBSCRIPTION sub CONNECTION 'host=$SOCKET_DIR port=$port dbname=src user=postgres'
  PUBLICATION pub WITH (create_slot = false, slot_name = 'sub_slot');
SQL
    lr_wait "$port" "SELECT count(*) = 0 FROM pg_subscription_rel WHERE srsubstate <> 'r'" "the initial copy" || return 1
    lr_caught_up "$port" || return 1
    "${p[@]}" -c "SELECT dwr_create_staging('customers') IS NOT NULL AS registered" >/dev/null || return 1

    # 1. the outage: the window's changes are made and lost
    local window_start window_end
    window_start=$("${s[@]}" -At -c "SELECT clock_timestamp()")
    [ "$way" = replay ] || window_start=$("${s[@]}" -At -c "SELECT min(updated_at) FROM customers")
    "${s[@]}" -c "TRUNCATE changelog" || return 1
    "${p[@]}" -c "ALTER SUBSCRIPTION sub DISABLE" || return 1
    lr_wait "$port" "SELECT NOT active FROM pg_replication_slots WHERE slot_name = 'sub_slot'" "the apply worker to stop" || return 1
    # (synchronous_commit on: a slot advances only as far as the WAL is flushed)
    "${s[@]}" <<'SQL' || return 1
SET synchronous_commit = on;
INSERT INTO customers (id, name, city) SELECT g, 'new in outage ' || g, 'Lima' FROM generate_series(1001, 1250) g;
UPDATE customers SET name = name || ' (outage)', city = 'Pune' WHERE id BETWEEN 1 AND 300;
DELETE FROM customers WHERE id BETWEEN 301 AND 400;
-- rows production never has: inserted in the outage, then updated or deleted in it
UPDATE customers SET name = name || ' (updated in outage)' WHERE id BETWEEN 1201 AND 1220;
DELETE FROM customers WHERE id BETWEEN 1221 AND 1250;
SQL
    "${s[@]}" -c "SELECT 1 FROM pg_replication_slot_advance('sub_slot', pg_current_wal_insert_lsn())" >/dev/null || return 1
    window_end=$("${s[@]}" -At -c "SELECT clock_timestamp()")

    # 2. CDC resumes; the reload opens; the window's full load into staging
    "${p[@]}" -c "ALTER SUBSCRIPTION sub ENABLE" -c "SELECT dwr_begin_reload('{customers}', '$window_start', '$window_end') > 0 AS reload_open" >/dev/null || return 1
    "${s[@]}" -c "COPY (SELECT id, name, city, updated_at FROM customers WHERE updated_at BETWEEN '$window_start' AND '$window_end') TO STDOUT" |
        "${p[@]}" -c "COPY staging.customers (id, name, city, updated_at) FROM STDIN" || return 1

    # 3. the source goes on: changes to rows production never had (CDC's statements find nothing)
    if [ "$way" = replay ]; then
        "${s[@]}" <<'SQL' || return 1
UPDATE customers SET name = name || ' (updated after the load)' WHERE id BETWEEN 1201 AND 1205;
DELETE FROM customers WHERE id BETWEEN 1206 AND 1210;
SQL
    fi
    lr_caught_up "$port" || return 1

    # 4. the change log replayed while the source keeps updating and deleting rows the replay
    # writes too (CDC applies them meanwhile: the newer row wins either way), then the full load
    # merged
    "${p[@]}" -c "CREATE SCHEMA replay" -c "CREATE TABLE replay.changes (\"Op\" text, seq bigint, id int, name text, city text, updated_at timestamptz)" || return 1
    "${s[@]}" -c "COPY changelog TO STDOUT" | "${p[@]}" -c "COPY replay.changes FROM STDIN" || return 1
    (
        for i in $(seq 1 40); do
            psql_port "$port" -d src -X -q -c "UPDATE customers SET name = 'cdc $i', city = 'Kyiv' WHERE id = $i" \
                -c "DELETE FROM customers WHERE id = 40 + $i" \
                -c "INSERT INTO customers (id, name, city) VALUES (2000 + $i, 'cdc new $i', 'Kyiv')" || exit 1
        done
    ) &
    local cdc=$!
    local replayed merged removed
    local counts="format('inserted %s, updated %s, unchanged %s, stale %s, skipped_deleted %s, deleted %s, deferred %s, errors %s', inserted, updated, unchanged, skipped_stale, skipped_deleted, deleted, deferred, errors)"
    if [ "$way" = replay ]; then
        replayed=$("${p[@]}" -At -c "SELECT $counts FROM dwr_replay('customers', 'replay.changes', order_by => '{seq}')") || { kill $cdc; return 1; }
        echo "dwr_replay: $replayed"
    fi
    merged=$("${p[@]}" -At -c "SELECT $counts FROM dwr_merge('customers')") || { kill $cdc; return 1; }
    echo "dwr_merge of the full load: $merged"
    if [ "$way" = absent ]; then
        removed=$("${p[@]}" -At -c "SELECT $counts FROM dwr_delete_absent('customers', max_deletes => 100)") || { kill $cdc; return 1; }
        echo "dwr_delete_absent: $removed"
    fi
    wait $cdc || return 1

    # 5. production equals the source, with no apply error
    lr_caught_up "$port" || return 1
    local q="SELECT id, name, city, updated_at FROM customers ORDER BY id"
    local differing errors
    differing=$(diff <("${s[@]}" -At -c "$q") <("${p[@]}" -At -c "$q") | grep -c '^[<>]' || true)
    errors=$("${p[@]}" -At -c "SELECT COALESCE(sum(apply_error_count + sync_error_count), 0) FROM pg_stat_subscription_stats")
    echo "rows differing between the source and production: $differing; apply errors: $errors"
    "${p[@]}" -c "DROP SUBSCRIPTION sub" >/dev/null
    stop_cluster "$dir"
    [ "$differing" = 0 ] && [ "$errors" = 0 ]
}

# lr_wait PORT QUERY WHAT: until QUERY (on prod, or src for the slot) says true, at most 60 s
lr_wait() {
    local port=$1 q=$2 what=$3 db=prod i
    [[ "$q" == *pg_replication_slots* ]] && db=src
    for i in $(seq 1 600); do
        [ "$(psql_port "$port" -d "$db" -X -At -c "$q")" = t ] && return 0
        sleep 0.1
    done
    echo "timed out waiting for $what" >&2
    return 1
}

# lr_caught_up PORT: the subscriber confirmed everything the source wrote so far
lr_caught_up() {
    local lsn
    lsn=$(psql_port "$1" -d src -X -At -c "SELECT pg_current_wal_insert_lsn()")
    lr_wait "$1" "SELECT confirmed_flush_lsn >= '$lsn' FROM pg_replication_slots WHERE slot_name = 'sub_slot'" "the subscriber to catch up"
}
