"""Personal-data benchmark (issue 6): recognizer throughput, the NER model's latency on one
core, and the latency the personal-data stage adds in the gateway at 200 requests/s.

    python3 bench/pii.py [--seconds 20] [--rate 200] [--no-write]

In process (`airlock pii bench`): the recognizers over 1 MB of prose and 1 MB with a value
every ~200 bytes; the embedded model at 64, 256 and 512 tokens. Through the gateway: two
instances in front of mock-upstream, one with `pii.enabled: false`, one with the default
personal-data stage plus tokenisation (`pii.actions.default: tokenise`); an open-loop
client sends a typical chat (ten earlier turns, resent every time as chat clients do, and
one new message with a name, an e-mail address and a phone number, different in every
request) at a fixed rate. Latency is measured from each request's scheduled send time, so
queueing counts. Writes its block of docs/benchmarks.md.
"""

import argparse
import http.client
import json
import queue
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from run import AIRLOCK, machine, publish, start, stop_all

BEGIN, END = "<!-- pii:begin (written by bench/pii.py) -->", "<!-- pii:end -->"
MOCK, OFF, ON = 18200, 18280, 18281
NAMES = ["Sarah Thompson", "James Miller", "Olivia Brown", "Henry Wilson", "Amelia Clarke", "Jacob Evans"]
HISTORY = [
    {"role": "system", "content": "You are a helpful support assistant for a retail bank."},
] + [
    {"role": role, "content": text}
    for i in range(5)
    for role, text in (
        ("user", f"Question {i}: how do I change the standing order on my current account before the end of the month?"),
        ("assistant", f"Answer {i}: open the app, choose Payments, then Standing orders, pick the order and edit the amount or date."),
    )
]


def chat(i):
    name = NAMES[i % len(NAMES)]
    message = (f"Hi, this is {name}. Please update my contact details: e-mail {name.split()[0].lower()}.{i}@example.com, "
               f"phone +44 20 7946 {i % 10000:04d}. Ticket {i}.")
    return json.dumps({"model": "bench", "max_tokens": 16, "messages": HISTORY + [{"role": "user", "content": message}]})


def instance(work, name, port, extra):
    d = work / name
    subprocess.run([str(AIRLOCK), "init", "--dir", str(d), "--upstream-url", f"http://127.0.0.1:{MOCK}/v1",
                    "--model", "bench", "--upstream-model", "mock-llama"], check=True, capture_output=True)
    cfg = d / "airlock.yaml"
    cfg.write_text(cfg.read_text().replace("listen: 127.0.0.1:8080", f"listen: 127.0.0.1:{port}")
                   .replace("level: info", "level: warn") + "audit:\n  enabled: false\n" + extra)
    key = json.loads(subprocess.run([str(AIRLOCK), "keys", "create", "--config", str(cfg), "--tenant", "bench", "--json"],
                                    check=True, capture_output=True, text=True).stdout)["key"]
    return start([str(AIRLOCK), "serve", "--config", str(cfg)], "listening"), key


def open_loop(port, key, rate, seconds, workers=16):
    """Sends `rate` requests/s for `seconds` from `workers` keep-alive connections; returns
    the latencies (ms) from each request's scheduled time and the non-200 count."""
    jobs, latencies, failures = queue.Queue(), [], []

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", port)
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        while (job := jobs.get()) is not None:
            due, body = job
            conn.request("POST", "/v1/chat/completions", body, headers)
            response = conn.getresponse()
            response.read()
            latencies.append((time.perf_counter() - due) * 1000)
            if response.status != 200:
                failures.append(response.status)

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    start_at, total = time.perf_counter() + 0.1, rate * seconds
    for i in range(total):
        due = start_at + i / rate
        time.sleep(max(0.0, due - time.perf_counter()))
        jobs.put((due, chat(i)))
    for _ in threads:
        jobs.put(None)
    for t in threads:
        t.join()
    return latencies, len(failures)


def percentiles(values):
    values = sorted(values)
    at = lambda q: values[min(len(values) - 1, int(round((len(values) - 1) * q)))]
    return {"p50": at(0.5), "p99": at(0.99)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--rate", type=int, default=200)
    ap.add_argument("--no-write", action="store_true")
    opts = ap.parse_args()
    inproc = json.loads(subprocess.run([str(AIRLOCK), "pii", "bench", "--json"], check=True, capture_output=True, text=True).stdout)
    work = Path(tempfile.mkdtemp(prefix="airlock-pii-bench-"))
    procs = []
    try:
        procs.append(start([str(AIRLOCK), "mock-upstream", "--listen", f"127.0.0.1:{MOCK}", "--models", "mock-llama"], "listening"))
        off, off_key = instance(work, "off", OFF, "pii:\n  enabled: false\n")
        on, on_key = instance(work, "on", ON, "pii:\n  actions: {default: tokenise}\n")
        procs += [off, on]
        results = {}
        for name, port, key in (("off", OFF, off_key), ("on", ON, on_key)):
            open_loop(port, key, opts.rate, 2)  # warm-up
        for name, port, key in (("off", OFF, off_key), ("on", ON, on_key)):
            latencies, failed = open_loop(port, key, opts.rate, opts.seconds)
            results[name] = dict(percentiles(latencies), failed=failed, n=len(latencies))
            print(f"PII {name}: p50 {results[name]['p50']:.2f} ms, p99 {results[name]['p99']:.2f} ms, {failed} failed", flush=True)
    finally:
        stop_all(procs)
    prompt_bytes = len(chat(0))
    lines = [f"Machine: {machine()}; release build.", "",
             "Recognizers (`airlock pii bench`, one thread):", "",
             "| text | MB/s | findings |", "|---|---|---|"]
    lines += [f"| {t['text']} | {t['mb_per_s']:.1f} | {t['findings']:,} |" for t in inproc["recognizers"]]
    lines += ["", f"NER model ({inproc['model']}), one thread, one text at a time:", "",
              "| tokens | p50 ms | p99 ms |", "|---|---|---|"]
    lines += [f"| {l['tokens']} | {l['p50_ms']:.2f} | {l['p99_ms']:.2f} |" for l in inproc["ner"]]
    off, on = results["off"], results["on"]
    lines += ["", f"Gateway at {opts.rate} requests/s for {opts.seconds} s (open loop, latency from the scheduled send), "
              f"a {prompt_bytes:,}-byte chat of eleven turns whose last message (a name, an e-mail, a phone number) "
              "is new in every request; the earlier turns come from the scan-once cache:", "",
              "| personal-data stage | p50 ms | p99 ms | failed |", "|---|---|---|---|",
              f"| off | {off['p50']:.2f} | {off['p99']:.2f} | {off['failed']} |",
              f"| on (recognizers + NER, tokenise, restore) | {on['p50']:.2f} | {on['p99']:.2f} | {on['failed']} |",
              f"| added | {on['p50'] - off['p50']:+.2f} | {on['p99'] - off['p99']:+.2f} | |"]
    publish("\n".join(lines), opts.no_write, BEGIN, END)


if __name__ == "__main__":
    main()
