"""Snakemake adapter: gather every site's metrics into metrics_all.json."""

from codi_sae.jobs import run_job
from codi_sae.collect import collect_site_metrics

sm = snakemake  # noqa: F821 (set by Snakemake)
run_job(sm, lambda: collect_site_metrics(sm.input.json, sm.input.dataset, sm.output[0]))
