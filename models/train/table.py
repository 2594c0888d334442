"""Candidate table: for each NAME=DIR (an exported model directory) evaluate on the
held-out and hand-written sets and, unless --no-latency, measure single-core latency;
print one markdown row per candidate and dump everything to --out (JSON).

usage: python table.py L1=/work/ner-runs/exp/l1 L2=/work/ner-runs/exp/l2 --out /work/ner-runs/table.json
"""
import argparse
import json
import os

from evaluate import NerModel, score
from latency import measure

HERE = os.path.dirname(os.path.abspath(__file__))
SETS = {"heldout": os.path.join(HERE, "..", "eval", "heldout.jsonl"),
        "handwritten": os.path.join(HERE, "..", "eval", "handwritten.jsonl")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+")
    ap.add_argument("--out", default=None)
    ap.add_argument("--no-latency", action="store_true")
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--blocks", type=int, default=2)
    a = ap.parse_args()
    allres = {}
    if a.out and os.path.exists(a.out):
        allres = json.load(open(a.out))
    for spec in a.models:
        name, d = spec.split("=", 1)
        m = NerModel(d)
        res = {"dir": d, "size_bytes": os.path.getsize(os.path.join(d, "model.onnx"))}
        classes = [l[2:] for l in m.labels if l.startswith("B-")]
        for s, path in SETS.items():
            rows = [json.loads(l) for l in open(path, encoding="utf-8") if l.strip()]
            res[s] = score(rows, m.predict_many([r["text"] for r in rows]), classes)
        if not a.no_latency:
            res["latency"] = measure(d, runs=a.runs, blocks=a.blocks)
        elif name in allres and "latency" in allres[name]:
            res["latency"] = allres[name]["latency"]
        allres[name] = res
        if a.out:
            json.dump(allres, open(a.out, "w"), indent=1)
    print("| name | size int8 | heldout F1 P/L/O (exact) | heldout F1 P/L/O (overlap) | handwritten F1 P/L/O (exact) | handwritten F1 P/L/O (overlap) | p50/p99 ms 64 | 256 | 512 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in allres.items():
        f = lambda s, m: "/".join(f"{r[s][m][c]['f1']:.3f}" for c in ("PERSON", "LOCATION", "ORGANIZATION"))
        lat = r.get("latency", {})
        lt = lambda n: (f"{lat[str(n)]['p50']:.1f}/{lat[str(n)]['p99']:.1f} (cpu {lat[str(n)]['cpu_p50']:.1f}/{lat[str(n)]['cpu_p99']:.1f})"
                        if str(n) in lat else (f"{lat[n]['p50']:.1f}/{lat[n]['p99']:.1f} (cpu {lat[n]['cpu_p50']:.1f}/{lat[n]['cpu_p99']:.1f})" if n in lat else "-"))
        print(f"| {name} | {r['size_bytes'] / 1e6:.1f} MB | {f('heldout', 'exact')} | {f('heldout', 'overlap')} | "
              f"{f('handwritten', 'exact')} | {f('handwritten', 'overlap')} | {lt(64)} | {lt(256)} | {lt(512)} |")


if __name__ == "__main__":
    main()
