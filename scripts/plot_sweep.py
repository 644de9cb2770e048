"""Snakemake adapter: explained variance and death rate of every (d, K) config at the sweep site."""

from codi_sae.jobs import run_job
from codi_sae.plots import plot_sweep

sm = snakemake  # noqa: F821 (set by Snakemake)
run_job(sm, lambda: plot_sweep(sm.input.summary, sm.input.dataset, sm.output.png, sm.output.svg))
