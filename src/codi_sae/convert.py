"""Raw JSON to the seed's train/validation PT files, split by problem."""

from __future__ import annotations

import logging
import os

import numpy as np
import torch

from .atomic import save_torch, write_json
from .rawjson import Header, Sample, iter_samples, read_header
from .split import train_val_indices

log = logging.getLogger(__name__)


def convert_raw_json(
    raw_json: str | os.PathLike,
    train_out: str | os.PathLike,
    val_out: str | os.PathLike,
    info_out: str | os.PathLike,
    *,
    train_fraction: float = 0.8,
    seed: int = 42,
    workers: int = 1,
) -> dict:
    """Check and split ``raw_json``; write both splits and a small dataset description.

    Each split is ``{"activations": float32 [N, H], "metadata": {"problem_ids", "layers",
    "positions"} (one entry per row), "config": {...}, "problems": {"ids", "is_correct"}}``
    with rows ordered problem, layer, position, problems in the order the split gives.
    ``workers`` processes parse the samples.
    """
    header = read_header(raw_json)
    samples = list(iter_samples(raw_json, workers))
    log.info("read %d samples from %s", len(samples), raw_json)
    train_idx, val_idx = train_val_indices(len(samples), train_fraction, seed)
    meta = header.metadata
    info = {
        "source": str(raw_json),
        "synthetic": bool(meta.get("synthetic", False)),
        "model": meta.get("model", "unknown model"),
        "dataset": meta.get("dataset", "unknown dataset"),
        "layers": list(header.layers),
        "n_positions": header.n_positions,
        "hidden_dim": header.hidden_dim,
        "n_problems": len(samples),
        "n_train": len(train_idx),
        "n_val": len(val_idx),
        "accuracy": float(np.mean([s.is_correct for s in samples])),
        "train_fraction": train_fraction,
        "split_seed": seed,
    }
    for name, idx, out in (("train", train_idx, train_out), ("val", val_idx, val_out)):
        save_torch(out, _split_file([samples[i] for i in idx], header, {**info, "split": name}))
        log.info("wrote %s: %d problems", out, len(idx))
    write_json(info_out, info)
    return info


def _split_file(samples: list[Sample], header: Header, config: dict) -> dict:
    L, T, H = header.n_layers, header.n_positions, header.hidden_dim
    activations = np.stack([s.activations for s in samples]).reshape(-1, H)
    ids = [s.id for s in samples]
    return {
        "activations": torch.from_numpy(activations),
        "metadata": {
            "problem_ids": np.repeat(ids, L * T).tolist(),
            "layers": np.tile(np.repeat(header.layers, T), len(ids)).tolist(),
            "positions": np.tile(np.arange(T), len(ids) * L).tolist(),
        },
        "config": {**config, "row_order": "problem, layer, position"},
        "problems": {"ids": ids, "is_correct": [s.is_correct for s in samples]},
    }
