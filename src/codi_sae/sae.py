"""The seed's TopK sparse autoencoder, and a bank of same-shape ones trained as one model."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .errors import InputError
from .saeconfig import CHOICES, Recipe, check_k


def topk_mask(mag: torch.Tensor, k: int, out: torch.Tensor | None = None, positive: bool = False) -> torch.Tensor:
    """1.0 at the ``k`` largest entries of ``mag`` along its last dim, 0.0 elsewhere.

    With ``positive``, only entries above 0 are kept: a row with fewer than ``k`` of them keeps
    those. On the CPU the k-th largest value of each row comes from numpy's partition (a SIMD
    selection, about 5x faster than ``torch.topk`` here) and the mask is ``mag >= it``; a row
    where several entries tie for the k-th place keeps ``torch.topk``'s k of them.
    """
    out = torch.empty_like(mag) if out is None else out
    if mag.device.type != "cpu":
        _scatter_topk(mag, k, out)
        return out.mul_(mag > 0) if positive else out
    d = mag.shape[-1]
    kth = np.partition(mag.detach().numpy(), d - k, axis=-1)[..., d - k, None]
    if positive:  # a k-th value of 0 or less: keep every entry above 0
        kth = np.maximum(kth, np.finfo(kth.dtype).smallest_subnormal)
    torch.ge(mag, torch.from_numpy(kth), out=out)
    tied = out.sum(-1) > k
    if tied.any():
        rows = mag[tied]
        out[tied] = _scatter_topk(rows, k, torch.empty_like(rows))
    return out


def _scatter_topk(mag: torch.Tensor, k: int, out: torch.Tensor) -> torch.Tensor:
    """``out`` set to 1.0 at ``torch.topk``'s k largest entries of each row of ``mag``, 0.0 elsewhere."""
    return out.zero_().scatter_(-1, mag.topk(k, dim=-1, sorted=False).indices, 1.0)


def sparsify(pre: torch.Tensor, k: int, activation: str = "signed_topk") -> torch.Tensor:
    """The activation of a recipe on pre-activations ``pre`` (last dim: latents).

    ``signed_topk`` keeps the ``k`` entries of largest magnitude with their signs (the seed's);
    ``relu_topk`` keeps the ``k`` largest entries above 0.
    """
    if activation == "signed_topk":
        return pre * topk_mask(pre.detach().abs(), k)
    positive = pre.clamp_min(0)
    return positive * topk_mask(positive.detach(), k, positive=True)


def init_state(input_dim: int, latent_dim: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """The seed's initial weights: ``nn.Linear``'s initialisation, encoder then decoder, from
    ``generator``, decoder columns then scaled to unit norm. After ``torch.manual_seed(s)``, a
    ``TopKAutoencoder`` starts from exactly ``init_state(..., Generator().manual_seed(s))``."""

    def linear(fan_in: int, fan_out: int) -> tuple[torch.Tensor, torch.Tensor]:
        weight, bias = torch.empty(fan_out, fan_in), torch.empty(fan_out)
        nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)  # as nn.Linear does
        bound = 1 / math.sqrt(fan_in)
        return weight, nn.init.uniform_(bias, -bound, bound, generator=generator)

    encoder, encoder_bias = linear(input_dim, latent_dim)
    decoder, decoder_bias = linear(latent_dim, input_dim)
    return {
        "encoder.weight": encoder,
        "encoder.bias": encoder_bias,
        "decoder.weight": decoder / decoder.norm(dim=0, keepdim=True),
        "decoder.bias": decoder_bias,
    }


class TopKAutoencoder(nn.Module):
    """``encoder = Linear(H, d)``, TopK, ``decoder = Linear(d, H)``: the seed's SAE.

    ``activation`` is the checkpoint's ``config["activation"]`` (the seed's ``signed_topk`` by
    default). Loads the workflow's checkpoints of every recipe:
    ``model.load_state_dict(ckpt["model_state_dict"])``.
    """

    def __init__(self, input_dim: int, latent_dim: int, k: int, activation: str = "signed_topk"):
        super().__init__()
        check_k(latent_dim, k)
        if activation not in CHOICES["activation"]:
            raise InputError(f"activation {activation!r} is none of {', '.join(CHOICES['activation'])}")
        self.input_dim, self.latent_dim, self.k, self.activation = input_dim, latent_dim, k, activation
        self.encoder = nn.Linear(input_dim, latent_dim)
        self.decoder = nn.Linear(latent_dim, input_dim)
        with torch.no_grad():
            self.decoder.weight /= self.decoder.weight.norm(dim=0, keepdim=True)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return sparsify(self.encoder(x), self.k, self.activation)

    def forward(self, x: torch.Tensor):
        """``(reconstruction, features, {"l0_mean", "reconstruction_loss"})``, as the seed returns."""
        features = self.encode(x)
        reconstruction = self.decoder(features)
        stats = {
            "l0_mean": (features != 0).sum(-1).float().mean().item(),
            "reconstruction_loss": (reconstruction - x).pow(2).mean().item(),
        }
        return reconstruction, features, stats


def site_seed(seed: int, position: int, layer: int) -> int:
    """The seed of a site's initial weights under ``site_init: per_site``: a 32-bit number from
    numpy's ``SeedSequence((seed, position, layer))``."""
    return int(np.random.SeedSequence((seed, position, layer)).generate_state(1)[0])


class SAEBank(nn.Module):
    """``n`` TopK SAEs of one shape and recipe in stacked weights: one batched matmul serves them all.

    Every member starts from the seeded initialisation of its site (the same for every site
    under ``site_init: shared``) and sees the same batches, so member ``s`` trains exactly as a
    lone SAE on its own data would. Weights are stored
    transposed ([n, H, d] and [n, d, H]): the batched matmuls read them, and write their
    gradients, as they are.

    With the ``mean`` decoder bias the decoder bias is subtracted from the input before the
    encoder, and with input scaling each member works on its inputs times ``scale[s]``, until
    ``fold_`` turns both into plain weights on raw inputs (``scale`` keeps the record).
    """

    def __init__(self, n: int, input_dim: int, latent_dim: int, k: int, seed: int, recipe: Recipe = Recipe(),
                 sites: list[tuple[int, int]] | None = None):
        super().__init__()
        check_k(latent_dim, k)
        self.k, self.recipe = k, recipe
        self.pre_bias = recipe.decoder_bias == "mean"
        if recipe.site_init == "per_site":
            if sites is None or len(sites) != n:
                raise ValueError("site_init per_site needs the (position, layer) of every member")
            self.seeds = [site_seed(seed, position, layer) for position, layer in sites]
        else:
            self.seeds = [seed] * n
        states = {s: init_state(input_dim, latent_dim, torch.Generator().manual_seed(s)) for s in set(self.seeds)}
        if recipe.encoder_init == "decoder_transpose":
            for state in states.values():
                state["encoder.weight"] = state["decoder.weight"].T
                state["encoder.bias"] = torch.zeros(latent_dim)
        stack = lambda name, t=False: nn.Parameter(torch.stack(  # noqa: E731
            [states[s][name].T if t else states[s][name] for s in self.seeds]).contiguous())
        self.enc_wt, self.enc_b = stack("encoder.weight", t=True), stack("encoder.bias")
        self.dec_wt, self.dec_b = stack("decoder.weight", t=True), stack("decoder.bias")
        self.register_buffer("scale", torch.ones(n))  # each member's input scale
        self.folded = False

    @property
    def latent_dim(self) -> int:
        return self.enc_wt.shape[2]

    @torch.no_grad()
    def fit_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """Set the recipe's input scale and decoder bias from training inputs ``x`` [n, N, H];
        returns ``x`` as the members see it (scaled)."""
        mean = x.mean(1)
        if self.recipe.input_scaling == "unit_variance":
            sq_norm = (x - mean.unsqueeze(1)).pow(2).sum(2).mean(1)
            # A constant site (no variance) keeps scale 1.
            self.scale.copy_(torch.where(sq_norm > 0, (x.shape[2] / sq_norm).sqrt(), torch.ones_like(sq_norm)))
            x = x * self.scale[:, None, None]
        if self.pre_bias:
            self.dec_b.copy_(mean * self.scale[:, None])
        return x

    def encoder_bias(self) -> torch.Tensor:
        """[n, 1, d]: the encoder bias, less the decoder bias's image when it is subtracted first."""
        if not self.pre_bias:
            return self.enc_b.unsqueeze(1)
        return torch.baddbmm(self.enc_b.unsqueeze(1), self.dec_b.unsqueeze(1), self.enc_wt, alpha=-1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: [n, B, H] -> (reconstruction [n, B, H], features [n, B, d])."""
        pre = torch.baddbmm(self.encoder_bias(), x, self.enc_wt)
        features = sparsify(pre, self.k, self.recipe.activation)
        return torch.baddbmm(self.dec_b.unsqueeze(1), features, self.dec_wt), features

    @torch.no_grad()
    def fold_(self) -> "SAEBank":
        """Fold the pre-encoder bias and the input scale into the weights: afterwards the bank
        takes raw inputs, and its features are the trained ones divided by the scale (TopK and
        ReLU commute with a positive scale), so the decoder keeps its columns."""
        if not self.folded:
            self.enc_b.copy_(self.encoder_bias().squeeze(1) / self.scale[:, None])
            self.dec_b.div_(self.scale[:, None])
            self.pre_bias, self.folded = False, True
        return self

    def member_state(self, s: int) -> dict[str, torch.Tensor]:
        """Member ``s``'s weights under ``TopKAutoencoder``'s names, as standalone CPU tensors (fold first)."""
        own = lambda t: t.detach().to("cpu", copy=True).contiguous()  # noqa: E731
        return {
            "encoder.weight": own(self.enc_wt[s].T),
            "encoder.bias": own(self.enc_b[s]),
            "decoder.weight": own(self.dec_wt[s].T),
            "decoder.bias": own(self.dec_b[s]),
        }
