#!/usr/bin/env bash
# Load harness: mock-upstream directly, through nginx (one worker, keep-alive reverse
# proxy: the floor of one proxy hop), and through Airlock, non-streaming and streaming,
# saturated (wrk) and at a fixed 500 requests/s (oha); then failover time under a killed
# primary (bench/failover.py) and the cost of translating to Anthropic- and
# Gemini-format upstreams (bench/translation.py), and the audit trail's append, index and
# search over 1,000,000 seeded records (bench/audit.py), provider credential revocation
# propagation (bench/credentials.py), the default and a governed configuration with a
# different prompt per request (bench/unique.py), and policy evaluation latency
# (bench/policy.py).
# Prints the results and writes docs/benchmarks.md (not with --no-write). Not a test:
# numbers on shared machines are noisy.
#
# Needs: wrk and nginx (Debian packages), oha (`cargo install oha --locked`).
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in wrk nginx oha; do
    command -v "$tool" >/dev/null || {
        echo "missing $tool: apt-get install wrk nginx; cargo install oha --locked" >&2
        exit 1
    }
done
cargo build --release --offline --locked --bin airlock
python3 bench/run.py "$@"
failover_args=()
for arg in "$@"; do
    [ "$arg" = --no-write ] && failover_args+=(--no-write)
done
python3 bench/failover.py "${failover_args[@]}"
python3 bench/translation.py "${failover_args[@]}"
python3 bench/audit.py "${failover_args[@]}"
python3 bench/credentials.py "${failover_args[@]}"
python3 bench/unique.py "${failover_args[@]}"
exec python3 bench/policy.py "${failover_args[@]}"
