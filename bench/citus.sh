#!/usr/bin/env bash
# The merge benchmark (bench/merge.sql) on a local Citus cluster: a coordinator and two workers on
# this machine (ports DWR_BENCH_PORT .. +2, default 55440), the extension built with --release.
# Runs twice in one go, on the same cluster and data sizes: first with plain tables on the
# coordinator (the single-server figure), then with bench.customers distributed (4 shards per
# worker) and staging co-located with it; every variant, dwr_merge and the plain-SQL alternatives,
# runs in both. Usage: bash bench/citus.sh [prod rows] [staged rows]   (default 1000000 200000)
set -euo pipefail
cd "$(dirname "$0")/.."
source pg_test/lib.sh
PROD=${1:-1000000}
STAGED=${2:-200000}
PORT=${DWR_BENCH_PORT:-55440}
DIR=${DWR_BENCH_DIR:-/tmp/dwr-bench-citus}
ensure_all
install_extension --release
trap 'stop_citus_cluster "$DIR"' EXIT
start_citus_cluster "$DIR" "$PORT" "shared_buffers = 1GB" "max_wal_size = 4GB" "citus.shard_count = 8"
for distributed in false true; do
    log "bench/merge.sql, distributed = $distributed ($PROD production rows, $STAGED staged)"
    psql_port "$PORT" -d postgres -v prod="$PROD" -v staged="$STAGED" -v distributed=$distributed \
        -f bench/merge.sql | sed -n '/median_seconds/,/rows)/p'
done
