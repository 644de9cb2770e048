"""Snakemake adapter: write the synthetic demo raw JSON and its ground truth."""

from codi_sae.jobs import run_job
from codi_sae.synthetic import write_demo

sm = snakemake  # noqa: F821 (set by Snakemake)
run_job(sm, lambda: write_demo(sm.output.raw, sm.output.truth, workers=sm.threads, **sm.params.demo))
