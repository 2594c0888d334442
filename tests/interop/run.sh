#!/usr/bin/env bash
# Interop tests with the official Python SDKs (openai, anthropic, google-genai) against a real Airlock binary.
# Installs the SDKs from PyPI into a virtualenv under target/ (pinned versions).
set -euo pipefail
cd "$(dirname "$0")/../.."

cargo build --offline --locked --bin airlock
venv=target/interop-venv
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/interop/requirements.txt
AIRLOCK_BIN="$PWD/target/debug/airlock" "$venv/bin/python" -m pytest -q tests/interop "$@"
