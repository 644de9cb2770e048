"""Shared test helpers: tiny raw JSON files written the way a CODI extractor writes them."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest


def raw_dict(n=10, layers=(0, 1, 2), T=4, H=8, seed=0) -> dict:
    """A small raw JSON object: ids 100.., every third problem correct, random activations."""
    rng = np.random.default_rng(seed)
    samples = [
        {
            "id": 100 + i,
            "question": f'Problem {i}: "quoted" {{braces}} [brackets]',
            "ground_truth": i,
            "ground_truth_text": str(i),
            "prediction": i if i % 3 == 0 else -1,
            "prediction_text": str(i),
            "is_correct": i % 3 == 0,
            "thoughts": {
                f"layer_{layer}": rng.normal(size=(T, H)).astype(np.float32).astype(float).tolist()
                for layer in layers
            },
        }
        for i in range(n)
    ]
    metadata = {
        "model": "tiny-test-model",
        "n_samples": n,
        "layers": list(layers),
        "n_layers": len(layers),
        "n_tokens": T,
        "hidden_dim": H,
    }
    return {"metadata": metadata, "samples": samples}


def write_raw(path, obj, indent=2):
    with open(path, "w") as f:
        json.dump(obj, f, indent=indent)
    return path


@pytest.fixture
def raw_file(tmp_path):
    """A valid tiny raw JSON (10 problems, layers 0-2, 4 positions, 8 dims) and its object."""
    obj = raw_dict()
    return write_raw(tmp_path / "raw.json", obj), obj


class RunsCode:
    """A pickle that would run a shell command when loaded without weights_only."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


PAIRS = [(1, 2), (3, 4), (12, 6), (2, 2), (7, 1), (3, 3), (14, 4), (9, 1), (6, 2), (8, 3)]
PROBLEMS = [  # GSM8K-style, of different lengths (so batches need padding)
    {"question": f"Tom has {a} apples and buys {b} more ." + " He is happy ." * (i % 3) + " How many apples does he have ?",
     "answer": f"He has {a} + {b} = {a + b} apples .\n#### {a + b}"}
    for i, (a, b) in enumerate(PAIRS)
]


def write_tiny_codi(folder, n_problems: int = 10, seed: int = 0, architecture: str = "gpt2"):
    """A 2-layer, 16-dim CODI of random weights (codi_sae.codi.write_random_codi) and a JSONL file
    of ``n_problems`` problems (PROBLEMS, repeated): (checkpoint, base model, problems)."""
    from codi_sae.codi import write_random_codi

    words = sorted({w for p in PROBLEMS for w in p["question"].split()} | {str(i) for i in range(30)} | {"=", "+"})
    checkpoint, base = write_random_codi(folder, words, architecture=architecture, n_layer=2, n_embd=16, n_head=2,
                                         seed=seed)
    problems = folder / "problems.jsonl"
    problems.write_text("".join(json.dumps(PROBLEMS[i % len(PROBLEMS)]) + "\n" for i in range(n_problems)))
    return checkpoint, base, problems
