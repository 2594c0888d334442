"""Policy evaluation benchmark (issue 5): latency of evaluating a policy on a typical
request, in process, with `airlock policy bench`.

    python3 bench/policy.py [--iterations 200000] [--no-write]

Runs the synthetic 200-rule policy (identity and model conditions, token ranges, a
500-term keyword list, regexes, time windows, headers, secret and injection scans, CEL)
and each pack in policies/ against a ~1.8 KB chat prompt. Writes its block of
docs/benchmarks.md.
"""

import argparse
import json
import subprocess
from pathlib import Path

from run import AIRLOCK, ROOT, machine, publish

BEGIN, END = "<!-- policy:begin (written by bench/policy.py) -->", "<!-- policy:end -->"


def bench(*args):
    out = subprocess.run([str(AIRLOCK), "policy", "bench", *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=200_000)
    ap.add_argument("--no-write", action="store_true")
    opts = ap.parse_args()
    runs = [("synthetic, 200 rules", bench("--rules", "200", "--iterations", str(opts.iterations)))]
    runs.append(("synthetic, 1,000 rules", bench("--rules", "1000", "--iterations", str(opts.iterations // 4))))
    for pack in sorted((ROOT / "policies").iterdir()):
        if (pack / "policy.yaml").exists():
            runs.append((f"pack `{pack.name}`", bench(str(pack / "policy.yaml"), "--iterations", str(opts.iterations))))
    lines = [
        f"Machine: {machine()}; release build, one thread, in process (`airlock policy bench`), "
        f"a {runs[0][1]['prompt_bytes']:,}-byte chat prompt with a user and three headers.",
        "",
        "| policy | rules | matched | p50 µs | p99 µs | p99.9 µs |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {name} | {r['rules']} | {r['matched_rules']} | {r['p50_us']:.1f} | {r['p99_us']:.1f} | {r['p999_us']:.1f} |"
        for name, r in runs
    ]
    publish("\n".join(lines), opts.no_write, BEGIN, END)


if __name__ == "__main__":
    main()
