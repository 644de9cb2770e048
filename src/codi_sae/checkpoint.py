"""SAE checkpoints in the seed's format: ``{"model_state_dict", "config", "metrics"}``."""

from __future__ import annotations

import hashlib
import os

from .atomic import load_torch, save_torch, write_json
from .errors import InputError, first_line
from .sae import TopKAutoencoder


def save_sae(pt_path: str | os.PathLike, json_path: str | os.PathLike, state: dict, config: dict,
             metrics: dict, provenance: dict) -> None:
    """The checkpoint (loads with ``weights_only=True``) and its config, metrics and provenance
    (what made it: ``provenance()``) as JSON."""
    save_torch(pt_path, {"model_state_dict": state, "config": config, "metrics": metrics, "provenance": provenance})
    write_json(json_path, {"config": config, "metrics": metrics, "provenance": provenance})


def provenance(**inputs: str | os.PathLike) -> dict:
    """The package and torch versions, and each input file's path and SHA-256."""
    import torch

    from . import __version__

    def sha256(path) -> str:
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()

    return {"codi_sae": __version__, "torch": str(torch.__version__),  # a str subclass, refused by weights_only
            **{name: {"path": str(path), "sha256": sha256(path)} for name, path in inputs.items()}}


def load_sae(path: str | os.PathLike) -> tuple[TopKAutoencoder, dict]:
    """The SAE of a checkpoint, in eval mode, and the whole checkpoint dict; an InputError for a
    file that is not one (see ``atomic.load_torch``) or whose weights do not fit its config."""
    ckpt = load_torch(path, "SAE checkpoint", map_location="cpu")
    try:
        cfg = ckpt["config"]
        model = TopKAutoencoder(cfg["input_dim"], cfg["latent_dim"], cfg["k"], cfg.get("activation", "signed_topk"))
        model.load_state_dict(ckpt["model_state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise InputError(f"{path}: not an SAE checkpoint of this workflow ({type(e).__name__}: {first_line(e)})") from None
    return model.eval(), ckpt


def load_site_sae(path: str | os.PathLike, site: tuple[int, int],
                  input_dim: int | None = None) -> tuple[TopKAutoencoder, dict]:
    """``load_sae`` of the checkpoint of ``site`` (position, layer); an InputError where it holds
    another site or, with ``input_dim``, takes inputs of another size."""
    model, ckpt = load_sae(path)
    cfg = ckpt["config"]
    if (cfg.get("position"), cfg.get("layer")) != tuple(site):
        raise InputError(f"{path}: holds position {cfg.get('position')}, layer {cfg.get('layer')}, "
                         f"not position {site[0]}, layer {site[1]}")
    if input_dim is not None and model.input_dim != input_dim:
        raise InputError(f"{path}: takes inputs of {model.input_dim} dims, but the activations have {input_dim}")
    return model, ckpt
