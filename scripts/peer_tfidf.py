#!/usr/bin/env python3
"""The clustering a user would write instead of perps-news: scikit-learn TF-IDF over title
and body (sublinear tf, English stop words), the sparse product X·Xᵀ kept where it is at
least 0.2, and its connected components as stories.

    scripts/peer_tfidf.py DUMP.jsonl ASSIGNMENTS.jsonl

Writes one {"id", "cluster"} line per article, like `perps-news run --assignments`. Needs
scikit-learn and scipy (scripts/peer_venv.sh makes a virtualenv with them); it is a yardstick
for benches/window.rs, not part of the product.
"""
import json
import sys

from scipy.sparse.csgraph import connected_components
from sklearn.feature_extraction.text import TfidfVectorizer


def main():
    dump, out = sys.argv[1], sys.argv[2]
    ids, texts = [], []
    with open(dump, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                ids.append(r["id"])
                texts.append(r.get("title", "") + " " + r.get("body", ""))
    x = TfidfVectorizer(sublinear_tf=True, stop_words="english").fit_transform(texts)
    sim = x @ x.T
    sim.data[sim.data < 0.2] = 0
    sim.eliminate_zeros()
    _, labels = connected_components(sim, directed=False)
    with open(out, "w", encoding="utf-8") as f:
        for i, c in zip(ids, labels):
            f.write(json.dumps({"id": i, "cluster": f"c{c}"}) + "\n")


if __name__ == "__main__":
    sys.exit(main())
