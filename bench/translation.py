"""What translating to another wire format costs (called by bench/run.sh): the same chat
requests through Airlock to an OpenAI-format upstream (passthrough) and to Anthropic- and
Gemini-format ones (request, answer and stream events translated), with Airlock's own CPU
time per request read from /proc, which leaves the simulators' cost out."""

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from run import AIRLOCK, CHAT, WRK_SCRIPT, machine, publish, start, stop_all, wrk

OPENAI_MOCK, ANTHROPIC_MOCK, GEMINI_MOCK, GATEWAY = 18200, 18201, 18202, 18280
# (model, upstream format as the table names it)
TARGETS = (("passthrough", "OpenAI (passthrough)"), ("translated", "Anthropic (translated)"),
           ("gemini", "Gemini (translated)"))
BEGIN, END = "<!-- translation:begin (written by bench/translation.py) -->", "<!-- translation:end -->"


def cpu_seconds(pid):
    """User plus system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-write", action="store_true")
    opts = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="airlock-translation-"))
    procs = []
    results = {}
    try:
        procs.append(start([str(AIRLOCK), "mock-upstream", "--listen", f"127.0.0.1:{OPENAI_MOCK}"], "listening"))
        procs.append(start([str(AIRLOCK), "mock-upstream", "--listen", f"127.0.0.1:{ANTHROPIC_MOCK}", "--flavor", "anthropic"],
                           "listening"))
        procs.append(start([str(AIRLOCK), "mock-upstream", "--listen", f"127.0.0.1:{GEMINI_MOCK}", "--flavor", "gemini"],
                           "listening"))
        subprocess.run([str(AIRLOCK), "init", "--dir", str(work), "--upstream-url", f"http://127.0.0.1:{OPENAI_MOCK}/v1",
                        "--model", "passthrough", "--upstream-model", "mock-llama"], check=True, capture_output=True)
        cfg = work / "airlock.yaml"
        text = cfg.read_text().replace("listen: 127.0.0.1:8080", f"listen: 127.0.0.1:{GATEWAY}").replace("level: info", "level: error")
        text = text.replace("upstreams:\n", f"upstreams:\n  claude:\n    kind: anthropic\n    base_url: http://127.0.0.1:{ANTHROPIC_MOCK}/v1\n"
                            f"  gem:\n    kind: gemini\n    base_url: http://127.0.0.1:{GEMINI_MOCK}/v1beta\n", 1)
        cfg.write_text(text.replace("models:\n", "models:\n  translated:\n    upstream: claude\n    model: mock-llama\n"
                                    "  gemini:\n    upstream: gem\n    model: mock-llama\n", 1))
        key = json.loads(subprocess.run([str(AIRLOCK), "keys", "create", "--config", str(cfg), "--tenant", "bench", "--json"],
                                        check=True, capture_output=True, text=True).stdout)["key"]
        gateway = start([str(AIRLOCK), "serve", "--config", str(cfg)], "listening")
        procs.append(gateway)
        script = work / "post.lua"
        script.write_text(WRK_SCRIPT)
        url = f"http://127.0.0.1:{GATEWAY}/v1/chat/completions"
        runs = {}
        for mode in ("chat", "stream"):
            for model, _ in TARGETS:
                body = dict(CHAT, model=model, stream=mode == "stream")
                wrk(url, body, key, 2, 32, str(script))  # warm-up
                runs[(mode, model)] = []
            for _ in range(opts.repeat):
                for model, _ in TARGETS:
                    body = dict(CHAT, model=model, stream=mode == "stream")
                    before = cpu_seconds(gateway.pid)
                    result = wrk(url, body, key, opts.seconds, 32, str(script))
                    spent = cpu_seconds(gateway.pid) - before
                    result["cpu_us"] = spent / (result["rps"] * opts.seconds) * 1e6
                    runs[(mode, model)].append(result)
        for key_, values in runs.items():
            results[key_] = {k: statistics.median(v[k] for v in values) for k in ("rps", "p50", "cpu_us")}
    finally:
        stop_all(procs)
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} with `bench/translation.py` (wrk, 32 connections, {opts.seconds} s runs "
        f"interleaved {opts.repeat}x, medians).",
        f"Machine: {machine()}.",
        "",
        "| mode | upstream format | req/s | p50 ms | Airlock CPU per request |",
        "|---|---|---:|---:|---:|",
    ]
    for mode in ("chat", "stream"):
        for model, label in TARGETS:
            r = results[(mode, model)]
            lines.append(f"| {mode} | {label} | {r['rps']:.0f} | {r['p50']:.3f} | {r['cpu_us']:.1f} µs |")
    lines.append("")
    for mode in ("chat", "stream"):
        base = results[(mode, "passthrough")]["cpu_us"]
        for model, label in TARGETS[1:]:
            extra = results[(mode, model)]["cpu_us"] - base
            lines.append(f"- {label.split()[0]} translation adds {extra:.1f} µs of Airlock CPU per {mode} request.")
    publish("\n".join(lines), opts.no_write, BEGIN, END)


if __name__ == "__main__":
    main()
