"""The seed's TopK sparse autoencoder, and a bank of same-shape ones trained as one model."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .saeconfig import check_k


def topk_mask(mag: torch.Tensor, k: int, out: torch.Tensor | None = None) -> torch.Tensor:
    """1.0 at the ``k`` largest entries of ``mag`` along its last dim, 0.0 elsewhere.

    On the CPU the k-th largest value of each row comes from numpy's partition (a SIMD
    selection, about 5x faster than ``torch.topk`` here) and the mask is ``mag >= it``; a row
    where several entries tie for the k-th place keeps ``torch.topk``'s k of them.
    """
    out = torch.empty_like(mag) if out is None else out
    if mag.device.type != "cpu":
        return _scatter_topk(mag, k, out)
    d = mag.shape[-1]
    kth = np.partition(mag.detach().numpy(), d - k, axis=-1)[..., d - k, None]
    torch.ge(mag, torch.from_numpy(kth), out=out)
    tied = out.sum(-1) != k
    if tied.any():
        rows = mag[tied]
        out[tied] = _scatter_topk(rows, k, torch.empty_like(rows))
    return out


def _scatter_topk(mag: torch.Tensor, k: int, out: torch.Tensor) -> torch.Tensor:
    """``out`` set to 1.0 at ``torch.topk``'s k largest entries of each row of ``mag``, 0.0 elsewhere."""
    return out.zero_().scatter_(-1, mag.topk(k, dim=-1, sorted=False).indices, 1.0)


def topk_sparsify(pre: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` entries of largest absolute value along the last dim, signs kept."""
    return pre * topk_mask(pre.detach().abs(), k)


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
    """``encoder = Linear(H, d)``, TopK by magnitude, ``decoder = Linear(d, H)``: the seed's SAE.

    Loads the workflow's checkpoints: ``model.load_state_dict(ckpt["model_state_dict"])``.
    """

    def __init__(self, input_dim: int, latent_dim: int, k: int):
        super().__init__()
        check_k(latent_dim, k)
        self.input_dim, self.latent_dim, self.k = input_dim, latent_dim, k
        self.encoder = nn.Linear(input_dim, latent_dim)
        self.decoder = nn.Linear(latent_dim, input_dim)
        with torch.no_grad():
            self.decoder.weight /= self.decoder.weight.norm(dim=0, keepdim=True)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return topk_sparsify(self.encoder(x), self.k)

    def forward(self, x: torch.Tensor):
        """``(reconstruction, features, {"l0_mean", "reconstruction_loss"})``, as the seed returns."""
        features = self.encode(x)
        reconstruction = self.decoder(features)
        stats = {
            "l0_mean": (features != 0).sum(-1).float().mean().item(),
            "reconstruction_loss": (reconstruction - x).pow(2).mean().item(),
        }
        return reconstruction, features, stats


class SAEBank(nn.Module):
    """``n`` TopK SAEs of one shape in stacked weights: one batched matmul serves them all.

    Every member starts from the same seeded initialisation and sees the same batches, so
    member ``s`` trains exactly as a lone SAE on its own data would. Weights are stored
    transposed ([n, H, d] and [n, d, H]): the batched matmuls read them, and write their
    gradients, as they are.
    """

    def __init__(self, n: int, input_dim: int, latent_dim: int, k: int, seed: int):
        super().__init__()
        check_k(latent_dim, k)
        self.k = k
        state = init_state(input_dim, latent_dim, torch.Generator().manual_seed(seed))
        stack = lambda t: nn.Parameter(t.expand(n, *t.shape).contiguous())  # noqa: E731
        self.enc_wt, self.enc_b = stack(state["encoder.weight"].T), stack(state["encoder.bias"])
        self.dec_wt, self.dec_b = stack(state["decoder.weight"].T), stack(state["decoder.bias"])

    @property
    def latent_dim(self) -> int:
        return self.enc_wt.shape[2]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: [n, B, H] -> (reconstruction [n, B, H], features [n, B, d])."""
        features = topk_sparsify(torch.baddbmm(self.enc_b.unsqueeze(1), x, self.enc_wt), self.k)
        return torch.baddbmm(self.dec_b.unsqueeze(1), features, self.dec_wt), features

    def member_state(self, s: int) -> dict[str, torch.Tensor]:
        """Member ``s``'s weights under ``TopKAutoencoder``'s names, as standalone CPU tensors."""
        own = lambda t: t.detach().to("cpu", copy=True).contiguous()  # noqa: E731
        return {
            "encoder.weight": own(self.enc_wt[s].T),
            "encoder.bias": own(self.enc_b[s]),
            "decoder.weight": own(self.dec_wt[s].T),
            "decoder.bias": own(self.dec_b[s]),
        }
