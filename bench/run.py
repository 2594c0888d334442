"""Runs the load scenarios and writes docs/benchmarks.md (called by bench/run.sh)."""

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The release build; AIRLOCK_BIN names another (e.g. a debug build, or another target dir).
AIRLOCK = Path(os.environ.get("AIRLOCK_BIN", ROOT / "target" / "release" / "airlock"))
MOCK_PORT, NGINX_PORT, AIRLOCK_PORT, AIRLOCK_AUDIT_PORT = 18000, 18081, 18080, 18082
CHAT = {"model": "MODEL", "messages": [{"role": "user", "content": "Summarise the quarterly report in one line."}], "max_tokens": 16}

NGINX_CONF = """
worker_processes 1;
error_log {dir}/error.log warn;
pid {dir}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    upstream mock {{ server 127.0.0.1:{mock}; keepalive 256; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}
}}
"""

WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Content-Type"] = "application/json"
local key = os.getenv("BENCH_KEY")
if key and key ~= "" then wrk.headers["Authorization"] = "Bearer " .. key end
"""


def start(args, pattern):
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in proc.stdout:
        if re.search(pattern, line):
            return proc
    raise RuntimeError(f"{args} exited with {proc.wait()}")


def wait_port(port):
    import socket

    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} never opened")


def to_ms(text):
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk(url, body, key, seconds, conns, script):
    env = dict(os.environ, BENCH_BODY=json.dumps(body), BENCH_KEY=key or "")
    out = subprocess.run(
        ["wrk", "-t2", f"-c{conns}", f"-d{seconds}s", "--latency", "-s", script, url],
        env=env, capture_output=True, text=True, check=True,
    ).stdout
    try:
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        p50 = to_ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
        p99 = to_ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    except (AttributeError, KeyError) as e:
        raise RuntimeError(f"cannot read wrk output for {url}:\n{out}") from e
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    if errors or socket_errors:
        print(f"  warning: {url}: {errors.group(0) if errors else ''} {socket_errors.group(0) if socket_errors else ''}", file=sys.stderr)
    return {"rps": rps, "p50": p50, "p99": p99}


def oha(url, body, key, seconds, rate):
    args = ["oha", "-z", f"{seconds}s", "-q", str(rate), "-c", "16", "--no-tui", "--output-format", "json",
            "-m", "POST", "-H", "Content-Type: application/json", "-d", json.dumps(body), url]
    if key:
        args[1:1] = ["-H", f"Authorization: Bearer {key}"]
    out = json.loads(subprocess.run(args, capture_output=True, text=True, check=True).stdout)
    pct = out["latencyPercentiles"]
    codes = out.get("statusCodeDistribution", {})
    if set(codes) - {"200"}:
        print(f"  warning: {url}: status codes {codes}", file=sys.stderr)
    return {"p50": pct["p50"] * 1000, "p99": pct["p99"] * 1000, "rps": out["summary"]["requestsPerSec"]}


def settle(port, timeout=120):
    """Waits until a gateway's audit index has caught up (its lag metric reads 0), so
    background indexing of a saturated run does not load the next measurement."""
    import urllib.request
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
        except OSError:
            return
        lag = re.search(r"^airlock_audit_index_lag_records (\d+)", metrics, re.M)
        if lag is None or lag.group(1) == "0":
            return
        time.sleep(1)


def rss_mb(pid):
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("model name")), "?")
    mem = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1)) // (1024 * 1024)
    return f"{os.cpu_count()} cores ({cpu}), {mem} GiB RAM, {platform.system()} {platform.release()}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--conns", type=int, default=32)
    ap.add_argument("--rate", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=3, help="saturated runs per target, interleaved; medians are reported")
    ap.add_argument("--no-write", action="store_true")
    opts = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="airlock-bench-"))
    procs = []
    try:
        procs.append(start([str(AIRLOCK), "mock-upstream", "--listen", f"127.0.0.1:{MOCK_PORT}", "--models", "mock-llama"], "listening"))
        # "airlock" only proxies (audit and personal-data scanning off), like nginx;
        # "airlock+audit" runs the default configuration, every response waiting for its
        # durable audit record (and every prompt scanned for personal data).
        gateways = {}
        for name, port, audit in (("airlock", AIRLOCK_PORT, "audit:\n  enabled: false\npii:\n  enabled: false\n"),
                                  ("airlock+audit", AIRLOCK_AUDIT_PORT, "")):
            subprocess.run([str(AIRLOCK), "init", "--dir", str(work / name), "--upstream-url", f"http://127.0.0.1:{MOCK_PORT}/v1",
                            "--model", "bench", "--upstream-model", "mock-llama"], check=True, capture_output=True)
            cfg = work / name / "airlock.yaml"
            text = cfg.read_text().replace("listen: 127.0.0.1:8080", f"listen: 127.0.0.1:{port}").replace("level: info", "level: warn")
            cfg.write_text(text + audit)
            key = json.loads(subprocess.run([str(AIRLOCK), "keys", "create", "--config", str(cfg), "--tenant", "bench", "--json"],
                                            check=True, capture_output=True, text=True).stdout)["key"]
            gateway = start([str(AIRLOCK), "serve", "--config", str(cfg)], "listening")
            procs.append(gateway)
            gateways[name] = (port, key, gateway)
        (work / "nginx").mkdir()
        conf = work / "nginx" / "nginx.conf"
        conf.write_text(NGINX_CONF.format(dir=work / "nginx", mock=MOCK_PORT, port=NGINX_PORT))
        procs.append(subprocess.Popen(["nginx", "-c", str(conf), "-g", "daemon off;"], stderr=subprocess.DEVNULL))
        wait_port(NGINX_PORT)
        script = work / "post.lua"
        script.write_text(WRK_SCRIPT)

        targets = {
            "direct": (f"http://127.0.0.1:{MOCK_PORT}", "mock-llama", None),
            "nginx": (f"http://127.0.0.1:{NGINX_PORT}", "mock-llama", None),
            **{name: (f"http://127.0.0.1:{port}", "bench", key) for name, (port, key, _) in gateways.items()},
        }
        results = {}
        for mode in ("chat", "stream"):
            bodies = {}
            for name, (base, model, k) in targets.items():
                body = dict(CHAT, model=model)
                if mode == "stream":
                    body["stream"] = True
                bodies[name] = body
                wrk(f"{base}/v1/chat/completions", body, k, 2, opts.conns, str(script))  # warm-up
            # Interleave the targets so drift on a shared machine hits them all alike.
            runs = {name: [] for name in targets}
            for _ in range(opts.repeat):
                for name, (base, model, k) in targets.items():
                    runs[name].append(wrk(f"{base}/v1/chat/completions", bodies[name], k, opts.seconds, opts.conns, str(script)))
            for name, (base, model, k) in targets.items():
                sat = {key: statistics.median(r[key] for r in runs[name]) for key in ("rps", "p50", "p99")}
                if name in gateways:
                    settle(gateways[name][0])
                fixed = oha(f"{base}/v1/chat/completions", bodies[name], k, opts.seconds, opts.rate)
                results[(mode, name)] = {"sat": sat, "fixed": fixed}
                print(f"{mode:6} {name:13} saturated {sat['rps']:9.0f} req/s p50 {sat['p50']:7.3f} ms p99 {sat['p99']:7.3f} ms "
                      f"(runs: {' '.join(str(round(r['rps'])) for r in runs[name])}) | "
                      f"{opts.rate} req/s: p50 {fixed['p50']:.3f} ms p99 {fixed['p99']:.3f} ms", flush=True)
        rss = rss_mb(gateways["airlock"][2].pid)
        print(f"airlock peak RSS: {rss:.1f} MB")
    finally:
        stop_all(procs)
    publish(render(results, rss, opts), opts.no_write)


TARGET_NAMES = ("direct", "nginx", "airlock", "airlock+audit")

BEGIN, END = "<!-- results:begin (written by bench/run.py) -->", "<!-- results:end -->"


def publish(report, no_write, begin=BEGIN, end=END):
    """Prints a report and, unless told not to, writes it into its block of the doc."""
    print(report)
    if not no_write:
        write_report(report, begin, end)


def stop_all(procs):
    """Stops started processes, newest first."""
    for p in reversed(procs):
        p.terminate()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()


def write_report(report, begin=BEGIN, end=END):
    """Replaces a results block of docs/benchmarks.md, keeping the notes around it."""
    path = ROOT / "docs" / "benchmarks.md"
    block = f"{begin}\n{report}\n{end}"
    text = path.read_text() if path.exists() else f"# Benchmarks\n\n{begin}\n{end}\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)


def render(results, rss, opts):
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} with `bench/run.sh` (seconds={opts.seconds}, connections={opts.conns}, "
        f"fixed rate={opts.rate}/s, saturated runs interleaved {opts.repeat}× per target, medians shown).",
        f"Machine: {machine()}. Load generator, gateway, nginx and mock-upstream share these cores.",
        "",
        "Upstream: `airlock mock-upstream` (vLLM wire format, no added latency, 16 tokens per answer).",
        "nginx: Debian's nginx, one worker, keep-alive upstream pool, `proxy_buffering off`.",
        "Airlock: release build, request log and metrics on, one virtual key, `logging.level: warn`; `airlock` only",
        "proxies (`audit.enabled: false`, the comparison with nginx), `airlock+audit` is the default configuration:",
        "every response waits until its audit record (with its sealed payloads) is durable.",
        "",
        "## Saturated throughput (wrk, 2 threads)",
        "",
        "| mode | target | req/s | p50 ms | p99 ms | vs direct | vs nginx |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for mode in ("chat", "stream"):
        direct = results[(mode, "direct")]["sat"]["rps"]
        nginx = results[(mode, "nginx")]["sat"]["rps"]
        for name in TARGET_NAMES:
            s = results[(mode, name)]["sat"]
            lines.append(f"| {mode} | {name} | {s['rps']:.0f} | {s['p50']:.3f} | {s['p99']:.3f} | {s['rps']/direct:.2f}× | {s['rps']/nginx:.2f}× |")
    lines += [
        "",
        f"## Latency at a fixed {opts.rate} requests/s (oha)",
        "",
        "| mode | target | p50 ms | p99 ms | added p50 vs direct | added p99 vs direct |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for mode in ("chat", "stream"):
        d = results[(mode, "direct")]["fixed"]
        for name in TARGET_NAMES:
            f = results[(mode, name)]["fixed"]
            lines.append(f"| {mode} | {name} | {f['p50']:.3f} | {f['p99']:.3f} | {f['p50']-d['p50']:+.3f} | {f['p99']-d['p99']:+.3f} |")
    lines += ["", f"Airlock peak RSS over the whole run: {rss:.1f} MB.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
