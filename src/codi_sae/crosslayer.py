"""How much of one SAE dictionary reappears in another: across layers and across positions.

Definitions (decoder ``W`` is ``[H, d]``; column j is latent j's decoder direction):

- cosine: ``cos(a_i, b_j)`` between columns after scaling each to unit norm. Zero columns have
  no direction and are left out on both sides.
- similarity: ``|cos|`` for ``signed_topk`` SAEs, where a latent and its negation are one
  feature (the latent's value carries the sign); plain ``cos`` for ``relu_topk``, whose
  latents only fire positive.
- max cosine of latent ``a_i`` in ``b``: ``max_j similarity(a_i, b_j)``.
- ``dictionary_overlap(a, b)``: ``mean_max_cosine``, the mean over ``a``'s latents of their max
  cosine in ``b``; ``share_above_0_9``, the share of ``a``'s latents whose max is > 0.9;
  ``n_latents``, how many of ``a``'s latents were compared. It is directional (a -> b): how
  much of ``a`` reappears in ``b``, not the reverse; ``a`` with few latents all found in a
  large ``b`` scores 1 while ``b -> a`` may not.
- ``same_index_cosine`` (equal latent dims only, else None): the mean over latents j non-zero
  in both of ``similarity(a_j, b_j)``.
- ``initial_mean_max_cosine``: ``mean_max_cosine`` of the two sites' initial dictionaries
  (recomputed from each checkpoint's ``init_seed``). Under ``site_init: shared`` (the seed
  recipe) every site starts from the same weights, so this is 1: the trained overlap then
  measures how little training moved the dictionaries from that common start, not features
  found twice (``shared_start`` says so). Under ``per_site`` it is near the chance level, and a
  trained overlap well above it is features that reappear.
- chance level: the expected ``mean_max_cosine`` when ``a`` and ``b`` are independent,
  uniformly random unit directions in R^H (isotropic), estimated by seeded sampling. Trained
  dictionaries live in the data's subspace, so the chance level is a floor, not a null model.
- ``cross_layer``: the overlap of each site's dictionary with the next layer's at the same
  position (``"across_layers": {"<position>": {"<layer>-><next layer>": overlap}}``) and with
  the next position's at the same layer (``"across_positions": {"<layer>": {"<position>-><next
  position>": overlap}}``), "next" in the sorted lists of layers and positions, a -> b from
  the first to the second; the chance level for these shapes and the shared activation.
- ``planted`` (SYNTHETIC demo data only, from its ground-truth file; else None): per site, the
  overlap of the demo's planted dictionary of that layer (``directions[layer]``, the feature
  directions its vectors were built from) with the site's decoder, planted -> SAE: the share of
  planted features that the SAE found (a decoder direction at cosine > 0.9), with its chance level.
"""

from __future__ import annotations

import logging
import os
import time

import torch

from .atomic import write_json
from .checkpoint import load_site_sae
from .errors import InputError
from .sae import init_state

log = logging.getLogger(__name__)
THRESHOLD = 0.9
CHANCE_DRAWS = 8


def _unit_columns(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``w`` [H, d] as float32 with each non-zero column scaled to unit norm, and which columns are non-zero."""
    w = w.detach().to(torch.float32)
    norms = w.norm(dim=0)
    valid = norms > 0
    return w / torch.where(valid, norms, torch.ones_like(norms)), valid


def _overlap(a: tuple[torch.Tensor, torch.Tensor], b: tuple[torch.Tensor, torch.Tensor], signed: bool) -> dict:
    """``dictionary_overlap`` on ``_unit_columns`` of both dictionaries."""
    (ua, va), (ub, vb) = a, b
    n = int(va.sum())
    if n == 0 or not vb.any():
        return {"mean_max_cosine": None, "share_above_0_9": None, "same_index_cosine": None, "n_latents": n}
    sim = ua.T @ ub
    if signed:
        sim = sim.abs()
    both = va & vb if sim.shape[0] == sim.shape[1] else torch.zeros(0, dtype=torch.bool)
    best = sim.masked_fill(~vb, -torch.inf).amax(dim=1)[va]
    return {"mean_max_cosine": best.mean().item(), "share_above_0_9": (best > THRESHOLD).float().mean().item(),
            "same_index_cosine": sim.diagonal()[both].mean().item() if both.any() else None, "n_latents": n}


def dictionary_overlap(a: torch.Tensor, b: torch.Tensor, signed: bool) -> dict:
    """How much of ``a`` [H, d_a] reappears in ``b`` [H, d_b] (directional, a -> b; see the module).

    ``{"mean_max_cosine", "share_above_0_9", "same_index_cosine", "n_latents"}``; None where
    either dictionary has no non-zero column. ``signed``: compare by ``|cos|`` (``signed_topk``).
    """
    if a.shape[0] != b.shape[0]:
        raise InputError(f"dictionaries of different input dims: {a.shape[0]} and {b.shape[0]}")
    return _overlap(_unit_columns(a), _unit_columns(b), signed)


def chance_level(H: int, d_a: int, d_b: int, signed: bool, seed: int = 0, draws: int = CHANCE_DRAWS) -> float:
    """The mean max cosine of ``d_a`` random unit directions in ``d_b`` others in R^H, averaged
    over ``draws`` independent pairs of dictionaries from ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    means = [
        _overlap(_unit_columns(torch.randn(H, d_a, generator=gen)), _unit_columns(torch.randn(H, d_b, generator=gen)),
                 signed)["mean_max_cosine"]
        for _ in range(draws)
    ]
    return sum(means) / draws


def load_planted(path: str | os.PathLike, layers: list[int], input_dim: int) -> torch.Tensor:
    """The planted dictionaries [L, features, H] of a synthetic demo's ground-truth file, checked
    against the data's ``layers`` and ``input_dim``; bad input raises InputError naming the file."""
    try:
        truth = torch.load(path, weights_only=True)
    except Exception as e:  # torch raises several types for a file that is not a checkpoint
        raise InputError(f"{path}: cannot read the demo's ground truth: {e}") from e
    directions = truth.get("directions") if isinstance(truth, dict) else None
    if not (isinstance(directions, torch.Tensor) and directions.dim() == 3):
        raise InputError(f"{path}: no 'directions' tensor [layers, features, H] in the demo's ground truth")
    if directions.shape[2] != input_dim or max(layers) >= directions.shape[0]:
        raise InputError(f"{path}: planted directions of shape {list(directions.shape)} do not fit the data "
                         f"(layers {min(layers)}..{max(layers)}, H={input_dim})")
    return directions


def cross_layer(checkpoints: dict[tuple[int, int], str | os.PathLike], layers: list[int],
                positions: list[int], truth: str | os.PathLike | None = None) -> dict:
    """Overlaps between consecutive layers at each position and consecutive positions at each layer,
    and (with ``truth``, a synthetic demo's ground-truth file) of each site's planted dictionary.

    ``checkpoints[(position, layer)]`` is that site's SAE checkpoint; every site of
    ``positions`` x ``layers`` must have one, and all must share input dim, latent dim and
    activation. Returns ``{"across_layers", "across_positions", "chance", "activation",
    "shared_start", "planted"}`` (see the module).
    """
    layers, positions = sorted(layers), sorted(positions)
    if not layers or not positions:
        raise InputError(f"no sites to compare: layers {layers}, positions {positions}")
    units, starts, seeds, shape, activation, first = {}, {}, {}, None, None, None
    for site in [(p, layer) for p in positions for layer in layers]:
        if site not in checkpoints:
            raise InputError(f"no checkpoint for position {site[0]}, layer {site[1]}")
        path = checkpoints[site]
        _, ckpt = load_site_sae(path, site)
        cfg = ckpt["config"]
        here = ((cfg["input_dim"], cfg["latent_dim"]), cfg.get("activation", "signed_topk"))
        if first is None:
            (shape, activation), first = here, path
        elif here != (shape, activation):
            raise InputError(f"{path}: (input dim, latent dim) {here[0]}, activation {here[1]}, but {first} has "
                             f"{shape}, {activation}")
        units[site] = _unit_columns(ckpt["model_state_dict"]["decoder.weight"])
        seeds[site] = cfg.get("init_seed", cfg["seed"])
    signed = activation == "signed_topk"
    H, d = shape
    for seed in set(seeds.values()):
        starts[seed] = _unit_columns(init_state(H, d, torch.Generator().manual_seed(seed))["decoder.weight"])

    def compare(a: tuple[int, int], b: tuple[int, int]) -> dict:
        start = _overlap(starts[seeds[a]], starts[seeds[b]], signed)["mean_max_cosine"]
        return {**_overlap(units[a], units[b], signed), "initial_mean_max_cosine": start}

    def pairs(values: list[int]) -> list[tuple[int, int]]:
        return list(zip(values, values[1:]))

    across_layers = {
        str(p): {f"{a}->{b}": compare((p, a), (p, b)) for a, b in pairs(layers)} for p in positions
    }
    across_positions = {
        str(layer): {f"{a}->{b}": compare((a, layer), (b, layer)) for a, b in pairs(positions)} for layer in layers
    }
    chance = {"mean_max_cosine": chance_level(H, d, d, signed), "input_dim": H, "latent_dim": d, "signed": signed,
              "draws": CHANCE_DRAWS, "seed": 0}
    planted = None
    if truth is not None:
        directions = load_planted(truth, layers, H)
        planted_units = {layer: _unit_columns(directions[layer].T) for layer in layers}
        planted = {"n_features": directions.shape[1], "threshold": THRESHOLD,
                   "chance_mean_max_cosine": chance_level(H, directions.shape[1], d, signed),
                   "sites": {str(layer): {str(p): _overlap(planted_units[layer], units[(p, layer)], signed)
                                          for p in positions} for layer in layers}}
    return {"across_layers": across_layers, "across_positions": across_positions, "chance": chance,
            "activation": activation, "shared_start": len(set(seeds.values())) == 1, "planted": planted}


def write_cross_layer(sites: list[tuple[int, int]], checkpoint_paths: list[str | os.PathLike],
                      out_json: str | os.PathLike, truth: str | os.PathLike | None = None) -> dict:
    """``cross_layer`` over ``sites`` [(position, layer)] whose checkpoints are ``checkpoint_paths``
    (same order), with the demo's ground-truth file ``truth`` if given, written to ``out_json``."""
    if len(sites) != len(checkpoint_paths):
        raise InputError(f"{out_json}: {len(sites)} sites but {len(checkpoint_paths)} checkpoints")
    start = time.perf_counter()
    checkpoints = {(int(p), int(layer)): path for (p, layer), path in zip(sites, checkpoint_paths)}
    result = cross_layer(checkpoints, sorted({layer for _, layer in checkpoints}), sorted({p for p, _ in checkpoints}),
                         truth)
    write_json(out_json, result)
    log.info("cross-layer overlaps of %d sites in %.2f s", len(sites), time.perf_counter() - start)
    return result
