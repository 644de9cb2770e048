"""Raw JSON to the seed's train/validation PT files, split by problem."""

from __future__ import annotations

import logging
import os

import numpy as np
import torch

from .atomic import save_torch, write_json
from .errors import InputError
from .rawjson import Header, RawSamples
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
    problems_out: str | os.PathLike | None = None,
    expect: dict | None = None,
) -> dict:
    """Check and split ``raw_json``; write both splits, a small dataset description and, to
    ``problems_out``, the problems table.

    Each split is ``{"activations": float32 [N, H], "metadata": {"problem_ids", "layers",
    "positions"} (one entry per row), "config": {...}, "problems": {"ids", "is_correct"}}``
    with rows ordered problem, layer, position, problems in the order the split gives.
    The problems table is ``{"problems": [{"id", "split", "is_correct", "question",
    "ground_truth", "ground_truth_text", "prediction", "prediction_text", "thought_tokens"}, ...]}`` in file order
    (a field the raw JSON lacks is null; so is ``is_correct`` where a problem was not graded).
    ``workers`` processes parse the samples. ``expect`` (``layers``, ``n_positions``,
    ``hidden_dim``): the shape the workflow planned for, checked.
    """
    raw = RawSamples(raw_json)
    header, meta = raw.header, raw.header.metadata
    found = {"layers": list(header.layers), "n_positions": header.n_positions, "hidden_dim": header.hidden_dim}
    if expect is not None and found != expect:
        raise InputError(f"{raw_json}: holds {found}, but the workflow was planned for {expect} "
                         "(from the model's config and extract settings, or the file as it was)")
    try:
        train_idx, val_idx = train_val_indices(len(raw), train_fraction, seed)
    except InputError as e:
        raise InputError(f"{raw_json}: {e}") from None
    # Each sample goes straight to its row of its split: memory is the output's size.
    shape = (header.n_layers, header.n_positions, header.hidden_dim)
    splits = {"train": np.empty((len(train_idx), *shape), np.float32),
              "val": np.empty((len(val_idx), *shape), np.float32)}
    place = {int(i): ("train", row) for row, i in enumerate(train_idx)}
    place.update({int(i): ("val", row) for row, i in enumerate(val_idx)})
    ids, correct, table = [], [], []  # per sample, in file order
    for index, sample in enumerate(raw.read(workers)):
        name, row = place[index]
        splits[name][row] = sample.activations
        ids.append(sample.id)
        correct.append(sample.is_correct)
        table.append({"id": sample.id, "split": name, "is_correct": sample.is_correct, **sample.fields})
    log.info("read %d samples from %s", len(raw), raw_json)
    graded = [c for c in correct if c is not None]  # is_correct null: not graded
    info = {
        "source": str(raw_json),
        "synthetic": bool(meta.get("synthetic", False)),
        "model": meta.get("model", "unknown model"),
        "dataset": meta.get("dataset", "unknown dataset"),
        "layers": list(header.layers),
        "n_positions": header.n_positions,
        "hidden_dim": header.hidden_dim,
        "n_problems": len(raw),
        "n_train": len(train_idx),
        "n_val": len(val_idx),
        "n_graded": len(graded),
        "accuracy": sum(graded) / len(graded) if graded else None,
        "train_fraction": train_fraction,
        "split_seed": seed,
    }
    for name, idx, out in (("train", train_idx, train_out), ("val", val_idx, val_out)):
        problems = {"ids": [ids[i] for i in idx], "is_correct": [correct[i] for i in idx]}
        save_torch(out, _split_file(splits.pop(name), problems, header, {**info, "split": name}))
        log.info("wrote %s: %d problems", out, len(idx))
    if problems_out is not None:
        write_json(problems_out, {"problems": table})
    write_json(info_out, info)
    return info


def _split_file(activations: np.ndarray, problems: dict, header: Header, config: dict) -> dict:
    L, T, H = header.n_layers, header.n_positions, header.hidden_dim
    ids = problems["ids"]
    return {
        "activations": torch.from_numpy(activations.reshape(-1, H)),
        "metadata": {
            "problem_ids": np.repeat(ids, L * T).tolist(),
            "layers": np.tile(np.repeat(header.layers, T), len(ids)).tolist(),
            "positions": np.tile(np.arange(T), len(ids) * L).tolist(),
        },
        "config": {**config, "row_order": "problem, layer, position"},
        "problems": problems,
    }
