#!/usr/bin/env bash
# Idempotent set-up for a fresh machine of our kind (Debian 12, Rust by rustup, Node 20, root).
# Installs only what is missing: the wasm32 target and rustfmt, the pinned wasm-bindgen CLI,
# Chromium and ChromeDriver from apt, and the npm packages from package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/.."

WASM_BINDGEN_VERSION="0.2.130"   # must equal the `wasm-bindgen = "=..."` pin in Cargo.toml
log() { printf '[setup] %s\n' "$*"; }

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  log "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi
if ! cargo fmt --version >/dev/null 2>&1; then
  log "adding the rustfmt component (npm test checks formatting)"
  rustup component add rustfmt
fi

have_wb="$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)"
if [ "$have_wb" != "$WASM_BINDGEN_VERSION" ]; then
  log "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (found: ${have_wb:-none}); this takes a few minutes"
  # No --locked: its lockfile pins a crate version the registry mirror lacks (toolchain.md).
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force
fi

if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  log "installing Chromium and ChromeDriver from apt"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium chromium-driver >/dev/null
fi

lock_hash="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [ ! -f node_modules/.sfstream-lock-hash ] || [ "$(cat node_modules/.sfstream-lock-hash)" != "$lock_hash" ]; then
  log "installing npm packages (npm ci)"
  npm ci --no-audit --no-fund
  echo "$lock_hash" > node_modules/.sfstream-lock-hash
fi
log "ready"
