#!/usr/bin/env bash
# Sets up, builds (release) and runs promptledger on an embedded SQLite database.
#   PROMPTLEDGER_DB    database file (default ./promptledger.db)
#   PROMPTLEDGER_ADDR  listen address (default 127.0.0.1:3000)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
. scripts/env.sh
cargo leptos build --release --split
exec "$CARGO_TARGET_DIR/release/promptledger" serve --site-root target/site "$@"
