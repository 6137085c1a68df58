#!/usr/bin/env bash
# A real PostgreSQL restart during a stream of writes against a running `multiprovider serve`.
#
# Runs the ignored test `reliability_faults::real_postgres_restart_during_a_write_stream`
# (tests/it/reliability_faults.rs):
# it starts the release-independent debug binary on a fresh database, streams writes (one
# sequential writer per account, each 200 read back) and lookups, runs
# `pg_ctlcluster --skip-systemctl-redirect <version> <cluster> restart` in the middle, then checks:
# every answer was a 200 or a clean 503, every 200 was stored, nothing half-written, lookups
# answered from the cache throughout, writes recover by themselves, and the binary's lookups
# converge on what the database holds. It prints one summary line (see RELIABILITY.md).
#
# By default the restarted cluster is a throw-away one created for the run on port 55432, so
# that nothing else using the machine's PostgreSQL loses its connections. To restart an
# existing cluster instead (e.g. the CI's `main` on 5432, when nothing else is running):
#   PG_CLUSTER=main PG_PORT=5432 scripts/pg-restart-test.sh
# Needs root (or the cluster owner) and Debian's postgresql-common tools.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION="${PG_VERSION:-$(ls /etc/postgresql | sort -V | tail -n 1)}"
CLUSTER="${PG_CLUSTER:-mp_restart_test}"
PORT="${PG_PORT:-55432}"

created=0
if ! pg_lsclusters -h | awk '{print $1 " " $2}' | grep -qx "$VERSION $CLUSTER"; then
  echo "pg-restart-test: creating throw-away cluster $VERSION/$CLUSTER on port $PORT"
  pg_createcluster "$VERSION" "$CLUSTER" --port "$PORT" -- \
    --auth-host=trust --auth-local=trust >/dev/null
  created=1
fi
cleanup() {
  if [ "$created" = 1 ]; then
    echo "pg-restart-test: dropping cluster $VERSION/$CLUSTER"
    pg_dropcluster --stop "$VERSION" "$CLUSTER" || true
  fi
}
trap cleanup EXIT

pg_ctlcluster --skip-systemctl-redirect "$VERSION" "$CLUSTER" start 2>/dev/null || true
for _ in $(seq 1 60); do
  pg_isready -h 127.0.0.1 -p "$PORT" -q && break
  sleep 1
done
pg_isready -h 127.0.0.1 -p "$PORT"

export TEST_DATABASE_URL="postgres://postgres@127.0.0.1:${PORT}/postgres"
export MULTIPROVIDER_REQUIRE_POSTGRES=1
export MULTIPROVIDER_PG_RESTART_CMD="pg_ctlcluster --skip-systemctl-redirect $VERSION $CLUSTER restart"

cargo test --test it -- --ignored --exact \
  reliability_faults::real_postgres_restart_during_a_write_stream --nocapture
