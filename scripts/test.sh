#!/usr/bin/env bash
# Sets up and runs every test: unit and integration tests (real server on loopback,
# real SQLite files, the crash test), then the browser tests in Debian's Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
. scripts/env.sh

echo "==> cargo test (domain, service, server)"
cargo test --workspace --locked

echo "==> building the console (cargo leptos build)"
cargo leptos build

echo "==> browser tests"
export PROMPTLEDGER_BIN="$CARGO_TARGET_DIR/debug/promptledger"
export PROMPTLEDGER_SITE_ROOT="$PWD/target/site"
cd end2end
npx playwright test
