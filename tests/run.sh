#!/usr/bin/env bash
# Runs every test: Rust unit and integration tests, interop tests with the official
# Python SDKs, and the offline-build check. Installs what the tests need.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo test"
cargo test --offline --locked

echo "== interop tests (official openai Python SDK)"
./tests/interop/run.sh

echo "== offline build in a fresh clone, no network, empty CARGO_HOME"
./tests/offline_build.sh
