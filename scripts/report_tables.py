"""Snakemake adapter: HTML tables of the sweep and of every site, for the report."""

from codi_sae.jobs import run_job
from codi_sae.tables import write_report_tables

sm = snakemake  # noqa: F821 (set by Snakemake)
run_job(
    sm,
    lambda: write_report_tables(
        sm.input.summary, sm.input.metrics[0], sm.input.dataset, sm.output.sweep, sm.output.sites
    ),
)
