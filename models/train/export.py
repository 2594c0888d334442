"""Export a fine-tuned checkpoint (HF BertForTokenClassification directory written by
train.py) to the Airlock model contract:

  OUT/model.onnx      int8 (dynamic quantization), inputs input_ids/attention_mask int64
                      [batch, seq] (and shape_ids, for a model trained with word
                      shapes), output logits float32 [batch, seq, num_labels]
  OUT/tokenizer.json  HF fast tokenizer with the [CLS]/[SEP] post-processor,
                      no truncation/padding
  OUT/config.json     labels, max_tokens, stride, base, version

usage: python export.py --ckpt /work/ner-runs/l2 --out ../ner --max-tokens 128 --stride 32
"""
import argparse
import json
import os
import shutil
import tempfile

import torch

from common import LABELS, load_checkpoint, load_tokenizer, logits_of, shape_ids


class Wrapper(torch.nn.Module):
    """input_ids, attention_mask[, shape_ids] -> logits. Without word shapes,
    token_type_ids are zeros made inside the graph. With word_steps > 0 the graph also makes every word's sub-tokens agree: a
    continuation piece (a '##' WordPiece) gets logits whose argmax is I-X, where X is
    the class of its word's first piece (or O if that piece is O). It is done by
    carrying the first piece's logits forward over up to `word_steps` continuation
    pieces (longer words keep the model's own logits after that)."""

    def __init__(self, model, cont_ids=None, word_steps=0):
        super().__init__()
        self.model = model
        self.word_steps = word_steps
        if word_steps:
            self.register_buffer("is_cont", cont_ids)

    def forward(self, input_ids, attention_mask, shape_ids=None):
        logits = logits_of(self.model, input_ids, attention_mask, shape_ids)
        if not self.word_steps:
            return logits
        cont = self.is_cont[input_ids].unsqueeze(-1)             # [B,T,1] bool
        carried = logits
        for _ in range(self.word_steps):
            prev = torch.nn.functional.pad(carried, (0, 0, 1, 0))[:, :-1]
            carried = torch.where(cont, prev, logits)
        # per class: the better of B-X and I-X of the word's first piece
        o = carried[..., :1]
        cls = torch.maximum(carried[..., 1::2], carried[..., 2::2])      # [B,T,C]
        neg = torch.full_like(cls, -1e4)
        inner = torch.stack([neg, cls], dim=-1).flatten(-2)               # B-X=-1e4, I-X=cls
        forced = torch.cat([o, inner], dim=-1)
        return torch.where(cont, forced, logits)


def export(ckpt, out, max_tokens, stride, version, base="all-MiniLM-L6-v2", opset=17, word_steps=8):
    from onnxruntime.quantization import quantize_dynamic, QuantType

    torch.manual_seed(0)
    model = load_checkpoint(ckpt)
    os.makedirs(out, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="ner-export-")
    fp32 = os.path.join(tmp, "model.fp32.onnx")
    ids = torch.randint(1000, 2000, (2, 16), dtype=torch.long)
    mask = torch.ones_like(ids)
    tok = load_tokenizer()
    vocab = tok.get_vocab()
    cont = torch.zeros(max(vocab.values()) + 1, dtype=torch.bool)
    for t, i in vocab.items():
        if t.startswith("##"):
            cont[i] = True
    shapes = getattr(model.config, "word_shapes", False)
    inputs = (ids, mask, torch.randint(0, 4, ids.shape)) if shapes else (ids, mask)
    names = ["input_ids", "attention_mask"] + (["shape_ids"] if shapes else [])
    axes = {n: {0: "batch", 1: "seq"} for n in names + ["logits"]}
    with torch.no_grad():
        torch.onnx.export(Wrapper(model, cont, word_steps), inputs, fp32,
                          input_names=names, output_names=["logits"], dynamic_axes=axes,
                          opset_version=opset, do_constant_folding=True, dynamo=False)
    quantize_dynamic(fp32, os.path.join(out, "model.onnx"), weight_type=QuantType.QInt8)
    shutil.rmtree(tmp)

    tok.save(os.path.join(out, "tokenizer.json"))
    cfg = {"labels": LABELS, "max_tokens": max_tokens, "stride": stride,
           "base": base, "version": version}
    if shapes:
        cfg["word_shapes"] = True
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    check(out)


def check(out):
    """Compare int8 ONNX with nothing but sanity: shapes, names, finite values."""
    import numpy as np
    import onnxruntime as ort
    sess = ort.InferenceSession(os.path.join(out, "model.onnx"),
                                providers=["CPUExecutionProvider"])
    shapes = json.load(open(os.path.join(out, "config.json"))).get("word_shapes", False)
    names = ["input_ids", "attention_mask"] + (["shape_ids"] if shapes else [])
    assert [i.name for i in sess.get_inputs()] == names
    assert [o.name for o in sess.get_outputs()] == ["logits"]
    tok = load_tokenizer()
    text = "Dr. Anna Schmidt from Siemens AG lives at 12 Baker Street, London."
    enc = tok.encode(text)
    ids = np.array([enc.ids], dtype=np.int64)
    feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    if shapes:
        feed["shape_ids"] = np.array([shape_ids(text, enc.offsets, enc.word_ids)], dtype=np.int64)
    logits = sess.run(["logits"], feed)[0]
    assert logits.shape == (1, len(enc.ids), len(LABELS)), logits.shape
    assert np.isfinite(logits).all()
    print("export ok:", out, "size", os.path.getsize(os.path.join(out, "model.onnx")), "bytes")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--stride", type=int, default=32)
    ap.add_argument("--version", default="dev")
    ap.add_argument("--base", default="all-MiniLM-L6-v2")
    ap.add_argument("--word-steps", type=int, default=8,
                    help="make sub-tokens of a word agree over up to N pieces (0: off)")
    a = ap.parse_args()
    torch.set_num_threads(2)
    export(a.ckpt, a.out, a.max_tokens, a.stride, a.version, a.base, word_steps=a.word_steps)
