"""Failover time under a killed primary (called by bench/run.sh): how much later an answer
arrives when the primary target of a route has died, until its circuit breaker opens."""

import argparse
import http.client
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from run import AIRLOCK, machine, publish, start, stop_all

PRIMARY, SECONDARY, GATEWAY = 18100, 18101, 18180
BEGIN, END = "<!-- failover:begin (written by bench/failover.py) -->", "<!-- failover:end -->"
ROUTE = """  ha:
    targets:
      - {upstream: primary, model: mock-llama}
      - {upstream: secondary, model: mock-llama, priority: 1}
    retry: {attempts: 3, backoff_ms: 50, max_backoff_ms: 2000}
    breaker: {failure_threshold: 5, open_secs: 30}
"""


def ask(conn, key):
    """One chat request on a kept-alive connection; its latency in milliseconds."""
    body = json.dumps({"model": "ha", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8})
    started = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", body, {"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    response = conn.getresponse()
    response.read()
    if response.status != 200:
        raise RuntimeError(f"status {response.status}")
    return (time.perf_counter() - started) * 1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=200, help="requests in each phase")
    ap.add_argument("--no-write", action="store_true")
    opts = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="airlock-failover-"))
    procs = []
    try:
        mock = lambda port: start([str(AIRLOCK), "mock-upstream", "--listen", f"127.0.0.1:{port}"], "listening")
        primary = mock(PRIMARY)
        procs += [primary, mock(SECONDARY)]
        subprocess.run([str(AIRLOCK), "init", "--dir", str(work), "--upstream-url", f"http://127.0.0.1:{SECONDARY}/v1"],
                       check=True, capture_output=True)
        cfg = work / "airlock.yaml"
        text = cfg.read_text().replace("listen: 127.0.0.1:8080", f"listen: 127.0.0.1:{GATEWAY}").replace("level: info", "level: error")
        text = text.replace("upstreams:\n", f"upstreams:\n  primary: {{base_url: 'http://127.0.0.1:{PRIMARY}/v1'}}\n"
                            f"  secondary: {{base_url: 'http://127.0.0.1:{SECONDARY}/v1'}}\n", 1)
        # Routing alone is measured: the audit trail (bench/run.py measures it) is off.
        cfg.write_text(text.replace("models:\n", "models:\n" + ROUTE, 1) + "audit:\n  enabled: false\n")
        key = json.loads(subprocess.run([str(AIRLOCK), "keys", "create", "--config", str(cfg), "--tenant", "bench", "--json"],
                                        check=True, capture_output=True, text=True).stdout)["key"]
        procs.append(start([str(AIRLOCK), "serve", "--config", str(cfg)], "listening"))
        conn = http.client.HTTPConnection("127.0.0.1", GATEWAY)
        healthy = [ask(conn, key) for _ in range(opts.requests)]
        primary.kill()
        primary.wait()
        failing_over = [ask(conn, key) for _ in range(5)]  # until the breaker opens
        after = [ask(conn, key) for _ in range(opts.requests)]
    finally:
        stop_all(procs)
    median = statistics.median
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} with `bench/failover.py` (requests={opts.requests} per phase, one "
        "kept-alive client connection, sequential).",
        f"Machine: {machine()}.",
        "",
        "Route `ha`: primary then secondary (priority 1), `retry: {attempts: 3, backoff_ms: 50}`, "
        "`breaker: {failure_threshold: 5}`; both targets are `airlock mock-upstream`. The primary is killed (SIGKILL) "
        "between phases.",
        "",
        "| phase | requests | median ms | max ms |",
        "|---|---:|---:|---:|",
        f"| primary healthy | {len(healthy)} | {median(healthy):.2f} | {max(healthy):.2f} |",
        f"| primary killed, breaker closed (each request: refused connection, backoff, secondary) | {len(failing_over)} "
        f"| {median(failing_over):.2f} | {max(failing_over):.2f} |",
        f"| primary killed, breaker open (secondary directly) | {len(after)} | {median(after):.2f} | {max(after):.2f} |",
        "",
        f"Failover time (first failed attempt to the answer, median of the closed-breaker phase minus healthy): "
        f"{median(failing_over) - median(healthy):.2f} ms; no request failed.",
    ]
    publish("\n".join(lines), opts.no_write, BEGIN, END)


if __name__ == "__main__":
    main()
