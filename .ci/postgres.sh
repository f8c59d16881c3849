#!/usr/bin/env bash
# Installs (Debian's package) and starts a PostgreSQL server on 127.0.0.1 for the
# distributed-search tests, and prints the URL they use. Needs root.
set -euo pipefail
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
version=$(ls /usr/lib/postgresql | sort -n | tail -n 1)
if ! pg_lsclusters -h | grep -q "^$version main"; then
  pg_createcluster "$version" main >/dev/null
fi
pg_ctlcluster "$version" main start >/dev/null 2>&1 || true  # already running is fine
for _ in $(seq 1 30); do
  su postgres -c "psql -qtAc 'select 1'" >/dev/null 2>&1 && break
  sleep 1
done
su postgres -c "psql -qtAc \"select 1 from pg_roles where rolname='paretokd'\"" | grep -q 1 ||
  su postgres -c "psql -qc \"create role paretokd login password 'paretokd'\"" >/dev/null
su postgres -c "psql -qtAc \"select 1 from pg_database where datname='paretokd'\"" | grep -q 1 ||
  su postgres -c "createdb -O paretokd paretokd" >/dev/null
echo "postgresql://paretokd:paretokd@127.0.0.1:5432/paretokd"
