#!/usr/bin/env bash
# Proves the build needs no network: clones the committed tree into a scratch directory
# and runs `cargo build --offline --locked` with an empty CARGO_HOME inside a network
# namespace that has no interfaces up (`unshare -n`).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

git clone -q --no-local "$root" "$work/airlock"
mkdir "$work/cargo-home"
# Cargo reads .cargo/config.toml from the working directory: build from inside the clone,
# so its own vendor/ is the registry (not the checkout this script was started from).
cd "$work/airlock"
build=(env CARGO_HOME="$work/cargo-home" CARGO_TARGET_DIR="$work/target"
       cargo build --offline --locked --manifest-path "$work/airlock/Cargo.toml")

if unshare -n true 2>/dev/null; then
    unshare -n "${build[@]}"
else
    echo "warning: cannot create a network namespace here (needs root); building with --offline only" >&2
    "${build[@]}"
fi
test -x "$work/target/debug/airlock"
"$work/target/debug/airlock" version
echo "offline build: ok (vendor/ is $(du -sh "$root/vendor" | cut -f1))"
