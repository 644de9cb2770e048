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
