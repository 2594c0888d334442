#!/usr/bin/env bash
# Interop tests with the official Python SDKs (openai, anthropic, google-genai) and the
# coding-agent CLIs (Claude Code, Codex CLI, Gemini CLI) against a real Airlock binary.
# Installs the SDKs from PyPI into a virtualenv and the CLIs from npm (versions pinned in
# tests/interop/agents/package-lock.json), both under target/.
set -euo pipefail
cd "$(dirname "$0")/../.."

cargo build --offline --locked --bin airlock
venv=target/interop-venv
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/interop/requirements.txt
agents=target/interop-agents
mkdir -p "$agents"
if ! cmp -s tests/interop/agents/package-lock.json "$agents/installed.lock"; then
    cp tests/interop/agents/package.json tests/interop/agents/package-lock.json "$agents/"
    npm ci --prefix "$agents" --no-audit --no-fund --loglevel=error
    cp tests/interop/agents/package-lock.json "$agents/installed.lock"
fi
AIRLOCK_AGENTS_BIN="$PWD/$agents/node_modules/.bin" \
AIRLOCK_BIN="$PWD/target/debug/airlock" "$venv/bin/python" -m pytest -q tests/interop "$@"
