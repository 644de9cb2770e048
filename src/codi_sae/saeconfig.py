"""An SAE's defining settings, checked without importing torch (the Snakefile checks them at parse time)."""

from __future__ import annotations

from .errors import InputError


def check_k(latent_dim: int, k: int, where: str = "") -> None:
    """K must be in 1..d; the message starts with ``where`` (e.g. ``"sweep.configs: "``)."""
    if k < 1:
        raise InputError(f"{where}k={k} must be at least 1")
    if k > latent_dim:
        raise InputError(f"{where}k={k} is larger than d={latent_dim}")
