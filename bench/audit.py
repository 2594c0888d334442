"""Audit trail benchmark (issue 4): append throughput with and without fsync, index
throughput and size, and search latency over a seeded log, through the admin API.

    python3 bench/audit.py [--records 1000000] [--ner-records 2000] [--no-write]

Seeds a fresh instance with `airlock audit seed` (realistic sealed, chained records),
rebuilds the index with `airlock audit reindex`, starts `airlock serve` and times each
kind of search from a keep-alive client. Writes its block of docs/benchmarks.md.

The big rebuild runs with `audit.search.find_names: false` (the recognizers take values
out of the indexed text, the NER model does not look for names): with the model, a
rebuild runs at the model's pace, so its rate is measured on a smaller log of its own.
"""

import argparse
import http.client
import json
import statistics
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path

from run import AIRLOCK, machine, publish, start, stop_all

BEGIN, END = "<!-- audit:begin (written by bench/audit.py) -->", "<!-- audit:end -->"
PORT = 18090

# (what, query parameters): each a different path through the index.
QUERIES = [
    ("newest 50, no filter", {}),
    ("rare word (1 in 1,000 records)", {"q": "zebracorn"}),
    ("common word (1 in 20) in one tenant", {"q": "quarterly", "tenant": "ten_seed3"}),
    ("two words and a field", {"q": "quarterly zebracorn model:code"}),
    ("filters only: tenant, model, decision", {"tenant": "ten_seed1", "model": "chat-large", "decision": "deny"}),
    ("one day's range", {"since": "3d", "until": "2d"}),
    ("status range 500-599", {"q": "status:[500 TO 599]"}),
    ("top 50 by cost", {"sort": "cost"}),
    ("page 21 (offset 1,000)", {"offset": "1000"}),
]


def airlock(*args):
    out = subprocess.run([str(AIRLOCK), *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"airlock {' '.join(args)}: {out.stderr}")
    return out.stdout


def instance(root, name, find_names=True):
    d = Path(root) / name
    airlock("init", "--dir", str(d), "--upstream-url", "http://127.0.0.1:9/v1",
            "--model", "m", "--upstream-model", "x")
    config = d / "airlock.yaml"
    text = config.read_text().replace("listen: 127.0.0.1:8080", f"listen: 127.0.0.1:{PORT}")
    if not find_names:
        text += "audit:\n  search:\n    find_names: false\n"
    config.write_text(text)
    return d, str(config)


def reindex_rate(config, records):
    """Records per second of `airlock audit reindex` over `records` records."""
    began = time.perf_counter()
    airlock("audit", "reindex", "--config", config)
    seconds = time.perf_counter() - began
    return records / seconds, seconds


def size(path):
    p = Path(path)
    return p.stat().st_size if p.is_file() else sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def seed(config, records, days, fsync=True):
    args = ["audit", "seed", "--config", config, "--records", str(records), "--days", str(days), "--json"]
    if not fsync:
        args.append("--no-fsync")
    return json.loads(airlock(*args))


def time_queries(token, repeat):
    conn = http.client.HTTPConnection("127.0.0.1", PORT)
    results = []
    for what, params in QUERIES:
        params = {"limit": "50", **params}
        path = "/admin/audit/search?" + urllib.parse.urlencode(params)
        samples, total = [], None
        for i in range(repeat + 3):
            began = time.perf_counter()
            conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
            reply = conn.getresponse()
            body = reply.read()
            elapsed = (time.perf_counter() - began) * 1000
            if reply.status != 200:
                raise RuntimeError(f"{path}: {reply.status} {body[:200]}")
            total = json.loads(body)["total"]
            if i >= 3:  # warm-up first
                samples.append(elapsed)
        samples.sort()
        p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
        results.append((what, total, statistics.median(samples), p99))
    return results


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=50, help="timed runs per query")
    ap.add_argument("--ner-records", type=int, default=2000,
                    help="records of the rebuild timed with the NER model finding names")
    ap.add_argument("--no-write", action="store_true")
    opts = ap.parse_args()
    procs = []
    with tempfile.TemporaryDirectory(prefix="airlock-bench-audit-") as root:
        try:
            small = min(opts.records, 200_000)
            nosync_dir, nosync_config = instance(root, "nosync")
            nosync = seed(nosync_config, small, opts.days, fsync=False)
            print(f"append without fsync: {nosync['per_second']:.0f} records/s", flush=True)
            named_dir, named_config = instance(root, "names")
            seed(named_config, opts.ner_records, opts.days, fsync=False)
            ner_rate, _ = reindex_rate(named_config, opts.ner_records)
            print(f"reindex with the NER model: {ner_rate:.0f} records/s", flush=True)
            d, config = instance(root, "main", find_names=False)
            synced = seed(config, opts.records, opts.days)
            print(f"append with fsync per batch: {synced['per_second']:.0f} records/s", flush=True)
            index_rate, index_seconds = reindex_rate(config, opts.records)
            print(f"reindex: {index_rate:.0f} records/s", flush=True)
            log_bytes = size(d / "audit.db") + size(d / "audit.db-wal")
            index_bytes = size(d / "audit-index")
            token = json.loads(airlock("admin", "token", "create", "--config", config, "--name", "bench",
                                       "--role", "auditor", "--json"))["token"]
            procs.append(start([str(AIRLOCK), "serve", "--config", config], "listening"))
            queries = time_queries(token, opts.repeat)
        finally:
            stop_all(procs)
    lines = [
        f"Machine: {machine()}. {opts.records:,} records seeded over {opts.days} days "
        f"(ten tenants, 500 users, four models; a request of 20-60 and an answer of 30-100 "
        f"words each, sealed per user); release build.",
        "",
        "| measurement | value |",
        "|---|---|",
        f"| append, fsync per batch of 1,024 (durable) | {synced['per_second']:,.0f} records/s |",
        f"| append, no fsync ({small:,} records) | {nosync['per_second']:,.0f} records/s |",
        f"| index rebuild (`audit reindex`: read, unseal, take the recognizers' values out, index, commit; `find_names: false`) | {index_rate:,.0f} records/s ({index_seconds:.0f} s) |",
        f"| index rebuild with the NER model finding names too (the default; {opts.ner_records:,} records, one core) | {ner_rate:,.0f} records/s |",
        f"| log on disk (`audit.db`, payloads sealed) | {log_bytes / 2**20:,.0f} MiB |",
        f"| index on disk | {index_bytes / 2**20:,.0f} MiB ({index_bytes / opts.records:,.0f} bytes/record) |",
        "",
        f"Search through `GET /admin/audit/search` (limit 50, records read back from the log), "
        f"{opts.repeat} timed runs each after 3 warm-ups, from a keep-alive client:",
        "",
        "| query | matches | p50 ms | p99 ms |",
        "|---|---|---|---|",
    ]
    lines += [f"| {what} | {total:,} | {p50:.1f} | {p99:.1f} |" for what, total, p50, p99 in queries]
    publish("\n".join(lines), opts.no_write, BEGIN, END)


if __name__ == "__main__":
    main()
