"""Evaluation metrics of TopK SAEs, accumulated over row chunks for many SAEs at once.

Definitions (x: inputs, r: reconstructions, z: latent features, per SAE):
- ``explained_variance`` (the seed's): 1 - var(x - r) / var(x), variances over all elements;
  null (None) where var(x) is 0;
- ``fvu``: sum((x - r)^2) / sum((x - mean_rows(x))^2), the per-dimension mean removed;
  ``explained_variance_std`` = 1 - fvu (the standard definition); both null where every row
  of x is the same (a constant site has no variance to explain);
- ``reconstruction_loss``: mean of (x - r)^2 over all elements (MSE);
- ``cosine_similarity``: mean over rows of cos(x, r);
- ``l0_mean``, ``l0_std``: mean and (Bessel-corrected) std over rows of the count of non-zero z;
- ``mean_activation``, ``median_activation``, ``max_activation``: over all non-zero |z|;
- dead feature: never non-zero on any row of train and validation; ``feature_death_rate`` =
  dead / d, ``num_dead_features``, ``num_active_features``.
"""

from __future__ import annotations

import torch


def _ratio(num: float, den: float, scale: float) -> float | None:
    """``num / den``; None when ``den`` is zero next to ``scale`` (constant inputs: no variance)."""
    return float(num / den) if den > 1e-12 * scale else None


class ReconStats:
    """Reconstruction sums for ``n`` models; ``update`` with [n, b, H] chunks of inputs and reconstructions.

    A ratio metric whose variance is zero (every input row the same) is None, not NaN.
    """

    def __init__(self, n: int):
        zeros = lambda: torch.zeros(n, dtype=torch.float64)  # noqa: E731
        self.rows = 0
        self.elements = 0
        self.sse, self.sum_e, self.sum_x, self.sum_x2, self.cos = (zeros() for _ in range(5))
        self.sum_x_dim = None

    def update(self, x: torch.Tensor, recon: torch.Tensor) -> None:
        x, recon = x.detach().cpu(), recon.detach().cpu()
        x64, e = x.double(), (x - recon).double()
        self.rows += x.shape[1]
        self.elements += x.shape[1] * x.shape[2]
        self.sse += e.pow(2).sum((1, 2))
        self.sum_e += e.sum((1, 2))
        self.sum_x += x64.sum((1, 2))
        self.sum_x2 += x64.pow(2).sum((1, 2))
        dim_sums = x64.sum(1)
        self.sum_x_dim = dim_sums if self.sum_x_dim is None else self.sum_x_dim + dim_sums
        self.cos += torch.nn.functional.cosine_similarity(x, recon, dim=-1).double().sum(1)

    def results(self) -> list[dict]:
        n_el = self.elements
        var_e = self.sse - self.sum_e.pow(2) / n_el
        var_x = self.sum_x2 - self.sum_x.pow(2) / n_el
        sst = self.sum_x2 - self.sum_x_dim.pow(2).sum(1) / self.rows
        out = []
        for s in range(len(self.sse)):
            ev = _ratio(var_e[s], var_x[s], self.sum_x2[s])
            fvu = _ratio(self.sse[s], sst[s], self.sum_x2[s])
            out.append({
                "explained_variance": None if ev is None else 1 - ev,
                "explained_variance_std": None if fvu is None else 1 - fvu,
                "fvu": fvu,
                "reconstruction_loss": float(self.sse[s] / n_el),
                "cosine_similarity": float(self.cos[s] / self.rows),
            })
        return out


class BankStats(ReconStats):
    """Every metric's sums for ``n`` SAEs of dictionary size ``d``; ``update`` with [n, b, ...] chunks."""

    def __init__(self, n: int, latent_dim: int):
        super().__init__(n)
        self.l0: list[torch.Tensor] = []
        self.active_values: list[list[torch.Tensor]] = [[] for _ in range(n)]
        self.fired = torch.zeros(n, latent_dim, dtype=torch.bool)

    def update(self, x: torch.Tensor, recon: torch.Tensor, z: torch.Tensor) -> None:
        super().update(x, recon)
        z = z.detach().cpu()
        active = z != 0
        self.l0.append(active.sum(-1))
        for s in range(z.shape[0]):
            self.active_values[s].append(z[s][active[s]].abs())
        self.fired |= active.any(1)

    def results(self, fired_elsewhere: torch.Tensor | None = None) -> list[dict]:
        """One metrics dict per SAE; ``fired_elsewhere`` adds features seen active on other data."""
        fired = self.fired if fired_elsewhere is None else self.fired | fired_elsewhere
        l0 = torch.cat(self.l0, dim=1).double()
        out = []
        for s, recon in enumerate(super().results()):
            values = torch.cat(self.active_values[s])
            dead = int((~fired[s]).sum())
            out.append({
                **recon,
                "l0_mean": float(l0[s].mean()),
                "l0_std": float(l0[s].std()) if self.rows > 1 else 0.0,
                "mean_activation": float(values.mean()) if len(values) else 0.0,
                "median_activation": float(values.median()) if len(values) else 0.0,
                "max_activation": float(values.max()) if len(values) else 0.0,
                "feature_death_rate": dead / fired.shape[1],
                "num_dead_features": dead,
                "num_active_features": fired.shape[1] - dead,
            })
        return out
