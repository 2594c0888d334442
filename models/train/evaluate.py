"""Entity-level evaluation of an exported model (the int8 model.onnx run by
onnxruntime, exactly as Airlock runs it) on a JSONL file:

  {"text": "...", "entities": [{"start": 0, "end": 5, "label": "PERSON"}]}

Inference: the text is tokenised without special tokens, cut into windows of
max_tokens-2 tokens overlapping by `stride` tokens, each wrapped in [CLS] ... [SEP].
A token seen by two windows takes the logits of the window in which it lies farther from
the edge (the first half of an overlap from the earlier window, the second half from the
later one). Argmax per token, then BIO decoding: a span starts at B-X, or at I-X after
O or after another class, and extends over the following I-X; its characters run from
the first token's start offset to the last token's end offset.

Scoring, per class and micro-averaged over the classes the model predicts
(PERSON, LOCATION, ORGANIZATION):
  exact   - same label, same start and end
  overlap - same label, character ranges intersect (one-to-one, greedy)
Gold entities of other classes (EMAIL_ADDRESS, ...) are for the full Airlock pipeline
(`airlock pii eval`); this script ignores them.

usage: python evaluate.py ../ner ../eval/heldout.jsonl [--json] [--errors N]
"""
import argparse
import json
import os
import sys
from collections import defaultdict

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from common import shape_ids


class NerModel:
    def __init__(self, model_dir, threads=2):
        cfg = json.load(open(os.path.join(model_dir, "config.json")))
        self.labels = cfg["labels"]
        self.max_tokens = cfg["max_tokens"]
        self.stride = cfg["stride"]
        self.tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        self.sess = ort.InferenceSession(os.path.join(model_dir, "model.onnx"), so,
                                         providers=["CPUExecutionProvider"])
        self.word_shapes = cfg.get("word_shapes", False)
        self.cls = self.tok.token_to_id("[CLS]")
        self.sep = self.tok.token_to_id("[SEP]")

    def windows(self, n):
        body = self.max_tokens - 2
        out, s = [], 0
        while True:
            out.append((s, min(n, s + body)))
            if s + body >= n:
                return out
            s += body - self.stride

    def predict_many(self, texts, batch=32):
        encs = [self.tok.encode(t, add_special_tokens=False) for t in texts]
        shapes = [shape_ids(t, e.offsets, e.word_ids) for t, e in zip(texts, encs)]
        jobs = []  # (text index, start, end)
        for i, e in enumerate(encs):
            for s, t in self.windows(len(e.ids)):
                jobs.append((i, s, t))
        logits = {}
        order = sorted(range(len(jobs)), key=lambda j: jobs[j][2] - jobs[j][1])
        for k in range(0, len(order), batch):
            b = [jobs[j] for j in order[k:k + batch]]
            L = max(t - s for _, s, t in b) + 2
            ids = np.zeros((len(b), L), dtype=np.int64)
            mask = np.zeros((len(b), L), dtype=np.int64)
            shp = np.zeros((len(b), L), dtype=np.int64)
            for r, (i, s, t) in enumerate(b):
                seq = [self.cls] + encs[i].ids[s:t] + [self.sep]
                ids[r, :len(seq)] = seq
                mask[r, :len(seq)] = 1
                shp[r, 1:1 + t - s] = shapes[i][s:t]
            feed = {"input_ids": ids, "attention_mask": mask}
            if self.word_shapes:
                feed["shape_ids"] = shp
            out = self.sess.run(["logits"], feed)[0]
            for r, (i, s, t) in enumerate(b):
                logits[(i, s)] = out[r, 1:1 + t - s]
        results = []
        for i, e in enumerate(encs):
            n = len(e.ids)
            full = np.zeros((n, len(self.labels)), dtype=np.float32)
            wins = self.windows(n)
            for w, (s, t) in enumerate(wins):
                lo = s if w == 0 else s + self.stride // 2
                hi = t if w == len(wins) - 1 else t - (self.stride - self.stride // 2)
                full[lo:hi] = logits[(i, s)][lo - s:hi - s]
            results.append(self.decode(texts[i], full, e.offsets, e.word_ids))
        return results

    def decode(self, text, logits, offsets, word_ids):
        """As the runtime does (src/pii/ner/decode.rs): a word takes its first piece's
        log-probabilities, the most probable valid BIO sequence over the words is chosen
        (Viterbi: I-X only after B-X or I-X), an entity's score is its words' mean
        probability, punctuation at its edges is left out, and entities scoring under
        MIN_SCORE are dropped."""
        firsts, spans_ = [], []
        prev = object()
        for k, wid in enumerate(word_ids):
            if wid is not None and wid == prev:
                spans_[-1][1] = max(spans_[-1][1], offsets[k][1])
                continue
            prev = wid
            firsts.append(k)
            spans_.append([offsets[k][0], offsets[k][1]])
        if not firsts:
            return []
        x = logits[firsts]
        lp = x - x.max(-1, keepdims=True)
        lp = lp - np.log(np.exp(lp).sum(-1, keepdims=True))
        path = viterbi(self.labels, lp)
        out, cur = [], None
        for (s, e), tg, row in zip(spans_, path, lp):
            lab = self.labels[tg]
            if lab.startswith("I-") and cur is not None:
                cur["end"] = e
                cur["probs"].append(np.exp(row[tg]))
            elif lab.startswith("B-"):
                cur = {"start": s, "end": e, "label": lab[2:], "probs": [np.exp(row[tg])]}
                out.append(cur)
            else:
                cur = None
        kept = []
        for d in out:
            start, end = trim_to_content(text, d["start"], d["end"])
            if np.mean(d["probs"]) >= MIN_SCORE and start < end:
                kept.append({"start": start, "end": end, "label": d["label"]})
        return kept


def trim_to_content(text, start, end):
    """The span without punctuation at its edges, keeping the dot after an abbreviation
    of one or two letters (S.A., Jr.), as src/pii/ner/decode.rs does."""
    while start < end and not text[start].isalnum():
        start += 1
    length = end - start
    while length and not text[start + length - 1].isalnum():
        length -= 1
    last_word = 0
    while last_word < length and text[start + length - 1 - last_word].isalnum():
        last_word += 1
    if start + length < end and text[start + length] == "." and 1 <= last_word <= 2:
        length += 1
    return start, start + length


MIN_SCORE = 0.5


def viterbi(labels, lp):
    """The most probable label sequence in which I-X follows only B-X or I-X."""
    k = len(labels)
    ok = np.array([[not lb.startswith("I-") or (la != "O" and la[2:] == lb[2:])
                    for lb in labels] for la in labels])
    trans = np.where(ok, 0.0, -np.inf)
    score = np.where([not l.startswith("I-") for l in labels], lp[0], -np.inf)
    back = np.zeros((len(lp), k), dtype=int)
    for t in range(1, len(lp)):
        cand = score[:, None] + trans
        back[t] = cand.argmax(0)
        score = cand.max(0) + lp[t]
    path = [int(score.argmax())]
    for t in range(len(lp) - 1, 0, -1):
        path.append(int(back[t][path[-1]]))
    return path[::-1]


def match(gold, pred, mode):
    used, tp = set(), 0
    for p in pred:
        for gi, g in enumerate(gold):
            if gi in used or g["label"] != p["label"]:
                continue
            ok = (g["start"] == p["start"] and g["end"] == p["end"]) if mode == "exact" \
                else (p["start"] < g["end"] and g["start"] < p["end"])
            if ok:
                used.add(gi)
                tp += 1
                break
    return tp


def prf(tp, np_, ng):
    p = tp / np_ if np_ else 0.0
    r = tp / ng if ng else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f, 4),
            "tp": tp, "pred": np_, "gold": ng}


def score(rows, preds, classes):
    res = {}
    for mode in ("exact", "overlap"):
        per = {}
        T = P = G = 0
        for c in classes:
            tp = npred = ngold = 0
            for r, pr in zip(rows, preds):
                g = [e for e in r["entities"] if e["label"] == c]
                p = [e for e in pr if e["label"] == c]
                tp += match(g, p, mode)
                npred += len(p)
                ngold += len(g)
            per[c] = prf(tp, npred, ngold)
            T, P, G = T + tp, P + npred, G + ngold
        per["micro"] = prf(T, P, G)
        res[mode] = per
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("data")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--errors", type=int, default=0, help="print N texts with mistakes")
    a = ap.parse_args()
    m = NerModel(a.model_dir)
    rows = [json.loads(l) for l in open(a.data, encoding="utf-8") if l.strip()]
    preds = m.predict_many([r["text"] for r in rows])
    classes = [l[2:] for l in m.labels if l.startswith("B-")]
    res = score(rows, preds, classes)
    if a.json:
        print(json.dumps({"model": a.model_dir, "data": a.data, "texts": len(rows), **res}))
    else:
        print(f"{a.model_dir} on {a.data} ({len(rows)} texts)")
        for mode in ("exact", "overlap"):
            print(f"  [{mode}]")
            for c, v in res[mode].items():
                print(f"    {c:13s} P {v['precision']:.3f}  R {v['recall']:.3f}  F1 {v['f1']:.3f}"
                      f"  (tp {v['tp']}, pred {v['pred']}, gold {v['gold']})")
    shown = 0
    for r, p in zip(rows, preds):
        if shown >= a.errors:
            break
        g = {(e["start"], e["end"], e["label"]) for e in r["entities"] if e["label"] in classes}
        q = {(e["start"], e["end"], e["label"]) for e in p}
        if g != q:
            shown += 1
            t = r["text"]
            print("----", r.get("template", ""), file=sys.stderr)
            print(t, file=sys.stderr)
            print("  missed:", [(t[s:e], l) for s, e, l in sorted(g - q)], file=sys.stderr)
            print("  extra: ", [(t[s:e], l) for s, e, l in sorted(q - g)], file=sys.stderr)


if __name__ == "__main__":
    main()
