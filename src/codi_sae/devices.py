"""The device a job computes on."""

from __future__ import annotations

import torch

from .errors import InputError


def pick_device(name: str, key: str = "train.device") -> torch.device:
    """``auto``: CUDA when this job can see a GPU, else the CPU; ``key`` names the setting."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError(f"{key} is 'cuda' but this job sees no CUDA device")
    return torch.device(name)
