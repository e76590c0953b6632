#!/usr/bin/env bash
# Installs what building (and, with --test, testing) promptledger needs on a fresh
# machine of this kind; every step is skipped when its tool is already there.
#   scripts/setup.sh          Rust wasm target, cargo-leptos, wasm-bindgen, npm packages
#   scripts/setup.sh --test   the same, plus Debian's Chromium for the browser tests and
#                             Debian's PostgreSQL for the second backend
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${CARGO_HOME:-${HOME:-/root}/.cargo}/bin:$PATH"

say() { printf '\n==> %s\n' "$*"; }

apt_install() {
  if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@"
}

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "adding the wasm32 target"
  rustup target add wasm32-unknown-unknown
fi

# cargo-leptos 0.3.10 is the newest that builds on stable Rust 1.95 with --locked.
if ! cargo leptos --version >/dev/null 2>&1; then
  say "installing cargo-leptos (about 15 minutes, once)"
  cargo install cargo-leptos@0.3.10 --locked
fi

# wasm-bindgen-cli must be exactly the version of the wasm-bindgen crate in Cargo.lock.
want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
if [ "$have" != "$want" ]; then
  say "installing wasm-bindgen-cli $want"
  cargo install wasm-bindgen-cli --version "$want"
fi

if ! command -v npm >/dev/null; then
  say "installing Node.js and npm"
  apt_install nodejs npm
fi

# Playwright, axe-core and binaryen's wasm-opt (Debian's binaryen is too old to use).
if [ ! -x end2end/node_modules/.bin/wasm-opt ] || [ end2end/package-lock.json -nt end2end/node_modules/.package-lock.json ]; then
  say "installing npm packages"
  (cd end2end && npm ci --no-audit --no-fund)
fi

# promptfoo as published, for the test of its langfuse:// prompts: without its optional
# dependencies (hundreds of provider SDKs) and install scripts (which would download
# binaries from GitHub); what it needs here is listed in its package.json.
if [ "${1:-}" = "--test" ] && { [ ! -x end2end/promptfoo/node_modules/.bin/promptfoo ] ||
     [ end2end/promptfoo/package-lock.json -nt end2end/promptfoo/node_modules/.package-lock.json ]; }; then
  say "installing promptfoo"
  (cd end2end/promptfoo && npm ci --omit=optional --ignore-scripts --no-audit --no-fund)
fi

# The tests run every integration test a second time on a throwaway PostgreSQL.
if [ "${1:-}" = "--test" ] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  say "installing Debian's PostgreSQL"
  apt_install postgresql
fi

if [ "${1:-}" = "--test" ] && [ ! -x /usr/bin/chromium ]; then
  say "installing Debian's Chromium"
  apt_install chromium
fi

# The published SDKs the compatibility tests drive (the `langfuse` package from PyPI), in
# a virtualenv kept with the build cache.
if [ "${1:-}" = "--test" ]; then
  venv="${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/promptledger/venv"
  if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    say "installing Python's venv"
    apt_install python3-venv
  fi
  if ! "$venv/bin/python" -c 'import langfuse' 2>/dev/null || [ "$("$venv/bin/python" -c 'import langfuse; print(langfuse.__version__)' 2>/dev/null)" != "5.2.0" ]; then
    say "installing the langfuse SDK (PyPI) into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "langfuse==5.2.0"
  fi
  # The Python client (clients/python) with pytest: its dependencies once, then the
  # package itself from this checkout every time (the virtualenv outlives checkouts).
  if ! "$venv/bin/python" -c 'import httpx, jinja2, pytest' 2>/dev/null; then
    say "installing the Python client's dependencies and pytest into $venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "./clients/python[test]"
  fi
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --force-reinstall "./clients/python"
fi
