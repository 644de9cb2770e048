"""Snakemake adapter: rank the sweep's configs beside their baselines and pick the sweet spot."""

from codi_sae.jobs import run_job
from codi_sae.selection import analyze_sweep

sm = snakemake  # noqa: F821 (set by Snakemake)
n_sites = len(sm.params.sites)
metrics = [sm.input.metrics[i : i + n_sites] for i in range(0, len(sm.input.metrics), n_sites)]  # per entry
run_job(
    sm,
    lambda: analyze_sweep(
        metrics,
        sm.params.entries,
        sm.input.baselines,
        sm.params.selection,
        sm.output.summary,
        sm.output.table,
        sm.output.choice,
    ),
)
