"""The governed paths measured honestly: a different prompt per request (names, places and
numbers varied) beside the identical body bench/run.py sends, which the personal-data scan
cache answers; for the default configuration (a fresh `airlock init`) and a governed one
(baseline policy, tokenisation, durable audit). Writes its block of docs/benchmarks.md."""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from run import AIRLOCK, CHAT, machine, publish, settle, start, stop_all, wrk

MOCK_PORT = 18100
GATEWAYS = {"default": 18101, "governed": 18102}
# The governed instance: what `airlock demo` configures.
GOVERNED = "pii:\n  actions: {default: tokenise, by_class: {SECRET: mask}}\n"
BASELINE = Path(__file__).resolve().parent.parent / "policies" / "baseline" / "policy.yaml"

# Each wrk thread numbers its requests apart from the other's; every prompt differs.
RUN_STRIDE = 10_000_000
UNIQUE_SCRIPT = r"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_KEY")
local model = os.getenv("BENCH_MODEL")
local first = {"Sarah","Miguel","Aisha","Tomasz","Ingrid","Kenji","Fatima","Oliver","Priya","Lukas","Chloe","Dmitri"}
local last = {"Thompson","Garcia","Okafor","Nowak","Lindqvist","Tanaka","Haddad","Brennan","Raman","Keller","Moreau","Ivanova"}
local city = {"Leeds","Porto","Lagos","Gdansk","Uppsala","Osaka","Beirut","Cork","Pune","Graz","Lyon","Tartu"}
local threads = 0
function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end
-- Each run starts where no earlier run went, so no prompt repeats across runs either.
local n = tonumber(os.getenv("BENCH_OFFSET"))
function request()
  n = n + 1
  local i = n * 2 + id
  local a, b, c = first[i % 12 + 1], last[math.floor(i / 12) % 12 + 1], city[math.floor(i / 144) % 12 + 1]
  local text = string.format(
    "Please write to %s %s in %s about invoice %d; call +44 20 7946 %04d or mail %s.%s%d@example.com.",
    a, b, c, i * 7919 % 1000000, i % 10000, string.lower(a), string.lower(b), i)
  local body = string.format(
    '{"model":"%s","max_tokens":16,"messages":[{"role":"user","content":"%s"}]}', model, text)
  return wrk.format(nil, nil, nil, body)
end
"""

STATIC_SCRIPT = """
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_KEY")
"""


def metrics(port):
    """The gateway's /metrics, as {name{labels}: value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as answer:
        text = answer.read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def mean_ms(before, after, histogram):
    """The mean of a histogram's observations between two scrapes, in ms."""
    total = lambda m, suffix: sum(v for k, v in m.items() if re.match(rf"{histogram}_{suffix}(\{{|$)", k))
    count = total(after, "count") - total(before, "count")
    return 1000 * (total(after, "sum") - total(before, "sum")) / count if count else 0.0


def counter(before, after, name):
    total = lambda m: sum(v for k, v in m.items() if re.match(rf"{name}(_total)?(\{{|$)", k))
    return total(after) - total(before)


def instance(work, name, port):
    subprocess.run([str(AIRLOCK), "init", "--dir", str(work / name), "--upstream-url", f"http://127.0.0.1:{MOCK_PORT}/v1",
                    "--model", "bench", "--upstream-model", "mock-llama"], check=True, capture_output=True)
    cfg = work / name / "airlock.yaml"
    text = cfg.read_text().replace("listen: 127.0.0.1:8080", f"listen: 127.0.0.1:{port}").replace("level: info", "level: warn")
    cfg.write_text(text + (GOVERNED if name == "governed" else ""))
    if name == "governed":
        subprocess.run([str(AIRLOCK), "policy", "apply", "--config", str(cfg), "-m", "bench", str(BASELINE)],
                       check=True, capture_output=True)
    key = json.loads(subprocess.run([str(AIRLOCK), "keys", "create", "--config", str(cfg), "--tenant", "bench", "--json"],
                                    check=True, capture_output=True, text=True).stdout)["key"]
    return key, start([str(AIRLOCK), "serve", "--config", str(cfg)], "listening")


def measure(port, key, script, seconds, conns):
    """One saturated run: wrk's numbers, and per request what /metrics saw."""
    before = metrics(port)
    body = dict(CHAT, model="bench")
    os.environ["BENCH_MODEL"] = "bench"
    measure.runs += 1
    os.environ["BENCH_OFFSET"] = str(measure.runs * RUN_STRIDE)
    result = wrk(f"http://127.0.0.1:{port}/v1/chat/completions", body, key, seconds, conns, str(script))
    after = metrics(port)
    requests = counter(before, after, "airlock_requests") or 1
    result |= {
        "overhead": mean_ms(before, after, "airlock_gateway_overhead_seconds"),
        "policy": mean_ms(before, after, "airlock_policy_evaluation_seconds"),
        "cached": counter(before, after, "airlock_pii_scan_cache_hits") / requests,
        "unscanned": counter(before, after, "airlock_pii_ner_missing"),
    }
    return result


measure.runs = 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--conns", type=int, default=32)
    ap.add_argument("--no-write", action="store_true")
    opts = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="airlock-unique-"))
    procs = []
    results = {}
    try:
        procs.append(start([str(AIRLOCK), "mock-upstream", "--listen", f"127.0.0.1:{MOCK_PORT}", "--models", "mock-llama"], "listening"))
        keys = {}
        for name, port in GATEWAYS.items():
            keys[name], gateway = instance(work, name, port)
            procs.append(gateway)
        scripts = {"identical": work / "static.lua", "unique": work / "unique.lua"}
        scripts["identical"].write_text(STATIC_SCRIPT)
        scripts["unique"].write_text(UNIQUE_SCRIPT)
        for name, port in GATEWAYS.items():
            for prompts, script in scripts.items():
                measure(port, keys[name], script, 2, opts.conns)  # warm-up
                results[(name, prompts)] = measure(port, keys[name], script, opts.seconds, opts.conns)
                settle(port)
                r = results[(name, prompts)]
                print(f"{name:9} {prompts:9} {r['rps']:8.0f} req/s p50 {r['p50']:.2f} ms p99 {r['p99']:.2f} ms "
                      f"overhead {r['overhead']:.2f} ms cached {r['cached']:.0%} unscanned {r['unscanned']:.0f}", flush=True)
    finally:
        stop_all(procs)
    publish(render(results, opts), opts.no_write, BEGIN, END)


BEGIN, END = "<!-- unique:begin (written by bench/unique.py) -->", "<!-- unique:end -->"


def render(results, opts):
    lines = [
        f"Machine: {machine()}; release build; `bench/unique.py` (wrk, {opts.conns} connections, {opts.seconds} s saturated "
        "per row, after a 2 s warm-up). `default`: a fresh `airlock init` instance (durable audit, every prompt scanned by "
        "the recognizers and the NER model, findings recorded). `governed`: the same plus the baseline policy pack and "
        "tokenisation of personal data (what `airlock demo` runs). `identical`: one body for every request, as bench/run.py "
        "sends; `unique`: a different prompt per request (a name, a city, an invoice number, a phone number, an e-mail).",
        "",
        "| configuration | prompts | req/s | p50 ms | p99 ms | Airlock's own time per request (mean ms) | policy (mean ms) | prompts from the scan cache |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for (name, prompts), r in results.items():
        lines.append(f"| {name} | {prompts} | {r['rps']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['overhead']:.2f} | "
                     f"{r['policy']:.3f} | {r['cached']:.0%} |")
    unscanned = {k: r["unscanned"] for k, r in results.items() if r["unscanned"]}
    if unscanned:
        lines += ["", "Prompt texts the NER model could not read in time (counted by `airlock_pii_ner_missing`): "
                  + ", ".join(f"{n} {p}: {v:.0f}" for (n, p), v in unscanned.items()) + "."]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
