#!/usr/bin/env bash
# Re-vendors every crate in Cargo.lock into vendor/ as a cargo local registry of .crate
# archives, so `cargo build --offline --locked` works with the network unplugged.
# Run after any dependency change, then commit vendor/ together with Cargo.lock.
# Needs the crates.io registry (this is the one step that does).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-local-registry >/dev/null; then
    echo "installing cargo-local-registry (about 10-20 minutes on 2 cores)..." >&2
    cargo install cargo-local-registry --locked --version 0.2.12
fi

# Resolve against crates.io: set the vendored-source config aside while we do.
config=.cargo/config.toml
mv "$config" "$config.vendoring"
trap 'mv "$config.vendoring" "$config"' EXIT

cargo metadata --format-version 1 >/dev/null   # refreshes Cargo.lock after a Cargo.toml edit
cargo local-registry --sync Cargo.lock vendor >/dev/null

echo "vendor/: $(du -sh vendor | cut -f1) in $(find vendor -name '*.crate' | wc -l) crates" >&2
