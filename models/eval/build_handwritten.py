"""Turn handwritten.src.txt (messages separated by lines '---', entities marked by hand
as ⟦text|LABEL⟧) into handwritten.jsonl with character offsets, and check them.

usage: python build_handwritten.py   (in models/eval/)
"""
import json
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "train"))
from common import ALL_CLASSES  # noqa: E402

here = os.path.dirname(os.path.abspath(__file__))
src = open(os.path.join(here, "handwritten.src.txt"), encoding="utf-8").read()
rows = []
for block in src.split("\n---\n"):
    block = block.strip("\n")
    text, ents, pos = "", [], 0
    for m in re.finditer(r"⟦([^⟧|]+)\|([A-Z_]+)⟧", block):
        text += block[pos:m.start()]
        assert m.group(2) in ALL_CLASSES, m.group(2)
        ents.append({"start": len(text), "end": len(text) + len(m.group(1)), "label": m.group(2)})
        text += m.group(1)
        pos = m.end()
    text += block[pos:]
    assert "⟦" not in text and "⟧" not in text, text
    for e, m in zip(ents, re.finditer(r"⟦([^⟧|]+)\|([A-Z_]+)⟧", block)):
        assert text[e["start"]:e["end"]] == m.group(1)
    rows.append({"text": text, "entities": ents})
with open(os.path.join(here, "handwritten.jsonl"), "w", encoding="utf-8") as f:
    for r in rows:
        f.write(json.dumps(r, ensure_ascii=False) + "\n")
n_ent = sum(len(r["entities"]) for r in rows)
neg = sum(1 for r in rows if not r["entities"])
from collections import Counter
print(len(rows), "texts,", n_ent, "entities,", neg, "with none;", dict(Counter(e["label"] for r in rows for e in r["entities"])))
