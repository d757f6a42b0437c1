#!/usr/bin/env bash
# Builds pgvector from the vendored tarball and installs it into the PostgreSQL whose `pg_config`
# is on PATH (Debian: /usr/lib/postgresql/15), so the PostgreSQL 15 CI leg can `create extension vector`.
#
#   scripts/install-pgvector.sh [tarball]   (default ../shared/vendor/pgvector-0.8.6.tar.gz)
#
# Idempotent: does nothing when the installed vector.control already has the tarball's version.
# Exits 0 with a "skipped: <why>" line when the tarball or the server headers are missing, so CI
# can call it unconditionally; exits non-zero only when a build that could run fails.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
TARBALL=${1:-../shared/vendor/pgvector-0.8.6.tar.gz}
skip() { echo "install-pgvector: skipped: $*"; exit 0; }

[ -f "$TARBALL" ] || skip "no tarball at $TARBALL"

# The server headers come from Debian's archive: installed here when this runs as root with apt
# (CI's machines are fresh, so the project installs what it needs), else the build is skipped.
# pgxs.mk alone is not enough: Debian's client package ships it without the server headers.
has_pgxs() {
  command -v pg_config >/dev/null 2>&1 && [ -f "$(pg_config --pgxs)" ] \
    && [ -f "$(pg_config --includedir-server)/postgres.h" ]
}
if ! has_pgxs && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "install-pgvector: installing postgresql-server-dev-15 from Debian's archive"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-server-dev-15; } >/dev/null 2>&1 \
    || echo "install-pgvector: apt-get could not install postgresql-server-dev-15"
fi
command -v pg_config >/dev/null 2>&1 || skip "no pg_config on PATH (install postgresql-server-dev-15)"
has_pgxs || skip "no server headers at $(pg_config --includedir-server) (install postgresql-server-dev-15)"
command -v make >/dev/null 2>&1 || skip "no make (install build-essential)"

# pgvector-0.8.6.tar.gz -> 0.8.6
VERSION=$(basename "$TARBALL" | sed -E 's/^pgvector-(.*)\.tar\.gz$/\1/')
CONTROL="$(pg_config --sharedir)/extension/vector.control"
if [ -f "$CONTROL" ] && grep -q "default_version = '$VERSION'" "$CONTROL" \
  && [ -f "$(pg_config --pkglibdir)/vector.so" ]; then
  echo "install-pgvector: pgvector $VERSION already installed in $(pg_config --pkglibdir)"
  exit 0
fi

BUILD=$(mktemp -d)
trap 'rm -rf "$BUILD"' EXIT
tar -xzf "$TARBALL" -C "$BUILD" --strip-components=1
# OPTFLAGS="" avoids -march=native, so the library runs on any x86-64 machine.
make -C "$BUILD" OPTFLAGS="" >/dev/null
make -C "$BUILD" OPTFLAGS="" install >/dev/null
echo "install-pgvector: installed pgvector $VERSION into $(pg_config --pkglibdir)"
