"""Snakemake adapter: layer x position heatmaps of the sweet-spot SAE's metrics."""

from pathlib import Path

from codi_sae.jobs import run_job
from codi_sae.plots import plot_site_heatmaps

sm = snakemake  # noqa: F821 (set by Snakemake)
run_job(sm, lambda: plot_site_heatmaps(sm.input.metrics[0], Path(sm.output.png[0]).parent, workers=sm.threads))
