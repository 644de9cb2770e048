"""Snakemake adapter: odd against even positions on every site metric, and its report page."""

from codi_sae.jobs import run_job
from codi_sae.positions import write_positions

sm = snakemake  # noqa: F821 (set by Snakemake)
run_job(
    sm,
    lambda: write_positions(sm.input.metrics[0], sm.input.probe[0], sm.output.json, sm.input.dataset, sm.output.page),
)
