"""Which site metrics get a layer x position heatmap, and how each is drawn.

Plain data without plotting imports: the Snakefile reads it at parse time to name the plot files.
"""

from __future__ import annotations

from typing import NamedTuple


class Metric(NamedTuple):
    """How one site metric is drawn: file stem, title, colormap, cell format, direction."""

    key: str
    title: str
    cmap: str
    fmt: str
    better: str


SITE_METRICS = (
    Metric("reconstruction_loss", "Reconstruction loss (validation MSE)", "YlOrRd", "{:.3g}", "lower is better"),
    Metric("feature_death_rate", "Feature death rate (dead on train + validation)", "YlOrRd", "{:.1%}",
           "lower is better"),
    Metric("explained_variance", "Explained variance, seed's definition (validation)", "YlGn", "{:.3f}",
           "higher is better"),
)
