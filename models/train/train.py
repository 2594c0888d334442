"""Fine-tune a token classifier (BIO over PERSON/LOCATION/ORGANIZATION) on generate.py
output.

Labelling: EVERY sub-token inside an entity gets a label (B- on the first token of the
span, I- on the following ones); tokens outside are O; [CLS]/[SEP]/[PAD] are ignored
(-100). Classes other than the three NER classes are O. So decoding is plain token-level
BIO: a span starts at B- (or at an I- after O / another class) and extends over
following I- of the same class; its characters run from the first token's start offset
to the last token's end offset.

Student variants:
  --layers k                keep the first k transformer layers of all-MiniLM-L6-v2
  --layers k --inter I      ... and prune each feed-forward block to its I strongest
                            neurons (structured magnitude pruning, 1536 -> I)
  --hidden H --inter I --heads A --layers k --teacher CKPT
                            a narrower encoder: word/position embeddings initialised by
                            projecting the teacher's onto their top-H principal
                            directions, layers random; trained on the labels plus the
                            teacher's soft logits (KL, temperature 2).

usage: python train.py --data /work/ner-runs/data/train.jsonl --layers 2 --out /work/ner-runs/l2
"""
import argparse
import json
import math
import os
import random
import time

import numpy as np
import torch

from common import (LABELS, LABEL2ID, NER_CLASSES, NUM_SHAPES, base_model_dir,
                    load_checkpoint, load_tokenizer, logits_of, make_conv_head, shape_ids)


def encode(rows, tok, max_len, stride):
    """Tokenise, label every sub-token, cut long texts into windows of max_len (incl.
    [CLS]/[SEP]) overlapping by `stride` tokens."""
    out = []
    body = max_len - 2
    for r in rows:
        text = r["text"]
        enc = tok.encode(text, add_special_tokens=False)
        ids, offs = enc.ids, enc.offsets
        shapes = shape_ids(text, offs, enc.word_ids)
        labels = [LABEL2ID["O"]] * len(ids)
        for e in r["entities"]:
            if e["label"] not in NER_CLASSES:
                continue
            first = True
            for i, (s, t) in enumerate(offs):
                if s >= e["start"] and t <= e["end"] and t > s:
                    labels[i] = LABEL2ID[("B-" if first else "I-") + e["label"]]
                    first = False
        start = 0
        while True:
            chunk_ids = ids[start:start + body]
            chunk_lab = labels[start:start + body]
            # a window that starts inside an entity: the first token becomes B-
            if chunk_lab and LABELS[chunk_lab[0]].startswith("I-"):
                chunk_lab = [LABEL2ID["B-" + LABELS[chunk_lab[0]][2:]]] + chunk_lab[1:]
            out.append(([101] + chunk_ids + [102], [-100] + chunk_lab + [-100],
                        [0] + shapes[start:start + body] + [0]))
            if start + body >= len(ids):
                break
            start += body - stride
    return out


def batches(data, bs, rng):
    """Length-bucketed shuffled batches (less padding = faster on CPU)."""
    idx = sorted(range(len(data)), key=lambda i: len(data[i][0]) + rng.random() * 8)
    bl = [idx[i:i + bs] for i in range(0, len(idx), bs)]
    rng.shuffle(bl)
    for b in bl:
        L = max(len(data[i][0]) for i in b)
        ids = torch.zeros((len(b), L), dtype=torch.long)
        lab = torch.full((len(b), L), -100, dtype=torch.long)
        mask = torch.zeros((len(b), L), dtype=torch.long)
        shp = torch.zeros((len(b), L), dtype=torch.long)
        for j, i in enumerate(b):
            x, y, z = data[i]
            ids[j, :len(x)] = torch.tensor(x)
            lab[j, :len(y)] = torch.tensor(y)
            shp[j, :len(z)] = torch.tensor(z)
            mask[j, :len(x)] = 1
        yield ids, mask, lab, shp


def prune_ffn(m, keep):
    """Structured pruning of each layer's feed-forward block to `keep` neurons: keep the
    neurons with the largest product of input- and output-weight norms."""
    for layer in m.bert.encoder.layer:
        fc1, fc2 = layer.intermediate.dense, layer.output.dense
        score = fc1.weight.norm(dim=1) * fc2.weight.norm(dim=0)
        idx = torch.sort(torch.topk(score, keep).indices).values
        n1 = torch.nn.Linear(fc1.in_features, keep)
        n2 = torch.nn.Linear(keep, fc2.out_features)
        with torch.no_grad():
            n1.weight.copy_(fc1.weight[idx])
            n1.bias.copy_(fc1.bias[idx])
            n2.weight.copy_(fc2.weight[:, idx])
            n2.bias.copy_(fc2.bias)
        layer.intermediate.dense, layer.output.dense = n1, n2
    m.config.intermediate_size = keep


def build_model(a):
    from transformers import BertConfig, BertForTokenClassification
    if a.hidden is None:
        if a.init:   # continue from a train.py checkpoint (may be truncated/pruned further)
            m = load_checkpoint(a.init)
        else:
            m = BertForTokenClassification.from_pretrained(
                base_model_dir(), num_labels=len(LABELS),
                id2label=dict(enumerate(LABELS)), label2id=LABEL2ID, attn_implementation="eager")
        if a.layers is not None and a.layers < m.config.num_hidden_layers:
            m.bert.encoder.layer = m.bert.encoder.layer[:a.layers]
            m.config.num_hidden_layers = a.layers
        if a.inter is not None and a.inter < m.config.intermediate_size:
            prune_ffn(m, a.inter)
        add_head(m, a)
        if a.word_shapes and not getattr(m.config, "word_shapes", False):
            add_word_shapes(m)
        return m
    # narrow student, embeddings projected from the teacher / base model
    cfg = BertConfig.from_pretrained(base_model_dir())
    cfg.hidden_size, cfg.intermediate_size = a.hidden, a.inter
    cfg.num_attention_heads, cfg.num_hidden_layers = a.heads, a.layers
    cfg.num_labels, cfg.id2label, cfg.label2id = len(LABELS), dict(enumerate(LABELS)), LABEL2ID
    cfg._attn_implementation = "eager"
    m = BertForTokenClassification(cfg)
    src = load_checkpoint(a.teacher) if a.teacher else \
        BertForTokenClassification.from_pretrained(base_model_dir(), num_labels=len(LABELS))
    W = src.bert.embeddings.word_embeddings.weight.data
    mu = W.mean(0, keepdim=True)
    _, _, V = torch.linalg.svd(W - mu, full_matrices=False)
    P = V[:a.hidden].T  # 384 x H
    e = m.bert.embeddings
    with torch.no_grad():
        e.word_embeddings.weight.copy_((W - mu) @ P)
        e.position_embeddings.weight.copy_(src.bert.embeddings.position_embeddings.weight @ P)
        e.token_type_embeddings.weight.copy_(src.bert.embeddings.token_type_embeddings.weight @ P)
    add_head(m, a)
    return m


def add_word_shapes(m):
    """Token-type embeddings become word-shape embeddings: NUM_SHAPES rows, each starting
    as the pretrained type-0 row, so the model starts out as it was."""
    old = m.bert.embeddings.token_type_embeddings
    new = torch.nn.Embedding(NUM_SHAPES, old.embedding_dim)
    with torch.no_grad():
        new.weight.copy_(old.weight[0].expand(NUM_SHAPES, -1))
    m.bert.embeddings.token_type_embeddings = new
    m.config.type_vocab_size = NUM_SHAPES
    m.config.word_shapes = True


def add_head(m, a):
    if a.conv_head and not getattr(m.config, "conv_head", None):
        w, k = a.conv_head
        old = m.classifier
        m.config.conv_head = [w, k]
        m.classifier = make_conv_head(m.config.hidden_size, len(LABELS), w, k)
        with torch.no_grad():   # keep what a linear head already learned
            m.classifier.lin.weight.copy_(old.weight)
            m.classifier.lin.bias.copy_(old.bias)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--init", default=None, help="checkpoint to start from (default: base model)")
    ap.add_argument("--layers", type=int, default=None)
    ap.add_argument("--hidden", type=int, default=None)
    ap.add_argument("--inter", type=int, default=None)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--teacher", default=None)
    ap.add_argument("--alpha", type=float, default=0.5, help="weight of the distillation loss")
    ap.add_argument("--max-len", type=int, default=128)
    ap.add_argument("--stride", type=int, default=32)
    ap.add_argument("--bs", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--steps", type=int, default=None, help="exact number of steps (overrides --epochs)")
    ap.add_argument("--max-minutes", type=float, default=18.0)
    ap.add_argument("--limit", type=int, default=None, help="use only the first N texts")
    ap.add_argument("--conv-head", type=int, nargs=2, metavar=("WIDTH", "KERNEL"), default=None,
                    help="convolutional classification head instead of the linear one")
    ap.add_argument("--freeze-emb", action="store_true",
                    help="keep the pretrained word embeddings fixed (helps unseen names)")
    ap.add_argument("--word-shapes", action="store_true",
                    help="feed word shapes (capitalisation) as token types")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    random.seed(a.seed)
    np.random.seed(a.seed)
    torch.manual_seed(a.seed)
    rng = random.Random(a.seed)

    rows = [json.loads(l) for l in open(a.data, encoding="utf-8")]
    if a.limit:
        rows = rows[:a.limit]
    tok = load_tokenizer()
    data = encode(rows, tok, a.max_len, a.stride)
    print(f"{len(rows)} texts -> {len(data)} windows", flush=True)

    model = build_model(a)
    if a.freeze_emb:
        model.bert.embeddings.word_embeddings.weight.requires_grad_(False)
    model.train()
    teacher = None
    if a.teacher and a.hidden is not None:
        from transformers import BertForTokenClassification
        teacher = load_checkpoint(a.teacher)
    nparams = sum(p.numel() for p in model.parameters())
    print(f"model: layers={model.config.num_hidden_layers} hidden={model.config.hidden_size} params={nparams}", flush=True)

    steps_per_epoch = math.ceil(len(data) / a.bs)
    total = a.steps or max(1, int(steps_per_epoch * a.epochs))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=a.lr, weight_decay=0.01)
    warm = max(1, total // 20)
    t0 = time.time()

    def progress(s):
        # linear warm-up then linear decay to 0 at the end of the run; the run ends at
        # `total` steps or after --max-minutes, whichever comes first, so the decay
        # follows whichever is nearer (on a busy machine the time limit decides)
        return max(s / total, (time.time() - t0) / 60 / a.max_minutes)

    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * max(0.0, 1.0 - progress(s)))
    step = 0
    done = False
    while not done:
        for ids, mask, lab, shp in batches(data, a.bs, rng):
            logits = logits_of(model, ids, mask, shp)
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), lab.reshape(-1),
                                                     ignore_index=-100)
            if teacher is not None:
                with torch.no_grad():
                    tl = logits_of(teacher, ids, mask, shp)
                T = 2.0
                keep = (lab != -100).unsqueeze(-1)
                kl = torch.nn.functional.kl_div(
                    torch.log_softmax(logits / T, -1), torch.softmax(tl / T, -1), reduction="none")
                kd = (kl * keep).sum() / keep.sum().clamp(min=1) * T * T
                loss = (1 - a.alpha) * loss + a.alpha * kd
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
            step += 1
            if step % 50 == 0:
                el = (time.time() - t0) / 60
                print(f"step {step}/{total} loss {loss.item():.4f} {el:.1f} min", flush=True)
            if step >= total or (time.time() - t0) / 60 > a.max_minutes:
                done = True
                break
    model.eval()
    model.save_pretrained(a.out)
    with open(os.path.join(a.out, "train_args.json"), "w") as f:
        json.dump({**vars(a), "steps": step, "minutes": (time.time() - t0) / 60}, f, indent=2)
    print(f"saved {a.out} after {step} steps, {(time.time() - t0) / 60:.1f} min", flush=True)


if __name__ == "__main__":
    main()
