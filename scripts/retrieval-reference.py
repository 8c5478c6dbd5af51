#!/usr/bin/env python3
"""Reference values of the retrieval metrics (lib/eval/retrieval.ts), written once to
test/fixtures/eval/retrieval/reference.json and committed; the tests read that file and need no Python.

Image->text Recall@K and the k-label classification accuracy come from scikit-learn's
top_k_accuracy_score; text->image with several relevant images per text, and every rank, from a separate
NumPy computation (position of the first relevant candidate in a descending argsort).

    apt-get install python3-sklearn && python3 scripts/retrieval-reference.py
"""
import json
import os
import sys

import numpy as np
import sklearn
from sklearn.metrics import top_k_accuracy_score

KS = [1, 5, 10]
OUT = os.path.join(os.path.dirname(__file__), '..', 'test', 'fixtures', 'eval', 'retrieval', 'reference.json')


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def first_relevant_ranks(sim, relevant):
    """1-based position of the first relevant candidate in each row's descending order (no ties here)."""
    ranks = []
    for q, rel in enumerate(relevant):
        order = np.argsort(-sim[q], kind='stable')
        pos = [int(np.where(order == c)[0][0]) for c in rel]
        ranks.append(min(pos) + 1)
    return np.array(ranks)


def summary(ranks, ks):
    return {
        'recall': {str(k): float(np.mean(ranks <= k)) for k in ks},
        'meanRank': float(np.mean(ranks)),
        'medianRank': float(np.median(ranks)),
        'ranks': [int(r) for r in ranks],
    }


def case(rng, n_images, n_texts, dim, shared):
    img = rng.standard_normal((n_images, dim)).astype(np.float32)
    txt = rng.standard_normal((n_texts, dim)).astype(np.float32)
    if shared:
        # Every text has at least one image; the rest of the images pick a text at random.
        text_of = np.concatenate([np.arange(n_texts), rng.integers(0, n_texts, n_images - n_texts)])
        rng.shuffle(text_of)
    else:
        text_of = rng.permutation(n_texts)
    # Pull each image towards its text so that the ranks are spread, not all random.
    img = (img + 0.3 * txt[text_of]).astype(np.float32)
    sim = unit(img.astype(np.float64)) @ unit(txt.astype(np.float64)).T
    labels = np.arange(n_texts)
    i2t_ranks = first_relevant_ranks(sim, [[t] for t in text_of])
    i2t = summary(i2t_ranks, KS)
    # scikit-learn's top-k accuracy is the image->text Recall@K (one relevant text per image).
    i2t['sklearn'] = {str(k): float(top_k_accuracy_score(text_of, sim, k=k, labels=labels)) for k in KS}
    images_of = [list(np.where(text_of == t)[0]) for t in range(n_texts)]
    t2i_ranks = first_relevant_ranks(sim.T, images_of)
    t2i = summary(t2i_ranks, KS)
    if not shared:
        image_of_text = np.argsort(text_of)
        t2i['sklearn'] = {str(k): float(top_k_accuracy_score(image_of_text, sim.T, k=k, labels=np.arange(n_images))) for k in KS}
    return {
        'dim': dim,
        'imageEmbeddings': img.astype(float).ravel().tolist(),
        'textEmbeddings': txt.astype(float).ravel().tolist(),
        'nImages': n_images,
        'nTexts': n_texts,
        'textOf': [int(t) for t in text_of],
        'imageToText': i2t,
        'textToImage': t2i,
    }


def kx_case(rng, n, k, dim):
    cls = rng.integers(0, k, n)
    protos = rng.standard_normal((k, dim)).astype(np.float32)
    img = (rng.standard_normal((n, dim)) + 0.3 * protos[cls]).astype(np.float32)
    sim = unit(img.astype(np.float64)) @ unit(protos.astype(np.float64)).T
    return {
        'dim': dim,
        'imageEmbeddings': img.astype(float).ravel().tolist(),
        'labelEmbeddings': protos.astype(float).ravel().tolist(),
        'classOf': [int(c) for c in cls],
        'accuracy': float(top_k_accuracy_score(cls, sim, k=1, labels=np.arange(k))),
        'correctPerClass': [int(np.sum((np.argmax(sim, axis=1) == cls) & (cls == c))) for c in range(k)],
    }


def main():
    rng = np.random.default_rng(20261206)
    ref = {
        'generator': f'scripts/retrieval-reference.py (numpy {np.__version__}, scikit-learn {sklearn.__version__}, python {sys.version.split()[0]})',
        'ks': KS,
        'shared': case(rng, 60, 35, 16, True),
        'oneToOne': case(rng, 30, 30, 12, False),
        'kx': kx_case(rng, 150, 5, 10),
    }
    with open(OUT, 'w') as f:
        json.dump(ref, f, indent=1)
        f.write('\n')
    print('wrote', os.path.relpath(OUT))


if __name__ == '__main__':
    main()
