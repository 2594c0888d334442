"""Fixtures that run the real `airlock` binary: mock-upstream, init, keys, serve."""

import json
import os
import re
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

AIRLOCK = os.environ.get("AIRLOCK_BIN", "target/debug/airlock")

# The parameters of the weather tool the tool-calling tests declare, in every API's shape.
WEATHER_PARAMETERS = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
    "required": ["city", "days"],
}


def start(args, pattern):
    """Starts an airlock subcommand and waits for the line announcing its address."""
    proc = subprocess.Popen(
        [AIRLOCK, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    for line in proc.stdout:
        match = re.search(pattern, line)
        if match:
            return proc, match.group(1)
    raise RuntimeError(f"{args[0]} exited: {proc.wait()} {proc.stderr.read()}")


def run(args):
    return subprocess.run([AIRLOCK, *args], check=True, capture_output=True, text=True).stdout


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=30)


class Instance:
    def __init__(self, directory, mock_addr, gateway, base_url, key):
        self.dir = directory
        self.mock_addr = mock_addr
        self.gateway = gateway
        self.base_url = base_url
        self.key = key
        self.config = str(Path(directory) / "airlock.yaml")


@pytest.fixture(scope="module")
def mock_upstream():
    proc, addr = start(
        ["mock-upstream", "--listen", "127.0.0.1:0", "--models", "mock-llama", "--tokens-per-sec", "400", "--default-tokens", "1000"],
        r"listening on http://(\S+)",
    )
    yield addr
    stop(proc)


def make_instance(mock_addr, directory, model="chat-model", upstream_model="mock-llama",
                  extra_config="", policy=None):
    """An initialised instance serving `model`; `extra_config` is appended to its
    airlock.yaml and `policy` (a file) applied before it starts."""
    run([
        "init", "--dir", directory,
        "--upstream-url", f"http://{mock_addr}/v1",
        "--model", model, "--upstream-model", upstream_model,
    ])
    config = Path(directory) / "airlock.yaml"
    text = config.read_text().replace("listen: 127.0.0.1:8080", "listen: 127.0.0.1:0")
    text = text.replace("shutdown_grace_secs: 30", "shutdown_grace_secs: 10")
    config.write_text(text + extra_config)
    if policy:
        run(["policy", "apply", "--config", str(config), "-m", "interop", str(policy)])
    created = run(["keys", "create", "--config", str(config), "--tenant", "interop", "--json"])
    key = json.loads(created)["key"]
    gateway, addr = start(["serve", "--config", str(config)], r"listening on http://(\S+)")
    return Instance(directory, mock_addr, gateway, f"http://{addr}/v1", key)


@pytest.fixture(scope="module")
def instance(mock_upstream):
    with tempfile.TemporaryDirectory() as directory:
        inst = make_instance(mock_upstream, directory)
        yield inst
        if inst.gateway.poll() is None:
            stop(inst.gateway)
