#!/usr/bin/env bash
# A real three-node Citus cluster on loopback for `pnpm test:citus`: Citus 13.2.2 built from the
# vendored tarball into the local PostgreSQL 15, then a coordinator and two workers, each with its
# own data directory and port, Citus and pgvector in the database on every node.
#
#   scripts/citus-cluster.sh build   builds + installs Citus (and pgvector) when not installed yet
#   scripts/citus-cluster.sh up      build, then start the three nodes and join them
#   scripts/citus-cluster.sh down    stop the nodes and remove their data directories
#   scripts/citus-cluster.sh url     prints the coordinator's URL
#
# Settings (environment): CITUS_TARBALL (default ../shared/vendor/citus-13.2.2.tar.gz),
# CITUS_PATCH (default: the .patch beside it), CITUS_CLUSTER_DIR (default
# ${TMPDIR:-/tmp}/tenant-migrate-citus), CITUS_PORT (coordinator; workers take the next two, default
# 9700). The server on 5432 is never touched.
#
# `build` and `up` exit 0 with "citus-cluster: skipped: <why>" when the build cannot run here
# (no tarball, no server headers and no root to install them), so CI can call them unconditionally
# and tell the skip from a failure: a skip prints that line and writes no URL file.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
TARBALL=${CITUS_TARBALL:-../shared/vendor/citus-13.2.2.tar.gz}
PATCH=${CITUS_PATCH:-${TARBALL%.tar.gz}-pg15.patch}
DIR=${CITUS_CLUSTER_DIR:-${TMPDIR:-/tmp}/tenant-migrate-citus}
PORT=${CITUS_PORT:-9700}
PORTS=("$PORT" "$((PORT + 1))" "$((PORT + 2))")
NAMES=(coordinator worker1 worker2)
DB=postgres

say() { echo "citus-cluster: $*"; }
skip() { say "skipped: $*"; exit 0; }

# initdb and postgres refuse to run as root: as root, the nodes run as the `postgres` OS user.
as_server_user() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

build() {
  [ -f "$TARBALL" ] || skip "no tarball at $TARBALL"
  # pgvector first: it also installs Debian's server headers when it can (and says why it cannot).
  scripts/install-pgvector.sh
  command -v pg_config >/dev/null 2>&1 || skip "no pg_config on PATH (install postgresql-server-dev-15)"
  [ -f "$(pg_config --includedir-server)/postgres.h" ] || skip "no server headers (install postgresql-server-dev-15)"
  local version
  version=$(basename "$TARBALL" | sed -E 's/^citus-(.*)\.tar\.gz$/\1/')
  if [ -f "$(pg_config --pkglibdir)/citus.so" ] \
    && grep -q "default_version = '${version%.*}-" "$(pg_config --sharedir)/extension/citus.control" 2>/dev/null; then
    say "Citus $version already installed in $(pg_config --pkglibdir)"
    return
  fi
  # Citus's columnar storage needs lz4 and zstd (its --without-lz4/--without-zstd route does not
  # compile against Debian's 15 headers); libkrb5-dev because PostgreSQL 15's libpq-be.h includes
  # gssapi/gssapi.h. libcurl is only for Citus's anonymous statistics: configured out.
  local packages=(liblz4-dev libzstd-dev libkrb5-dev)
  if ! dpkg -s "${packages[@]}" >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      say "installing ${packages[*]} from Debian's archive"
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}"; } >/dev/null 2>&1 \
        || skip "apt-get could not install ${packages[*]}"
    else
      skip "missing ${packages[*]} (apt-get install them as root)"
    fi
  fi
  local build
  build=$(mktemp -d)
  say "building Citus $version (about 3 minutes on 2 cores)"
  tar -xzf "$TARBALL" -C "$build" --strip-components=1
  [ -f "$PATCH" ] && patch -s -d "$build" -p1 < "$PATCH"
  if ! (cd "$build" && ./configure --without-libcurl >/dev/null && make -s -j"$(nproc)" >"$build/make.log" 2>&1 && make -s install >/dev/null); then
    tail -20 "$build/make.log" >&2 || true
    rm -rf "$build"
    say "the Citus build failed"; exit 1
  fi
  rm -rf "$build"
  say "installed Citus $version into $(pg_config --pkglibdir)"
}

node_ctl() { as_server_user "$(pg_config --bindir)/pg_ctl" "$@"; }
psql_on() { # port, sql
  psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$1" -U postgres -d "$DB" -Atc "$2"
}

up() {
  down quiet # also removes an earlier cluster's URL file, so a skip below leaves none
  build
  [ -f "$(pg_config --pkglibdir)/citus.so" ] || skip "Citus is not installed"
  mkdir -p "$DIR"
  [ "$(id -u)" = 0 ] && chown postgres: "$DIR"
  for i in 0 1 2; do
    local data="$DIR/${NAMES[$i]}"
    as_server_user "$(pg_config --bindir)/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --no-locale >/dev/null
    cat >>"$data/postgresql.conf" <<CONF
port = ${PORTS[$i]}
listen_addresses = '127.0.0.1'
unix_socket_directories = '$data'
shared_preload_libraries = 'citus'
max_connections = 200
max_prepared_transactions = 200
wal_level = logical
fsync = off
synchronous_commit = off
full_page_writes = off
citus.log_distributed_deadlock_detection = off
CONF
    node_ctl -D "$data" -l "$data/server.log" -w -t 60 start >/dev/null
  done
  for i in 0 1 2; do
    psql_on "${PORTS[$i]}" 'create extension citus; create extension vector;'
  done
  psql_on "${PORTS[0]}" "select citus_set_coordinator_host('127.0.0.1', ${PORTS[0]});
    select citus_add_node('127.0.0.1', ${PORTS[1]}); select citus_add_node('127.0.0.1', ${PORTS[2]});" >/dev/null
  url >"$DIR/url"
  say "up: coordinator $(url), workers 127.0.0.1:${PORTS[1]} and 127.0.0.1:${PORTS[2]}"
}

down() {
  [ -d "$DIR" ] || return 0
  for name in "${NAMES[@]}"; do
    [ -f "$DIR/$name/postmaster.pid" ] && node_ctl -D "$DIR/$name" -m immediate stop >/dev/null 2>&1 || true
  done
  rm -rf "$DIR"
  [ "${1:-}" = quiet ] || say "down"
}

url() { echo "postgres://postgres@127.0.0.1:${PORTS[0]}/$DB"; }

case "${1:-}" in
  build) build ;;
  up) up ;;
  down) down ;;
  url) url ;;
  *) echo "usage: scripts/citus-cluster.sh build|up|down|url" >&2; exit 2 ;;
esac
