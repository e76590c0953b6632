#!/usr/bin/env bash
# Sets up and runs every test: unit and integration tests (real server on loopback,
# real SQLite files, the crash test), the integration tests again on a throwaway
# PostgreSQL (with the multi-replica tests), then the browser tests in Debian's Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
. scripts/env.sh
# Incremental caches of a test run are never reused the same way and grew the cache dir
# by tens of GB; a test build does without them.
export CARGO_INCREMENTAL=0
log=$(mktemp)
pg=$(mktemp -d)
trap 'scripts/pg.sh stop "$pg/db"; rm -rf "$pg"; rm -f "$log"' EXIT

# Built first, so the passes below can be bounded in time: a test that hangs (a
# deadlock) fails the run after 20 minutes instead of using up CI's whole limit.
echo "==> building the tests"
cargo test --workspace --locked --no-run
bounded() { timeout --kill-after=30s 20m "$@"; }

echo "==> cargo test (domain, service, server) on SQLite"
bounded cargo test --workspace --locked 2>&1 | tee "$log"

echo "==> the integration tests again, on PostgreSQL (three replicas where a test asks)"
PROMPTLEDGER_TEST_POSTGRES=$(scripts/pg.sh start "$pg/db") \
PROMPTLEDGER_SECRET=test-only-secret-shared-by-replicas \
  bounded cargo test --workspace --locked --test '*' 2>&1 | tee -a "$log"
scripts/pg.sh stop "$pg/db"

echo "==> the Python client's tests (pytest, against the real server binary)"
PROMPTLEDGER_BIN="$CARGO_TARGET_DIR/debug/promptledger" \
  bounded "$PROMPTLEDGER_TEST_PYTHON" -m pytest clients/python/tests -q -p no:cacheprovider 2>&1 | tee -a "$log"

echo "==> building the console (cargo leptos build --split)"
cargo leptos build --split

echo "==> browser tests"
export PROMPTLEDGER_BIN="$CARGO_TARGET_DIR/debug/promptledger"
export PROMPTLEDGER_SITE_ROOT="$PWD/target/site"
(cd end2end && npx playwright test) 2>&1 | tee -a "$log"

# One closing line for the whole run (cargo's and Playwright's counts added up).
awk '/^test result:/ { p += $4; f += $6 }
     /^ +[0-9]+ passed/ { p += $1 }
     /^ +[0-9]+ failed/ { f += $1 }
     /^[0-9]+ (passed|failed).* in [0-9.]+s/ { for (i = 1; i < NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "total: %d passed, %d failed\n", p, f }' "$log"
