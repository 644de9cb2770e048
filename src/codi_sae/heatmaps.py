"""Which site metrics get a layer x position heatmap, and how each is drawn.

Plain data without plotting imports: the Snakefile reads it at parse time to name the plot files.
"""

from __future__ import annotations

from typing import NamedTuple


class Metric(NamedTuple):
    """How one site metric is drawn: file stem (the key in the site's metrics or baselines),
    title, colormap, cell format, direction, the PCA-K value shown under each cell, the
    colormap's centre, its fixed (low, high) range (None: the data's)."""

    key: str
    title: str
    cmap: str
    fmt: str
    better: str
    pca_key: str | None = None
    center: float | None = None
    limits: tuple[float, float] | None = None


SITE_METRICS = (
    Metric("reconstruction_loss", "Reconstruction loss (validation MSE)", "YlOrRd", "{:.3g}", "lower is better",
           "pca_reconstruction_loss"),
    Metric("feature_death_rate", "Feature death rate (dead on train + validation)", "YlOrRd", "{:.1%}",
           "lower is better"),
    Metric("explained_variance", "Explained variance, seed's definition (validation)", "YlGn", "{:.3f}",
           "higher is better", "pca_explained_variance"),
    Metric("fvu", "Fraction of variance unexplained, standard definition (validation)", "YlOrRd", "{:.3f}",
           "lower is better", "pca_fvu"),
    Metric("fvu_minus_pca_fvu", "FVU minus PCA-K's FVU (validation; below 0: the SAE reconstructs better)",
           "RdBu_r", "{:+.3f}", "lower is better", center=0.0),
)
# Error prediction (probe.py): AUROC per site of the probe on each input, files probe_auroc_<model>.
PROBE_METRICS = tuple(
    Metric(f"probe_auroc_{model}", f"Predicting is_correct from {what}: AUROC (cross-validated; 0.5 is chance)",
           "RdYlGn", "{:.2f}", "higher is better", center=0.5)
    for model, what in (("codes", "the SAE's codes"), ("raw", "the raw activations"))
)
