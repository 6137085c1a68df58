#!/usr/bin/env bash
# A real PostgreSQL restart during a stream of writes against a running `multiprovider serve`,
# alone and with its figures printed. The test
# (`reliability_faults::real_postgres_restart_during_a_write_stream`, tests/it/reliability_faults.rs)
# is part of every PostgreSQL test run, `.ci/run` included: it creates a throw-away cluster
# (Debian's pg_createcluster, a free loopback port), starts the binary on it, streams writes
# (one sequential writer per account, each 200 read back) and lookups, restarts the cluster in
# the middle with `pg_ctlcluster --skip-systemctl-redirect <version> <cluster> restart`, then
# checks: every answer was a 200 or a clean 503, every 200 was stored, nothing half-written,
# revisions consistent, lookups answered from the cache throughout, writes recover by
# themselves, and the binary's lookups converge on what the database holds. It prints one
# summary line (see RELIABILITY.md), and drops the cluster.
# Needs root (or the cluster owner) and Debian's postgresql-common tools.
set -euo pipefail
cd "$(dirname "$0")/.."

export TEST_DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
export MULTIPROVIDER_REQUIRE_POSTGRES=1
cargo test --test it -- --exact \
  reliability_faults::real_postgres_restart_during_a_write_stream --nocapture
