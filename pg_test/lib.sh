# Shared by pg_test/run-all (every test) and pg_test/demo (a demo reload): install what is
# missing, build and install the extension into a PostgreSQL server, start throw-away clusters.
# Sourced, not run. Everything is idempotent: a second run skips what is already there.
#
# The server version comes from DWR_PG_MAJOR: 18 (the default) and 17 are built from the PostgreSQL
# sources in pg_test/vendor into prefixes of their own (DWR_PG_PREFIX, default /opt/dwr/pg18 and
# /opt/dwr/pg17; Debian 12 has no packages of them); 15 is Debian's. use_pg switches between them.
#
# Every Debian package and account a step needs is made by that step (ensure_debian_packages next
# to it; ensure_postgres_account before the first cluster), so the first command works on a bare
# Debian 12 with only a Rust toolchain: pg_test/fresh-machine proves it.

set -euo pipefail

PGRX_VERSION=0.18.0
SOCKET_DIR=${DWR_SOCKET_DIR:-/tmp}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENDOR=$REPO/pg_test/vendor
# the versions the project tests; the first is the default, the others run the scenarios and specs
PG_MAJORS=(18 15 17)

# use_pg MAJOR: PG_MAJOR, PG_BIN (initdb, pg_ctl, psql, pg_dump ...), PG_CONFIG and PGX_DIR (where
# pg_regress and pg_isolation_regress live) of that server version.
use_pg() {
    PG_MAJOR=$1
    case "$PG_MAJOR" in
        15) PG_BIN=/usr/lib/postgresql/15/bin PGX_DIR=/usr/lib/postgresql/15/lib/pgxs ;;
        17 | 18)
            local prefix=${DWR_PG_PREFIX:-/opt/dwr/pg$PG_MAJOR}
            # DWR_PG_PREFIX names the default version's prefix only
            [ "$PG_MAJOR" = "${DWR_PG_MAJOR:-${PG_MAJORS[0]}}" ] || prefix=/opt/dwr/pg$PG_MAJOR
            PG_BIN=$prefix/bin PGX_DIR=$prefix/lib/postgresql/pgxs
            ;;
        *)
            echo "DWR_PG_MAJOR=$PG_MAJOR: the tests run PostgreSQL ${PG_MAJORS[*]}" >&2
            return 1
            ;;
    esac
    PG_CONFIG=$PG_BIN/pg_config
    # a prefix whose path names neither postgres nor pgsql puts pgxs under lib/postgresql; ask
    # pg_config once the server is there
    if [ -x "$PG_CONFIG" ]; then
        PGX_DIR=$(dirname "$(dirname "$(dirname "$("$PG_CONFIG" --pgxs)")")")
    fi
}
use_pg "${DWR_PG_MAJOR:-${PG_MAJORS[0]}}"

log() { printf '\n==> %s\n' "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Debian packages: bindgen's clang, OpenSSL's headers (the dwr tool connects with TLS), the
# compilers; for 15 the server, its headers and pg_regress, and pg_cron.
ensure_packages() {
    ensure_debian_packages "" clang libclang-dev pkg-config sudo gcc make libssl-dev zlib1g-dev
    if [ "$PG_MAJOR" = 15 ]; then
        ensure_debian_packages "PostgreSQL 15" postgresql-15 postgresql-server-dev-15 postgresql-15-cron
    fi
}

# sha256_check FILE SHA256: the vendored tarball is the one its README names.
sha256_check() {
    if ! echo "$2  $1" | sha256sum -c --quiet; then
        echo "$1 does not have the sha256 $2" >&2
        return 1
    fi
}

# PostgreSQL 17 and 18 from the upstream sources Debian's archive serves
# (postgresql-NN_X.Y.orig.tar.bz2, in pg_test/vendor): configure, build and install into the
# prefix, with pg_regress, the isolation tester and the contrib modules the tests use (auto_explain:
# the Citus plan check; citext: a key type in 19_batches). About 10 minutes on 2 cores, once each.
# The release tarballs carry no generated parser: bison and flex make it, perl runs the build's
# generators (a minimal Debian has perl-base only).
# DWR_PG_LLVM=yes builds it with LLVM (--with-llvm: JIT, as Debian's and PGDG's servers are), for
# the benchmarks, into a prefix of its own (DWR_PG_PREFIX=/opt/dwr/pg18-llvm: the tests' servers
# stay without it).
pg_source_release() { # MAJOR -> "VERSION SHA256"
    case "$1" in
        17) echo "17.11 dd27f2b3c59e73ed14aa3324901242bf69a032a6347805f274e6260322d42979" ;;
        18) echo "18.6 555610c24d53e4316da5b7d3fc25c279d96856d5e0e23ee308c328c5fa881d9f" ;;
    esac
}
ensure_server() {
    local version sha prefix
    read -r version sha < <(pg_source_release "$PG_MAJOR") || return 0
    prefix=$(dirname "$PG_BIN")
    local llvm=()
    if [ "${DWR_PG_LLVM:-no}" = yes ]; then
        llvm=(--with-llvm)
    fi
    if [ -x "$PG_CONFIG" ] && "$PG_CONFIG" --version | grep -q "PostgreSQL $version" &&
        [ -x "$PGX_DIR/src/test/isolation/pg_isolation_regress" ] && [ -f "$("$PG_CONFIG" --pkglibdir)/auto_explain.so" ] &&
        [ -f "$("$PG_CONFIG" --sharedir)/extension/citext.control" ] &&
        { [ ${#llvm[@]} = 0 ] || "$PG_CONFIG" --configure | grep -q -- --with-llvm; }; then
        return 0
    fi
    local tarball=$VENDOR/postgresql-${PG_MAJOR}_$version.orig.tar.bz2
    sha256_check "$tarball" "$sha"
    ensure_debian_packages "building PostgreSQL $version" bzip2 bison flex perl gcc make libssl-dev zlib1g-dev
    if [ ${#llvm[@]} != 0 ]; then
        ensure_debian_packages "building PostgreSQL $version with LLVM" llvm-14-dev clang-14
    fi
    log "building PostgreSQL $version${llvm[*]:+ ${llvm[*]}} from $tarball into $prefix (once, about 10 minutes)"
    local build
    build=$(mktemp -d)
    tar -xjf "$tarball" -C "$build"
    (cd "$build/postgresql-$version" &&
        ./configure --prefix="$prefix" --with-openssl --without-icu --without-readline "${llvm[@]}" >"$build/configure.log" 2>&1 &&
        make -j"$(nproc)" >"$build/make.log" 2>&1 && as_root make install >"$build/install.log" 2>&1 &&
        make -C src/test/isolation >>"$build/make.log" 2>&1 && as_root make -C src/test/isolation install >>"$build/install.log" 2>&1 &&
        for m in auto_explain citext; do
            make -C "contrib/$m" >>"$build/make.log" 2>&1 && as_root make -C "contrib/$m" install >>"$build/install.log" 2>&1 || exit 1
        done) || {
        show_build_logs "$build"
        rm -rf "$build"
        return 1
    }
    rm -rf "$build"
}

# show_build_logs DIR: the end of each log of a failed build (configure's, make's, make install's),
# newest last: the error is at the end of the last one.
show_build_logs() {
    local f
    for f in $(ls -tr "$1"/*.log 2>/dev/null); do
        echo "--- $(basename "$f"), last 30 lines" >&2
        tail -n 30 "$f" >&2
    done
}

# build_vendored NAME TARBALL SHA256 CONFIGURE: unpack a vendored extension and build and install it
# into the server of PG_MAJOR with PGXS (after ./configure when CONFIGURE is yes).
build_vendored() {
    local name=$1 tarball=$2 sha=$3 configure=$4 build dir
    sha256_check "$tarball" "$sha"
    log "building $name from $(basename "$tarball") for PostgreSQL $PG_MAJOR (once)"
    build=$(mktemp -d)
    tar -xzf "$tarball" -C "$build"
    dir=$(find "$build" -mindepth 1 -maxdepth 1 -type d | head -1)
    (cd "$dir" &&
        if [ "$configure" = yes ]; then ./configure PG_CONFIG="$PG_CONFIG" >"$build/configure.log" 2>&1; fi &&
        make -j"$(nproc)" PG_CONFIG="$PG_CONFIG" >"$build/make.log" 2>&1 &&
        as_root make PG_CONFIG="$PG_CONFIG" install >"$build/install.log" 2>&1) || {
        show_build_logs "$build"
        rm -rf "$build"
        return 1
    }
    rm -rf "$build"
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
        # apt's own output only when it fails
        local out
        out=$(mktemp)
        { as_root apt-get update -qq &&
            as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } \
            >"$out" 2>&1 || { cat "$out"; rm -f "$out"; return 1; }
        rm -f "$out"
    fi
}

# cargo-pgrx of the version the crate pins, and its init with every server version installed here
# (an init writes the whole list: one that named only the other version would forget this one).
ensure_pgrx() {
    if ! command -v cargo >/dev/null 2>&1; then
        echo "cargo not found: install the Rust toolchain (rustup) first" >&2
        exit 1
    fi
    # cargo downloads crates over HTTPS (a minimal Debian has no certificate store)
    ensure_debian_packages "cargo's downloads" ca-certificates
    if ! cargo pgrx --version 2>/dev/null | grep -q "$PGRX_VERSION"; then
        log "installing cargo-pgrx $PGRX_VERSION (takes several minutes, once)"
        cargo install cargo-pgrx --version "$PGRX_VERSION" --locked
    fi
    if ! grep -qs "^pg$PG_MAJOR = \"$PG_CONFIG\"" "${PGRX_HOME:-$HOME/.pgrx}/config.toml"; then
        local args=() saved=$PG_MAJOR v
        for v in "${PG_MAJORS[@]}"; do
            use_pg "$v"
            [ -x "$PG_CONFIG" ] && args+=("--pg$v" "$PG_CONFIG")
        done
        use_pg "$saved"
        log "cargo pgrx init ${args[*]}"
        cargo pgrx init "${args[@]}"
    fi
}

# pg_tle (Trusted Language Extensions, how Amazon RDS and Aurora let a non-superuser install an
# extension written in SQL and PL/pgSQL): not in Debian's archive, built from the vendored release
# tarball (pg_test/vendor, checked against its sha256), once per server version.
PG_TLE_VERSION=1.5.2
PG_TLE_SHA256=8fb28f2a79d452ebd244a072f5eee7570894abca3112fbb27df033f78003480f
ensure_pg_tle() {
    local sharedir
    sharedir=$("$PG_CONFIG" --sharedir)
    if [ -f "$sharedir/extension/pg_tle--$PG_TLE_VERSION.sql" ] || ls "$sharedir"/extension/pg_tle--*--"$PG_TLE_VERSION".sql >/dev/null 2>&1; then
        return 0
    fi
    ensure_debian_packages pg_tle flex bison libkrb5-dev
    build_vendored "pg_tle $PG_TLE_VERSION" "$VENDOR/pg_tle-$PG_TLE_VERSION.tar.gz" "$PG_TLE_SHA256" no
}

# pg_cron for the server built from source (15 uses Debian's 1.4): the vendored 1.6.7, once.
PG_CRON_VERSION=1.6.7
PG_CRON_SHA256=6684ba135a8de3663af5eddbae354a080b37d2f28f2c1801eeab3bbbb4c39f6a
ensure_pg_cron() {
    [ "$PG_MAJOR" = 15 ] && return 0
    [ -f "$("$PG_CONFIG" --pkglibdir)/pg_cron.so" ] && return 0
    build_vendored "pg_cron $PG_CRON_VERSION" "$VENDOR/pg_cron-$PG_CRON_VERSION.tar.gz" "$PG_CRON_SHA256" no
}

# the postgres OS account the servers run as (initdb refuses root): Debian's server packages make
# it; a machine without them gets a system account like theirs.
ensure_postgres_account() {
    id postgres >/dev/null 2>&1 && return 0
    [ "$(id -u)" -eq 0 ] || return 0
    log "creating the postgres system account (the servers run as it)"
    ensure_debian_packages "the postgres account" passwd
    mkdir -p /var/lib/postgresql
    useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash postgres
    chown postgres:postgres /var/lib/postgresql
}

# Citus (the tests' multi-node cluster): not in Debian's archive either, built from the vendored
# release tarball (pg_test/vendor, sha256-checked), once (a few minutes): 14.0 for PostgreSQL 16-18,
# 12.1 (the last line for 15) for 15.
citus_release() {
    if [ "$PG_MAJOR" = 15 ]; then
        echo "12.1.12 a344da15513601e718a268d907e1c86e43a69eb243398b929f65a4580723f552 12.1-1"
    else
        echo "14.0.1 acfa9a77cd84a8e1edab26cca4a71355f39c910c01586da89560e0240d4b05ba 14.0-1"
    fi
}
ensure_citus() {
    local version sha control
    read -r version sha control < <(citus_release)
    if [ -f "$("$PG_CONFIG" --pkglibdir)/citus.so" ] &&
        grep -qs "default_version = '$control'" "$("$PG_CONFIG" --sharedir)/extension/citus.control"; then
        return 0
    fi
    ensure_debian_packages Citus libcurl4-openssl-dev liblz4-dev libzstd-dev libkrb5-dev libselinux1-dev \
        libxslt1-dev libpam0g-dev libreadline-dev
    build_vendored "Citus $version" "$VENDOR/citus-$version.tar.gz" "$sha" yes
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

# ensure_base: the server of PG_MAJOR and what builds the extension for it (all the demo needs).
ensure_base() {
    ensure_packages
    ensure_postgres_account
    ensure_server
    use_pg "$PG_MAJOR"
    ensure_pgrx
}

# ensure_all [citus]: everything the tests of PG_MAJOR need (Citus only when asked: the second
# version's scenarios do without it).
ensure_all() {
    ensure_base
    ensure_pg_tle
    ensure_pg_cron
    if [ "${1:-}" = citus ]; then ensure_citus; fi
}

# Build the extension and install it into the server of PG_MAJOR ($1: extra cargo pgrx flags; the
# pgNN feature follows from pg_config).
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

# init_cluster DIR PORT [postgresql.conf lines...]: a fresh cluster (stopped), trust auth on a Unix
# socket. (Without data checksums, which 18 turns on by default and 15 off: pg_upgrade between them
# needs the same.)
init_cluster() {
    local dir=$1 port=$2 flags=()
    shift 2
    stop_cluster "$dir"
    rm -rf "$dir"
    mkdir -p "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
    [ "$PG_MAJOR" -ge 18 ] && flags+=(--no-data-checksums)
    as_postgres "$PG_BIN/initdb" -D "$dir" -A trust -U postgres --no-sync --encoding=UTF8 --locale=C.UTF-8 \
        "${flags[@]}" >/dev/null
    cluster_settings "$dir" "$port" "$@"
}

# cluster_settings DIR PORT [lines...]: the settings of every test cluster, then the given ones.
cluster_settings() {
    local dir=$1 port=$2
    shift 2
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
}

# start_cluster DIR PORT [postgresql.conf lines...]: a fresh cluster, started.
start_cluster() {
    init_cluster "$@"
    run_cluster "$1"
}

# run_cluster DIR: start an existing cluster.
run_cluster() {
    as_postgres "$PG_BIN/pg_ctl" -D "$1" -l "$1.log" -w -t 60 start >/dev/null
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
