"""Provider credential revocation propagation (issue 7): the time from a revocation
returning to the first request refused for want of that credential, over 100 trials.

    python3 bench/credentials.py [--trials 100] [--load 4] [--no-write]

One gateway (`audit.enabled: false`, so routing alone is measured) and one
`airlock mock-upstream`, a route `byok` with `credential: tenant` and no fallback. Each
trial creates a credential for tenant `bench` (admin API), checks a request succeeds with
it, revokes it, and from the moment the revocation returned sends requests one after the
other until one is refused (403 `no_provider_credential`). Three ways: the admin API
revoke on an idle gateway; the same while `--load` client threads keep requests flowing
through the same route; and `airlock credentials revoke` from another process (the
gateway learns of it through inotify). Writes its block of docs/benchmarks.md.
"""

import argparse
import http.client
import json
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from run import AIRLOCK, machine, publish, start, stop_all

MOCK, GATEWAY = 18200, 18280
SECRET = "sk-bench-provider-key"
BEGIN, END = "<!-- credentials:begin (written by bench/credentials.py) -->", "<!-- credentials:end -->"
ROUTE = """  byok:
    upstream: byok
    model: mock-llama
    credential: tenant
    retry: {attempts: 1}
"""
CHAT = json.dumps({"model": "byok", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8})


class Client:
    """One kept-alive connection to the gateway."""

    def __init__(self, key=None, token=None):
        self.conn = http.client.HTTPConnection("127.0.0.1", GATEWAY, timeout=10)
        self.auth = f"Bearer {key or token}"

    def call(self, method, path, body=None):
        self.conn.request(method, path, body, {"Authorization": self.auth, "Content-Type": "application/json"})
        response = self.conn.getresponse()
        return response.status, response.read()

    def chat(self):
        return self.call("POST", "/v1/chat/completions", CHAT)


def create(admin):
    status, body = admin.call("POST", "/admin/credentials",
                              json.dumps({"tenant": "bench", "provider": "byok", "name": "main", "secret": SECRET}))
    if status != 201:
        raise RuntimeError(f"create: {status} {body[:200]}")
    return json.loads(body)["id"]


def until_refused(client):
    """Requests until one is refused: (milliseconds from now to that refusal, requests sent)."""
    started = time.perf_counter()
    for sent in range(1, 100_000):
        status, body = client.chat()
        if status == 403 and b"no_provider_credential" in body:
            return (time.perf_counter() - started) * 1000, sent
        if status != 200:
            raise RuntimeError(f"unexpected {status}: {body[:200]}")
    raise RuntimeError("never refused")


def trials(n, admin, client, revoke):
    """`n` trials; `revoke(id)` revokes and returns when it is done."""
    times, requests = [], []
    for _ in range(n):
        cred = create(admin)
        status, body = client.chat()
        if status != 200:
            raise RuntimeError(f"with a fresh credential: {status} {body[:200]}")
        revoke(cred)
        ms, sent = until_refused(client)
        times.append(ms)
        requests.append(sent)
    return times, requests


def background(key, stop, counts):
    """Keeps requests flowing through the route until `stop` is set."""
    client = Client(key=key)
    while not stop.is_set():
        status, _ = client.chat()
        counts[status] = counts.get(status, 0) + 1


def build():
    """Which build of the binary ran: `release`, `debug`, …."""
    return AIRLOCK.parent.name


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--load", type=int, default=4, help="client threads sending requests during the loaded trials")
    ap.add_argument("--no-write", action="store_true")
    opts = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="airlock-credentials-"))
    procs = []
    try:
        procs.append(start([str(AIRLOCK), "mock-upstream", "--listen", f"127.0.0.1:{MOCK}", "--api-key", SECRET], "listening"))
        subprocess.run([str(AIRLOCK), "init", "--dir", str(work), "--upstream-url", f"http://127.0.0.1:{MOCK}/v1"],
                       check=True, capture_output=True)
        cfg = work / "airlock.yaml"
        text = cfg.read_text().replace("listen: 127.0.0.1:8080", f"listen: 127.0.0.1:{GATEWAY}").replace("level: info", "level: error")
        text = text.replace("upstreams:\n", f"upstreams:\n  byok: {{base_url: 'http://127.0.0.1:{MOCK}/v1'}}\n", 1)
        cfg.write_text(text.replace("models:\n", "models:\n" + ROUTE, 1) + "audit:\n  enabled: false\n")
        run = lambda *args: subprocess.run([str(AIRLOCK), *args, "--config", str(cfg)], check=True, capture_output=True, text=True).stdout
        key = json.loads(run("keys", "create", "--tenant", "bench", "--json"))["key"]
        token = json.loads(run("admin", "token", "create", "--name", "bench", "--role", "super-admin", "--json"))["token"]
        procs.append(start([str(AIRLOCK), "serve", "--config", str(cfg)], "listening"))
        admin, client = Client(token=token), Client(key=key)

        def api_revoke(cred):
            status, body = admin.call("POST", f"/admin/credentials/{cred}/revoke")
            if status != 200:
                raise RuntimeError(f"revoke: {status} {body[:200]}")

        def cli_revoke(cred):
            run("credentials", "revoke", cred)

        results = [("admin API, idle gateway", *trials(opts.trials, admin, client, api_revoke))]
        stop, counts = threading.Event(), {}
        threads = [threading.Thread(target=background, args=(key, stop, counts)) for _ in range(opts.load)]
        for t in threads:
            t.start()
        try:
            loaded_started = time.perf_counter()
            results.append((f"admin API, {opts.load} clients sending meanwhile", *trials(opts.trials, admin, client, api_revoke)))
            loaded_secs = time.perf_counter() - loaded_started
        finally:
            stop.set()
            for t in threads:
                t.join()
        results.append(("`airlock credentials revoke` (another process; inotify)", *trials(opts.trials, admin, client, cli_revoke)))
    finally:
        stop_all(procs)
    background_requests = sum(counts.values())
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} with `bench/credentials.py` (trials={opts.trials} per row, {build()} build).",
        f"Machine: {machine()}. Client, gateway and mock-upstream share these cores.",
        "",
        "Propagation: from the revocation returning (the admin API's answer read; the CLI process exited) to the "
        "answer of the first request refused with 403 `no_provider_credential`, requests sent one after the other "
        "on a kept-alive connection. It includes that request's own round trip.",
        "",
        "| revocation | p50 ms | p99 ms | max ms | requests until refused (max) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, times, requests in results:
        lines.append(f"| {name} | {statistics.median(times):.2f} | {pct(times, 99):.2f} | {max(times):.2f} | {max(requests)} |")
    lines += [
        "",
        f"Background load in the second row: {background_requests:,} requests in {loaded_secs:.1f} s "
        f"({background_requests / loaded_secs:.0f}/s; statuses {dict(sorted(counts.items()))}: 403 while the tenant "
        "had no credential between trials).",
    ]
    publish("\n".join(lines), opts.no_write, BEGIN, END)


if __name__ == "__main__":
    main()
