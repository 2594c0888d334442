"""Metering overhead (issue 7): what pricing, rate limits and budgets add to a request,
at a fixed 500 requests/s (oha) and saturated (wrk).

    python3 bench/metering.py [--seconds 10] [--rate 500] [--repeat 3] [--no-write]

Two proxy-only gateways (`audit.enabled: false`, `pii.enabled: false`, as in run.py's
`airlock`) in front of one `airlock mock-upstream`. `plain` prices nothing and has no
limits. `metered` prices the model and sends every request through a user's key in a
team with four budgets (tenant, team, user and key, each reserving and settling) and two
rate limits (tenant and key, never reached): each request is costed, takes from two
token buckets and reserves on four ledgers. Runs are interleaved and medians reported.
Writes its block of docs/benchmarks.md.
"""

import argparse
import json
import statistics
import subprocess
import tempfile
import urllib.request
from pathlib import Path

from run import AIRLOCK, CHAT, WRK_SCRIPT, machine, oha, publish, start, stop_all, wrk

MOCK = 18300
GATEWAYS = {"plain": 18380, "metered": 18381}
BEGIN, END = "<!-- metering:begin (written by bench/metering.py) -->", "<!-- metering:end -->"
PROXY_ONLY = "audit:\n  enabled: false\npii:\n  enabled: false\n"
PRICED = "pricing:\n  models:\n    mock-llama: {input: 0.5, output: 1.5}\n"


def cli(*args):
    out = subprocess.run([str(AIRLOCK), *args], check=True, capture_output=True, text=True)
    return out.stdout


def admin(port, token, method, path, body):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(), method=method,
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read())


def gateway(work, name, port):
    """Creates and starts a gateway; returns (process, key)."""
    cli("init", "--dir", str(work / name), "--upstream-url", f"http://127.0.0.1:{MOCK}/v1",
        "--model", "bench", "--upstream-model", "mock-llama")
    cfg = work / name / "airlock.yaml"
    text = cfg.read_text().replace("listen: 127.0.0.1:8080", f"listen: 127.0.0.1:{port}").replace("level: info", "level: warn")
    cfg.write_text(text + PROXY_ONLY + (PRICED if name == "metered" else ""))
    c = ["--config", str(cfg)]
    if name == "metered":
        cli("tenants", *c, "create", "bench")
        cli("tenants", *c, "teams", "--tenant", "bench", "--create", "analysts")
        cli("tenants", *c, "users", "--tenant", "bench", "--create", "ana@bench.example", "--team", "analysts")
        key = json.loads(cli("keys", *c, "create", "--tenant", "bench", "--user", "ana@bench.example", "--json"))
    else:
        key = json.loads(cli("keys", *c, "create", "--tenant", "bench", "--json"))
    proc = start([str(AIRLOCK), "serve", *c], "listening")
    if name == "metered":
        token = json.loads(cli("admin", "token", "create", *c, "--name", "bench", "--role", "super-admin", "--json"))["token"]
        subjects = [("tenant", None), ("team", "analysts"), ("user", "ana@bench.example"), ("key", key["id"])]
        for scope, subject in subjects:
            admin(port, token, "PUT", "/admin/budgets", {"tenant": "bench", "scope": scope, "subject": subject,
                  "window": "monthly", "limit_usd": 1_000_000, "soft_limit_pct": 99})
        for scope, subject in (("tenant", None), ("key", key["id"])):
            admin(port, token, "PUT", "/admin/rate-limits", {"tenant": "bench", "scope": scope, "subject": subject,
                  "requests_per_minute": 10_000_000, "tokens_per_minute": 1_000_000_000})
    return proc, key["key"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--rate", type=int, default=500)
    ap.add_argument("--conns", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-write", action="store_true")
    opts = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="airlock-metering-"))
    procs = []
    try:
        procs.append(start([str(AIRLOCK), "mock-upstream", "--listen", f"127.0.0.1:{MOCK}", "--models", "mock-llama"], "listening"))
        keys = {}
        for name, port in GATEWAYS.items():
            proc, keys[name] = gateway(work, name, port)
            procs.append(proc)
        script = work / "post.lua"
        script.write_text(WRK_SCRIPT)
        body = dict(CHAT, model="bench")
        url = {name: f"http://127.0.0.1:{port}/v1/chat/completions" for name, port in GATEWAYS.items()}
        for name in GATEWAYS:
            wrk(url[name], body, keys[name], 2, opts.conns, str(script))  # warm-up
        fixed = {name: [] for name in GATEWAYS}
        sat = {name: [] for name in GATEWAYS}
        for _ in range(opts.repeat):
            for name in GATEWAYS:
                fixed[name].append(oha(url[name], body, keys[name], opts.seconds, opts.rate))
                sat[name].append(wrk(url[name], body, keys[name], opts.seconds, opts.conns, str(script)))
        med = lambda runs, key: statistics.median(r[key] for r in runs)
        rows = {name: {"p50": med(fixed[name], "p50"), "p99": med(fixed[name], "p99"), "rps": med(sat[name], "rps")}
                for name in GATEWAYS}
        for name, r in rows.items():
            print(f"{name:8} {opts.rate} req/s: p50 {r['p50']:.3f} ms p99 {r['p99']:.3f} ms | saturated {r['rps']:.0f} req/s", flush=True)
    finally:
        stop_all(procs)
    plain, metered = rows["plain"], rows["metered"]
    lines = [
        f"Machine: {machine()}; release build; `bench/metering.py` (fixed rate {opts.rate}/s with oha, saturated with wrk "
        f"{opts.conns} connections, {opts.seconds} s runs interleaved {opts.repeat}×, medians). Both gateways only proxy "
        "(audit and personal-data scanning off). `metered`: a priced model, a user's key in a team, budgets on tenant, "
        "team, user and key (each request reserves on all four and settles), rate limits on tenant and key (RPM and TPM).",
        "",
        f"| gateway | p50 ms at {opts.rate}/s | p99 ms at {opts.rate}/s | saturated req/s |",
        "|---|---:|---:|---:|",
        *(f"| {name} | {r['p50']:.3f} | {r['p99']:.3f} | {r['rps']:.0f} |" for name, r in rows.items()),
        "",
        f"Added by metering at {opts.rate}/s: p50 {metered['p50'] - plain['p50']:+.3f} ms, "
        f"p99 {metered['p99'] - plain['p99']:+.3f} ms; saturated throughput {metered['rps'] / plain['rps']:.2f}× plain.",
    ]
    publish("\n".join(lines), opts.no_write, BEGIN, END)


if __name__ == "__main__":
    main()
