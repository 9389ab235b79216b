#!/usr/bin/env bash
# CDC latency while a window is merged: pgbench plays a serial CDC applier (one connection, a fixed
# rate: 80% single-row updates, 10% inserts, 10% deletes on production, as DMS applies changes in
# source order) while each variant merges the same staged rows into a fresh copy of production:
# (a) the seed's procedure (UPDATE ... FROM, anti-join INSERT, marking), (b) dwr_merge, (c) dwr_merge
# trying the fast way first (dwr.fast_merge on), (d) CALL dwr_merge_batches with a fixed batch size,
# (e) with a stall budget of 100 ms (max_stall alone). An applier that waits on one held row delays every change behind it: the
# stall is what operators see as CDC latency. Reports, per variant, p50, p99 and the worst latency
# of the applier's changes during the merge (bench/cdc_latency/report.sql).
#
#   bash bench/cdc_latency.sh [PROD_ROWS STAGED_ROWS RATE BATCH]     # defaults 1000000 200000 300 10000
#   DWR_BENCH_VARIANTS="2 5" bash bench/cdc_latency.sh                  # only variants (b) and (e)
#
# On a server of its own (port 54360, PostgreSQL of DWR_PG_MAJOR, 18 by default), the extension
# built with --release. Not part of the test command: a benchmark, with timings that depend on the
# machine.
source "$(dirname "$0")/../pg_test/lib.sh"
cd "$REPO"
PROD=${1:-1000000}
STAGED=${2:-200000}
RATE=${3:-300}
BATCH=${4:-10000}
DIR=${DWR_BENCH_DIR:-/tmp/dwr-bench-cdc}
PORT=${DWR_BENCH_PORT:-54360}

ensure_base
install_extension --release
start_cluster "$DIR" "$PORT" "shared_buffers = '1GB'" "max_wal_size = '4GB'"
trap 'stop_cluster "$DIR"' EXIT
q() { psql_port "$PORT" -d postgres -q "$@"; }
logs=$(mktemp -d)
chmod 777 "$logs"

q -c "CREATE EXTENSION dms_window_reload" -c "CREATE SCHEMA bench" -c "CREATE SCHEMA bench_staging" \
  -c "CREATE TABLE bench.result (variant text, round int, seconds float8)" \
  -c "CREATE SCHEMA bench_cdc" \
  -c "CREATE TABLE bench_cdc.windows (ord int, variant text, started timestamptz, finished timestamptz)" \
  -c "CREATE TABLE bench_cdc.log (variant text, ended timestamptz, latency_us bigint)"
q -f bench/prepare.sql

# variant number, name, SQL (run as its own statement: a CALL must not be in a transaction block)
variants=(
    "seed procedure|UPDATE bench.customers p SET name = s.name, email = s.email, city = s.city, updated_at = s.updated_at FROM bench_staging.customers s WHERE s.customer_id = p.customer_id AND s.updated_at > p.updated_at; INSERT INTO bench.customers (customer_id, name, email, city, updated_at) SELECT s.customer_id, s.name, s.email, s.city, s.updated_at FROM bench_staging.customers s WHERE NOT EXISTS (SELECT 1 FROM bench.customers p WHERE p.customer_id = s.customer_id); UPDATE bench_staging.customers SET _dwr_status = 'PROCESSED';"
    "dwr_merge|SELECT * FROM dwr_merge('bench.customers');"
    "dwr_merge, fast way|SET dwr.fast_merge = on; SELECT * FROM dwr_merge('bench.customers');"
    "dwr_merge_batches($BATCH)|CALL dwr_merge_batches('bench.customers', $BATCH);"
    "dwr_merge_batches(max_stall => 100 ms)|CALL dwr_merge_batches('bench.customers', max_stall => interval '100 ms');"
)
ord=0
for v in "${variants[@]}"; do
    ord=$((ord + 1))
    case " ${DWR_BENCH_VARIANTS:-1 2 3 4 5} " in *" $ord "*) ;; *) continue ;; esac
    name=${v%%|*}
    sql=${v#*|}
    log "variant $ord: $name, $STAGED staged rows into $PROD, CDC at $RATE changes/s"
    q -c "SELECT bench.prepare($PROD, $STAGED)" -c "CHECKPOINT"
    rm -f "$logs"/applier*
    # the applier: one connection, a fixed rate, its own log of every change
    (cd "$logs" && "$PG_BIN/pgbench" -h "$SOCKET_DIR" -p "$PORT" -U postgres -n -c 1 -j 1 -R "$RATE" -T 30 \
        -D prod="$PROD" -l --log-prefix=applier \
        -f "$REPO/bench/cdc_latency/update.sql@80" -f "$REPO/bench/cdc_latency/insert.sql@10" \
        -f "$REPO/bench/cdc_latency/delete.sql@10" postgres >"$logs/pgbench.out" 2>&1) &
    applier=$!
    sleep 3
    started=$(q -Atc "SELECT clock_timestamp()")
    psql_port "$PORT" -d postgres -q -c "SET client_min_messages = warning" -c "$sql" >/dev/null
    finished=$(q -Atc "SELECT clock_timestamp()")
    wait "$applier"
    q -c "INSERT INTO bench_cdc.windows VALUES ($ord, '$name', '$started', '$finished')"
    # pgbench -l: client, transaction, latency (us), script, epoch seconds, microseconds[, lag]
    awk -v v="$name" '{ printf "%s\t%s.%06d\t%s\n", v, $5, $6, $3 }' "$logs"/applier* |
        q -c "CREATE TEMP TABLE raw (variant text, epoch numeric, latency_us bigint)" \
          -c "\\copy raw FROM pstdin" \
          -c "INSERT INTO bench_cdc.log SELECT variant, to_timestamp(epoch::float8), latency_us FROM raw"
done
q -f bench/cdc_latency/report.sql
rm -rf "$logs"
