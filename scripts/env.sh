# Sourced by the run and test scripts: tool paths and the shared build cache.
# wasm-opt from npm (binaryen 132) comes first on PATH; cargo-leptos would otherwise try
# to download it.
export PATH="$PWD/end2end/node_modules/.bin:${CARGO_HOME:-${HOME:-/root}/.cargo}/bin:$PATH"
# Builds are cached outside the checkout, so a fresh clone (CI) reuses the last build.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/promptledger/target}"
# The virtualenv with the published SDKs (made by `scripts/setup.sh --test`).
export PROMPTLEDGER_TEST_PYTHON="${PROMPTLEDGER_TEST_PYTHON:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/promptledger/venv/bin/python}"
