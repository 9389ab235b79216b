# Shared by pg_test/run-all (every test) and pg_test/demo (a demo reload): install what is
# missing, build and install the extension into Debian's PostgreSQL 15, start throw-away clusters.
# Sourced, not run. Everything is idempotent: a second run skips what is already there.

set -euo pipefail

PG_MAJOR=15
PG_BIN=/usr/lib/postgresql/$PG_MAJOR/bin
PG_CONFIG=$PG_BIN/pg_config
PGX_DIR=/usr/lib/postgresql/$PG_MAJOR/lib/pgxs
PGRX_VERSION=0.18.0
SOCKET_DIR=${DWR_SOCKET_DIR:-/tmp}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

log() { printf '\n==> %s\n' "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Debian packages: the server, its headers and pg_regress, bindgen's clang, pg_cron, OpenSSL's
# headers (the dwr tool connects with TLS).
ensure_packages() {
    ensure_debian_packages "" postgresql-$PG_MAJOR postgresql-server-dev-$PG_MAJOR clang libclang-dev pkg-config \
        sudo postgresql-$PG_MAJOR-cron gcc make libssl-dev
}

# ensure_debian_packages WHY PACKAGE...: apt-get install the ones that are missing (once).
ensure_debian_packages() {
    local why=$1 missing=() p
    shift
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing Debian packages${why:+ for $why}: ${missing[*]}"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
}

# cargo-pgrx of the version the crate pins, and its one-time init against Debian's pg_config.
ensure_pgrx() {
    if ! command -v cargo >/dev/null 2>&1; then
        echo "cargo not found: install the Rust toolchain (rustup) first" >&2
        exit 1
    fi
    if ! cargo pgrx --version 2>/dev/null | grep -q "$PGRX_VERSION"; then
        log "installing cargo-pgrx $PGRX_VERSION (takes several minutes, once)"
        cargo install cargo-pgrx --version "$PGRX_VERSION" --locked
    fi
    if ! grep -qs "^pg$PG_MAJOR = " "${PGRX_HOME:-$HOME/.pgrx}/config.toml"; then
        log "cargo pgrx init --pg$PG_MAJOR $PG_CONFIG"
        cargo pgrx init --pg$PG_MAJOR "$PG_CONFIG"
    fi
}

# pg_tle (Trusted Language Extensions, how Amazon RDS and Aurora let a non-superuser install an
# extension written in SQL and PL/pgSQL): not in Debian's archive, so built from the vendored release
# tarball (pg_test/vendor, checked against its sha256) into Debian's PostgreSQL, once.
PG_TLE_VERSION=1.5.2
PG_TLE_SHA256=8fb28f2a79d452ebd244a072f5eee7570894abca3112fbb27df033f78003480f
ensure_pg_tle() {
    local sharedir
    sharedir=$("$PG_CONFIG" --sharedir)
    if [ -f "$sharedir/extension/pg_tle--$PG_TLE_VERSION.sql" ] || ls "$sharedir"/extension/pg_tle--*--"$PG_TLE_VERSION".sql >/dev/null 2>&1; then
        return 0
    fi
    local tarball=$REPO/pg_test/vendor/pg_tle-$PG_TLE_VERSION.tar.gz
    if ! echo "$PG_TLE_SHA256  $tarball" | sha256sum -c --quiet; then
        echo "$tarball does not have the sha256 of pg_tle $PG_TLE_VERSION" >&2
        return 1
    fi
    ensure_debian_packages pg_tle flex bison libkrb5-dev
    log "building pg_tle $PG_TLE_VERSION from $tarball"
    local build
    build=$(mktemp -d)
    tar -xzf "$tarball" -C "$build"
    (cd "$build/pg_tle-$PG_TLE_VERSION" && make -s PG_CONFIG="$PG_CONFIG" >/dev/null 2>&1 &&
        as_root make -s PG_CONFIG="$PG_CONFIG" install >/dev/null)
    rm -rf "$build"
}

# Citus (the tests' multi-node cluster): not in Debian's archive either, built from the vendored
# release tarball (pg_test/vendor, sha256-checked) into Debian's PostgreSQL, once (about 3 minutes).
CITUS_VERSION=12.1.12
CITUS_SHA256=a344da15513601e718a268d907e1c86e43a69eb243398b929f65a4580723f552
ensure_citus() {
    local sharedir
    sharedir=$("$PG_CONFIG" --sharedir)
    if [ -f "$("$PG_CONFIG" --pkglibdir)/citus.so" ] && grep -qs "default_version = '12.1-1'" "$sharedir/extension/citus.control"; then
        return 0
    fi
    local tarball=$REPO/pg_test/vendor/citus-$CITUS_VERSION.tar.gz
    if ! echo "$CITUS_SHA256  $tarball" | sha256sum -c --quiet; then
        echo "$tarball does not have the sha256 of Citus $CITUS_VERSION" >&2
        return 1
    fi
    ensure_debian_packages Citus libcurl4-openssl-dev liblz4-dev libzstd-dev libkrb5-dev libselinux1-dev \
        libxslt1-dev libpam0g-dev libreadline-dev
    log "building Citus $CITUS_VERSION from $tarball (once, a few minutes)"
    local build
    build=$(mktemp -d)
    tar -xzf "$tarball" -C "$build"
    (cd "$build/citus-$CITUS_VERSION" && ./configure PG_CONFIG="$PG_CONFIG" >"$build/configure.log" 2>&1 &&
        make -j2 >"$build/make.log" 2>&1 && as_root make install >"$build/install.log" 2>&1) || {
        tail -30 "$build"/*.log >&2
        rm -rf "$build"
        return 1
    }
    rm -rf "$build"
}

# start_citus_cluster DIR PORT [SETTING...]: a coordinator on PORT and two workers on PORT+1,
# PORT+2 (localhost), each with the given postgresql.conf lines too.
start_citus_cluster() {
    local dir=$1 port=$2 n
    shift 2
    mkdir -p "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
    for n in 0 1 2; do
        start_cluster "$dir/node$n" $((port + n)) "shared_preload_libraries = 'citus'" \
            "listen_addresses = 'localhost'" "max_prepared_transactions = 20" "wal_level = logical" "$@" || return 1
        psql_port $((port + n)) -d postgres -q -c "SET client_min_messages = warning" -c "CREATE EXTENSION citus" || return 1
    done
    psql_port "$port" -d postgres -q -c "SELECT citus_set_coordinator_host('localhost', $port)" \
        -c "SELECT citus_add_node('localhost', $((port + 1)))" -c "SELECT citus_add_node('localhost', $((port + 2)))" >/dev/null
}

stop_citus_cluster() {
    local dir=$1 n
    for n in 0 1 2; do stop_cluster "$dir/node$n"; done
}

ensure_all() {
    ensure_packages
    ensure_pgrx
    ensure_pg_tle
    ensure_citus
}

# Build the extension and install it into Debian's PostgreSQL ($1: extra cargo pgrx flags).
install_extension() {
    log "building and installing dms_window_reload into PostgreSQL $PG_MAJOR"
    (cd "$REPO" && as_root env "PATH=$PATH" "HOME=$HOME" "CARGO_HOME=${CARGO_HOME:-$HOME/.cargo}" \
        "RUSTUP_HOME=${RUSTUP_HOME:-$HOME/.rustup}" \
        cargo pgrx install --pg-config "$PG_CONFIG" ${1:-})
}

# Run a command as the postgres OS user (initdb refuses root), or as ourselves when not root.
as_postgres() {
    if [ "$(id -u)" -eq 0 ]; then sudo -u postgres "$@"; else "$@"; fi
}

# start_cluster DIR PORT [postgresql.conf lines...]: a fresh cluster, trust auth on a Unix socket.
start_cluster() {
    local dir=$1 port=$2
    shift 2
    stop_cluster "$dir"
    rm -rf "$dir"
    mkdir -p "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
    as_postgres "$PG_BIN/initdb" -D "$dir" -A trust -U postgres --no-sync --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    {
        echo "port = $port"
        echo "listen_addresses = ''"
        echo "unix_socket_directories = '$SOCKET_DIR'"
        echo "fsync = off"
        echo "synchronous_commit = off"
        echo "full_page_writes = off"
        echo "max_locks_per_transaction = 256"
        echo "log_min_messages = warning"
        for line in "$@"; do echo "$line"; done
    } | as_postgres tee -a "$dir/postgresql.conf" >/dev/null
    as_postgres "$PG_BIN/pg_ctl" -D "$dir" -l "$dir.log" -w -t 60 start >/dev/null
}

stop_cluster() {
    local dir=$1
    if [ -f "$dir/postmaster.pid" ]; then
        as_postgres "$PG_BIN/pg_ctl" -D "$dir" -m fast -w stop >/dev/null 2>&1 || true
    fi
}

# psql against a cluster started by start_cluster: psql_port PORT [psql args...]
psql_port() {
    local port=$1
    shift
    "$PG_BIN/psql" -X -v ON_ERROR_STOP=1 -h "$SOCKET_DIR" -p "$port" -U postgres "$@"
}
