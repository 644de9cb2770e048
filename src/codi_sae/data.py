"""Load the split PT files and cut out the rows of (position, layer) sites."""

from __future__ import annotations

import os

import numpy as np
import torch

from .atomic import load_torch
from .errors import InputError


def load_split(path: str | os.PathLike) -> dict:
    """A split file, memory-mapped (only the rows used are read), checked for its keys."""
    payload = load_torch(path, "split file", mmap=True)
    if not isinstance(payload, dict):
        raise InputError(f"{path}: split file holds a {type(payload).__name__}, not a dict")
    for key in ("activations", "metadata", "config"):
        if key not in payload:
            raise InputError(f"{path}: split file has no '{key}' key")
    return payload


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
