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
PROMPT = CHAT["messages"][0]["content"]


def upstream_scenario(model, stream):
    """An OpenAI chat request to `model` (whose upstream speaks some format)."""
    return "/v1/chat/completions", dict(CHAT, model=model, stream=stream)


def client_scenario(client, stream):
    """A request in a client's own format, to the OpenAI-format (vLLM-style) upstream."""
    if client == "messages":
        return "/v1/messages", {"model": "passthrough", "max_tokens": 16, "stream": stream,
                                "messages": [{"role": "user", "content": PROMPT}]}
    if client == "responses":
        return "/v1/responses", {"model": "passthrough", "max_output_tokens": 16, "stream": stream, "input": PROMPT}
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    return f"/v1beta/models/passthrough:{method}", {"contents": [{"role": "user", "parts": [{"text": PROMPT}]}],
                                                    "generationConfig": {"maxOutputTokens": 16}}


# (row label, request for a mode): the upstream side, then the client side.
UPSTREAMS = (("OpenAI (passthrough)", lambda s: upstream_scenario("passthrough", s)),
             ("Anthropic (translated)", lambda s: upstream_scenario("translated", s)),
             ("Gemini (translated)", lambda s: upstream_scenario("gemini", s)))
CLIENTS = (("Anthropic Messages", lambda s: client_scenario("messages", s)),
           ("OpenAI Responses", lambda s: client_scenario("responses", s)),
           ("Gemini generateContent", lambda s: client_scenario("gemini", s)))
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
        # Translation alone is measured: the audit trail (bench/run.py measures it) is off.
        cfg.write_text(text.replace("models:\n", "models:\n  translated:\n    upstream: claude\n    model: mock-llama\n"
                                    "  gemini:\n    upstream: gem\n    model: mock-llama\n", 1) + "audit:\n  enabled: false\n")
        key = json.loads(subprocess.run([str(AIRLOCK), "keys", "create", "--config", str(cfg), "--tenant", "bench", "--json"],
                                        check=True, capture_output=True, text=True).stdout)["key"]
        gateway = start([str(AIRLOCK), "serve", "--config", str(cfg)], "listening")
        procs.append(gateway)
        script = work / "post.lua"
        script.write_text(WRK_SCRIPT)
        runs = {}
        for mode in ("chat", "stream"):
            for label, scenario in UPSTREAMS + CLIENTS:
                path, body = scenario(mode == "stream")
                wrk(f"http://127.0.0.1:{GATEWAY}{path}", body, key, 2, 32, str(script))  # warm-up
                runs[(mode, label)] = []
            for _ in range(opts.repeat):
                for label, scenario in UPSTREAMS + CLIENTS:
                    path, body = scenario(mode == "stream")
                    before = cpu_seconds(gateway.pid)
                    result = wrk(f"http://127.0.0.1:{GATEWAY}{path}", body, key, opts.seconds, 32, str(script))
                    spent = cpu_seconds(gateway.pid) - before
                    result["cpu_us"] = spent / (result["rps"] * opts.seconds) * 1e6
                    runs[(mode, label)].append(result)
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
    row = lambda mode, label: results[(mode, label)]  # noqa: E731
    for mode in ("chat", "stream"):
        for label, _ in UPSTREAMS:
            r = row(mode, label)
            lines.append(f"| {mode} | {label} | {r['rps']:.0f} | {r['p50']:.3f} | {r['cpu_us']:.1f} µs |")
    lines += ["", "Clients in their own format, to the same OpenAI-format upstream:", "",
              "| mode | client format | req/s | p50 ms | Airlock CPU per request |", "|---|---|---:|---:|---:|"]
    for mode in ("chat", "stream"):
        r = row(mode, UPSTREAMS[0][0])
        lines.append(f"| {mode} | OpenAI chat (passthrough) | {r['rps']:.0f} | {r['p50']:.3f} | {r['cpu_us']:.1f} µs |")
        for label, _ in CLIENTS:
            r = row(mode, label)
            lines.append(f"| {mode} | {label} | {r['rps']:.0f} | {r['p50']:.3f} | {r['cpu_us']:.1f} µs |")
    lines.append("")
    for mode in ("chat", "stream"):
        base = row(mode, UPSTREAMS[0][0])["cpu_us"]
        extras = ", ".join(f"{label} +{row(mode, label)['cpu_us'] - base:.1f}" for label, _ in UPSTREAMS[1:] + CLIENTS)
        lines.append(f"- Airlock CPU per {mode} request over passthrough, in µs: {extras}.")
    publish("\n".join(lines), opts.no_write, BEGIN, END)


if __name__ == "__main__":
    main()
