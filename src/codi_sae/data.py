"""Load the split PT files and cut out the rows of (position, layer) sites."""

from __future__ import annotations

import os

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from .atomic import load_torch
from .errors import InputError

_worker_splits: list = []  # [(train split, its path), (validation split, its path)] in a worker process


def load_split(path: str | os.PathLike) -> dict:
    """A split file, memory-mapped (only the rows used are read), checked for its keys and that
    its activations, row labels, problems and recorded shape agree."""
    payload = load_torch(path, "split file", mmap=True)
    if not isinstance(payload, dict):
        raise InputError(f"{path}: split file holds a {type(payload).__name__}, not a dict")
    for key in ("activations", "metadata", "config", "problems"):
        if key not in payload:
            raise InputError(f"{path}: split file has no '{key}' key")
    acts, meta, config, problems = (payload[k] for k in ("activations", "metadata", "config", "problems"))
    if not (isinstance(acts, torch.Tensor) and acts.dim() == 2 and acts.dtype == torch.float32):
        raise InputError(f"{path}: split file's activations are not a 2-D float32 tensor")
    if not all(isinstance(x, dict) for x in (meta, config, problems)):
        raise InputError(f"{path}: split file's metadata, config and problems are not dicts")
    n = len(problems.get("ids", ()))
    if len(problems.get("is_correct", ())) != n or n * len(config.get("layers", ())) * config.get(
            "n_positions", 0) != acts.shape[0]:
        raise InputError(f"{path}: split file's problems (ids, is_correct) and its {acts.shape[0]} rows do not "
                         "match its layers and positions")
    for key in ("problem_ids", "layers", "positions"):
        if len(meta.get(key, ())) != acts.shape[0]:
            raise InputError(f"{path}: split file labels {len(meta.get(key, ()))} rows with {key}, "
                             f"but holds {acts.shape[0]}")
    if config.get("hidden_dim") != acts.shape[1]:
        raise InputError(f"{path}: split file's vectors have {acts.shape[1]} dims, "
                         f"its config says hidden_dim {config.get('hidden_dim')}")
    return payload


def load_splits(train_pt: str | os.PathLike, val_pt: str | os.PathLike) -> tuple[dict, dict]:
    """The train and validation splits (``load_split``), checked to come from one conversion."""
    train, val = load_split(train_pt), load_split(val_pt)
    for key in ("source", "layers", "n_positions", "hidden_dim", "train_fraction", "split_seed"):
        if train["config"].get(key) != val["config"].get(key):
            raise InputError(f"{val_pt}: not the validation split of {train_pt} ({key} "
                             f"{val['config'].get(key)!r}, not {train['config'].get(key)!r})")
    return train, val


def site_rows(payload: dict, path: str | os.PathLike, sites: list[tuple[int, int]]) -> torch.Tensor:
    """Activations of each ``(position, layer)`` site, stacked: [n_sites, n_problems, H]."""
    meta = payload["metadata"]
    layers, positions = np.asarray(meta["layers"]), np.asarray(meta["positions"])
    blocks = []
    for position, layer in sites:
        rows = np.flatnonzero((layers == layer) & (positions == position))
        if len(rows) == 0:
            raise InputError(f"{path}: no rows for position {position}, layer {layer}")
        if blocks and len(rows) != blocks[0].shape[0]:
            raise InputError(f"{path}: sites {sites[0]} and {(position, layer)} have different row counts")
        blocks.append(payload["activations"][torch.from_numpy(rows)])
    return torch.stack(blocks)


def load_worker_splits(train_pt: str | os.PathLike, val_pt: str | os.PathLike, workers: int) -> None:
    """Pool initializer (``parallel.map_in_order``): load (memory-map) both splits once per process,
    for ``worker_splits``; with several processes, one BLAS thread each (more would compete for the
    same cores)."""
    if workers > 1:
        threadpool_limits(1)
        torch.set_num_threads(1)
    _worker_splits[:] = zip(load_splits(train_pt, val_pt), (train_pt, val_pt))


def worker_splits() -> list[tuple[dict, str | os.PathLike]]:
    """``[(train split, path), (validation split, path)]`` as ``load_worker_splits`` loaded them."""
    return _worker_splits
