"""Snakemake adapter: rank the sweep's configs and pick the sweet spot."""

from codi_sae.jobs import run_job
from codi_sae.selection import analyze_sweep

sm = snakemake  # noqa: F821 (set by Snakemake)
run_job(
    sm,
    lambda: analyze_sweep(
        sm.input.metrics, sm.params.min_ev, sm.output.summary, sm.output.table, sm.output.choice
    ),
)
