"""The train/validation split by problem, identical to scikit-learn's ``train_test_split``."""

from __future__ import annotations

import math

import numpy as np

from .errors import InputError


def train_val_indices(n: int, train_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the train and validation problems, in the order scikit-learn returns them.

    Same as ``train_test_split(range(n), train_size=train_fraction, random_state=seed,
    shuffle=True)``: ``floor(train_fraction * n)`` train problems, the rest validation, both
    taken from one ``RandomState(seed).permutation(n)`` (validation first).
    """
    n_train = math.floor(train_fraction * n)
    n_val = n - n_train
    if n_train == 0 or n_val == 0:
        empty = "training" if n_train == 0 else "validation"
        raise InputError(f"split.train_fraction={train_fraction:g} of {n} problem(s) leaves the {empty} split "
                         "empty: each split needs at least one problem")
    permutation = np.random.RandomState(seed).permutation(n)
    return permutation[n_val:], permutation[:n_val]
