"""Sparse codes: every problem's active latents at a site, from that site's SAE.

A codes file (``results/codes/pos{P}_layer{L}.pt``, loads with ``weights_only=True``) is
``{"indices": int32 [N, K], "values": float32 [N, K], "problem_ids": [N], "split": [N]
("train" or "val"), "latent_dim": d, "config": the checkpoint's config}``: row i holds problem
``problem_ids[i]``'s active latents, largest magnitude first; where fewer than K are active
(``relu_topk``) the rest of the row is index -1, value 0. Rows: the train problems, then the
validation problems, each in the split's order.
"""

from __future__ import annotations

import logging
import os

import torch

from .atomic import load_torch, save_torch
from .checkpoint import load_site_sae
from .data import load_splits, site_rows
from .errors import InputError
from .sae import TopKAutoencoder

log = logging.getLogger(__name__)
KEYS = ("indices", "values", "problem_ids", "split", "latent_dim", "config")  # of a codes file


@torch.no_grad()
def encode(model: TopKAutoencoder, x, chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """The active latents of every row of ``x`` [N, H] (a tensor or an array of floats; finite, taken
    as float32): ``(indices int32 [N, K], values float32 [N, K])``."""
    x = torch.as_tensor(x)
    if x.ndim != 2 or x.shape[1] != model.input_dim or not x.is_floating_point():
        raise InputError(f"encode: activations must be floats of shape [N, {model.input_dim}], "
                         f"not {x.dtype} {list(x.shape)}")
    x = x.to(model.encoder.weight.dtype)
    finite = torch.isfinite(x).all(1)
    if not finite.all():
        raise InputError(f"encode: row {int((~finite).nonzero()[0])} of the activations is not finite")
    indices, values = [], []
    for start in range(0, len(x), chunk):
        z = model.encode(x[start : start + chunk])
        top = z.abs().topk(model.k, dim=-1)
        kept = z.gather(-1, top.indices)
        indices.append(torch.where(kept != 0, top.indices, -1).to(torch.int32))
        values.append(kept)
    return torch.cat(indices), torch.cat(values)


def load_codes(path: str | os.PathLike) -> dict:
    """A codes file (the module's layout); an InputError for a file that is not one."""
    codes = load_torch(path, "codes file")
    missing = [key for key in KEYS if not isinstance(codes, dict) or key not in codes]
    if missing:
        raise InputError(f"{path}: not a codes file of this workflow: no {', '.join(missing)}")
    return codes


def codes_dense(codes: dict) -> torch.Tensor:
    """The codes as a dense [N, d] tensor (zeros where a latent is inactive)."""
    n = codes["indices"].shape[0]
    dense = torch.zeros(n, codes["latent_dim"], dtype=codes["values"].dtype)
    active = codes["indices"] >= 0
    rows = torch.arange(n).unsqueeze(1).expand_as(active)[active]
    dense[rows, codes["indices"][active].long()] = codes["values"][active]
    return dense


def codes_sparse(codes: dict) -> torch.Tensor:
    """The codes as a sparse COO [N, d] tensor of the active latents."""
    active = codes["indices"] >= 0
    rows = torch.arange(active.shape[0]).unsqueeze(1).expand_as(active)[active]
    where = torch.stack([rows, codes["indices"][active].long()])
    shape = (active.shape[0], codes["latent_dim"])
    return torch.sparse_coo_tensor(where, codes["values"][active], shape, check_invariants=True).coalesce()


def write_site_codes(train_pt: str | os.PathLike, val_pt: str | os.PathLike, sites: list[tuple[int, int]],
                     checkpoints: list[str | os.PathLike], outputs: list[str | os.PathLike]) -> None:
    """Encode every problem (train, then validation) at each site with its checkpoint."""
    train, val = load_splits(train_pt, val_pt)
    splits = {"train": (train, train_pt), "val": (val, val_pt)}
    for site, ckpt_path, out in zip(sites, checkpoints, outputs):
        model, ckpt = load_site_sae(ckpt_path, site, train["activations"].shape[1])
        parts = [(name, split["problems"]["ids"], site_rows(split, path, [site])[0])
                 for name, (split, path) in splits.items()]
        indices, values = encode(model, torch.cat([x for _, _, x in parts]))
        save_torch(out, {
            "indices": indices, "values": values,
            "problem_ids": [pid for _, ids, _ in parts for pid in ids],
            "split": [name for name, ids, _ in parts for _ in ids],
            "latent_dim": model.latent_dim, "config": ckpt["config"],
        })
    log.info("codes of %d site(s) written", len(sites))
