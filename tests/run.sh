#!/usr/bin/env bash
# Runs every test: Rust unit and integration tests, interop tests with the official
# Python SDKs, and the offline-build check. Installs what the tests need. Ends with one
# summary line, `N passed, N failed`.
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT

echo "== cargo test"
cargo test --offline --locked 2>&1 | tee -a "$log"

echo "== interop tests (official openai and anthropic Python SDKs)"
./tests/interop/run.sh 2>&1 | tee -a "$log"

echo "== offline build in a fresh clone, no network, empty CARGO_HOME"
./tests/offline_build.sh

# Every step above stops this script on failure (pipefail), so reaching here means all
# passed; the counts come from the runners' own summaries.
passed=$(grep -oE '(test result: ok\. [0-9]+ passed|^[0-9]+ passed)' "$log" | grep -oE '[0-9]+ passed' | awk '{s += $1} END {print s + 0}')
echo "$passed passed, 0 failed"
